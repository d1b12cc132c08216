"""Text clean-up applied before the grammar sees a message.

Everything here is deterministic and documented in the README ("What the parser
accepts"): the grammar then only has to describe meaning, not noise.
"""

from __future__ import annotations

import re
import unicodedata

# Characters that are invisible in a phone's text field but break tokenising.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f"
# Quotes and brackets carry nothing: they become spaces.
_PUNCTUATION = "\"'«»„“”‘’`()[]{}<>!?№"
_INVISIBLE_TABLE = dict.fromkeys(map(ord, _INVISIBLE), None)
_PUNCTUATION_TABLE = dict.fromkeys(map(ord, _PUNCTUATION), " ")

# Latin letters that look like Cyrillic ones (after lower-casing) count as their twins.
LOOKALIKES = str.maketrans("abcehkmoptxy", "авсенкмортху")

# Words and phrases customers put around the numbers that carry no meaning, removed
# wherever they stand (even glued to a number: "лс1234567890").
FILLER_WORDS: tuple[str, ...] = (
    "добрый день",
    "добрый вечер",
    "доброе утро",
    "здравствуйте",
    "показания счетчиков",
    "показания счётчиков",
    "показания",
    "показание",
    "пок.",
    "пок",
    "лицевой счет",
    "лицевой счёт",
    "л/сч",
    "л/с",
    "л.с.",
    "л.с",
    "лс",
    "спасибо",
)
_FILLER_RE = re.compile(
    r"(?<![^\W\d_])(?:"
    + "|".join(
        r"\s+".join(map(re.escape, w.split())) for w in sorted(FILLER_WORDS, key=len, reverse=True)
    )
    + r")(?![^\W\d_])"
)
# Anything after the last digit that has no digit of its own is a signature.
_TAIL_RE = re.compile(r"(?<=[0-9])[^0-9]*$")
_LABEL_TAIL_RE = re.compile(r"^[\s;#:=,.\-]*$")
_EDGES = re.compile(r"^[\s;,#:.=\-]+|[\s;,#:.=\-]+$")


# Outside ASCII and the basic Cyrillic block, characters go through _char one by one.
_NEEDS_FOLDING = re.compile(r"[^\x00-\x7f\u0410-\u044f\u0401\u0451]")


def _char(c: str) -> str:
    """Any Unicode decimal digit becomes ASCII; other compatibility forms via NFKC,
    except characters that merely contain digits (², ⑫): they stay and fail to parse."""
    if c.isdecimal():
        return str(unicodedata.decimal(c))
    if c.isdigit() or unicodedata.category(c) == "No":
        return c
    return unicodedata.normalize("NFKC", c)


def fold(text: str) -> str:
    """Digits to ASCII, compatibility forms, no invisible characters, lower case."""
    text = text.translate(_INVISIBLE_TABLE)
    if _NEEDS_FOLDING.search(text):
        text = "".join(_char(c) for c in text)
    return text.lower()


def normalize(text: str) -> str:
    """Return the canonical form of ``text`` that the grammar parses."""
    # Punctuation first: NFKC would turn "№" into "No" before it could be dropped.
    text = fold(text.translate(_PUNCTUATION_TABLE)).translate(LOOKALIKES)
    text = _FILLER_RE.sub(" ", text)
    text = _TAIL_RE.sub(lambda m: "" if _is_signature(m.group()) else m.group(), text)
    return _EDGES.sub("", text)


def _is_signature(tail: str) -> bool:
    """A tail is dropped when it holds a word (a name, a farewell), not only separators."""
    return not _LABEL_TAIL_RE.match(tail)
