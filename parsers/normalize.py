"""Text clean-up applied before the grammar sees a message.

Everything here is deterministic and documented in the README ("What the parser
accepts"): the grammar then only has to describe meaning, not noise.
"""

from __future__ import annotations

import re
import unicodedata

# Characters that are invisible in a phone's text field but break tokenising.
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)

# Words customers put around the numbers that carry no meaning. They are removed
# wherever they stand; any other letter makes the message unparseable.
FILLER_WORDS: tuple[str, ...] = (
    "показания",
    "показание",
    "пок.",
    "пок",
    "л/с",
    "л.с.",
    "лс",
    "спасибо",
)
_FILLER_RE = re.compile(
    r"(?<![\w/])(?:" + "|".join(re.escape(w) for w in FILLER_WORDS) + r")(?![\w/])"
)
_EDGE_SEPARATORS = " \t\r\n;,#:."


def normalize(text: str) -> str:
    """Return the canonical form of ``text`` that the grammar parses."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).lower()
    text = _FILLER_RE.sub(" ", text)
    return text.strip(_EDGE_SEPARATORS)
