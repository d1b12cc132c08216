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
# Separators: white space and these marks. A run of them at either end is removed, and a
# tail after the last digit made of nothing else is not a signature (it is kept).
_SEPARATOR_MARKS = ";#:=,.-"
_SEPARATOR_RUN = re.compile(r"[\s;#:=,.\-]+")
_DROP_MARKS = dict.fromkeys(map(ord, _SEPARATOR_MARKS), None)
_DIGIT = re.compile(r"[0-9]")


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
    return _strip_edges(_drop_signature(text))


# Every step below scans the text a bounded number of times (no regular expression here
# can backtrack over a run it has already scanned), so a 64 KiB run of spaces or marks
# costs microseconds, not the seconds a "[...]+$" search spends retrying every position.


def _drop_signature(text: str) -> str:
    """Anything after the last digit that has no digit of its own is a signature (a name,
    a farewell) and is dropped; a tail of separators only is kept."""
    last = _last_digit(text)
    if last < 0:
        return text
    tail = text[last + 1 :]
    return text[: last + 1] if _is_signature(tail) else text


def _last_digit(text: str) -> int:
    """The index of the last ASCII digit of ``text``, or -1: one scan from the end."""
    found = _DIGIT.search(text[::-1])
    return -1 if found is None else len(text) - 1 - found.start()


def _is_signature(tail: str) -> bool:
    """A tail is dropped when it holds a word (a name, a farewell), not only separators."""
    return bool(tail.translate(_DROP_MARKS).strip())


def _strip_edges(text: str) -> str:
    """Without the runs of separators at either end (each end scanned once)."""
    head = _SEPARATOR_RUN.match(text)
    start = head.end() if head else 0
    tail = _SEPARATOR_RUN.match(text[::-1])
    end = len(text) - (tail.end() if tail else 0)
    return text[start:end] if start < end else ""
