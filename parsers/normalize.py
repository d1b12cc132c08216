"""Text clean-up applied before the grammar sees a message.

Everything here is deterministic and documented in the README ("What the parser
accepts"): the grammar then only has to describe meaning, not noise.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

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
# What the grammar reads (canonical()) also separates with en and em dashes, which phones
# make of "--" and "-".
DASHES = "\u2013\u2014"
_DASHED_RUN = re.compile(r"[\s;#:=,.\-\u2013\u2014]+")
_DASHED_BLANK_MARKS = dict.fromkeys(map(ord, _SEPARATOR_MARKS + DASHES), " ")

# Units written after a value carry nothing (which register a value is for does not
# depend on them): "12345 кВт", "123м3", "45 куб.м". A unit is removed only right after a
# digit (white space between allowed) and only when no letter or digit follows it, so
# "м3" glued to more digits ("м345") is never taken apart and no number changes; it
# leaves a ";" behind, a separator, so no thousands joining can happen across it.
UNIT_WORDS: tuple[str, ...] = (
    "квт",
    "квтч",
    "квт*ч",
    "квт.ч",
    "квт/ч",
    "квт·ч",
    "м3",
    "м³",
    "куб",
    "куб.м",
    "кубов",
)
_UNIT_STARTS = "".join(sorted({word[0] for word in UNIT_WORDS}))
_UNIT_RE = re.compile(
    r"(?<=[0-9])(?P<space>\s*)(?:"
    + "|".join(map(re.escape, sorted(UNIT_WORDS, key=len, reverse=True)))
    + r")\.?(?!\w)"
)


# Cheap tests that let a step be skipped when it could change nothing: translate() with a
# dict table, or a search for any of many words, costs microseconds even on a short text
# it leaves alone, and most messages are digits and spaces.
_HAS_PUNCTUATION = re.compile("[" + re.escape(_PUNCTUATION) + "]").search
_HAS_LOOKALIKE = re.compile("[abcehkmoptxy]").search
_HAS_FILLER_START = re.compile("[" + "".join(sorted({w[0] for w in FILLER_WORDS})) + "]").search
_HAS_UNIT_START = re.compile(f"[{_UNIT_STARTS}]").search

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
    # Every invisible character is outside ASCII and the basic Cyrillic block too.
    if _NEEDS_FOLDING.search(text):
        text = text.translate(_INVISIBLE_TABLE)
        if _NEEDS_FOLDING.search(text):
            text = "".join(_char(c) for c in text)
    return text.lower()


def _clean(text: str) -> str:
    """Punctuation blanked, folded, Latin look-alikes made Cyrillic, fillers removed."""
    # Punctuation first: NFKC would turn "№" into "No" before it could be dropped.
    if _HAS_PUNCTUATION(text):
        text = text.translate(_PUNCTUATION_TABLE)
    text = fold(text)
    if _HAS_LOOKALIKE(text):
        text = text.translate(LOOKALIKES)
    return drop_fillers(text)


def drop_fillers(text: str) -> str:
    """``text`` (folded) with every filler word or phrase made a space."""
    return _FILLER_RE.sub(" ", text) if _HAS_FILLER_START(text) else text


def normalize(text: str) -> str:
    """The clean-up every reader of a message shares: :func:`_clean`, a trailing signature
    dropped, separators stripped at both ends. (The grammar reads :func:`canonical`.)"""
    return _strip_edges(_drop_signature(_clean(text)))


def canonical(text: str, is_label: Callable[[str], bool]) -> str:
    """The text the grammar parses: :func:`normalize`'s clean-up, and also

    - a unit right after a value removed (``12345 кВт`` → ``12345 ;``, see ``UNIT_WORDS``);
    - en and em dashes counted as separators at the ends and in the tail;
    - a tail after the last digit that is one label and nothing else (``… 6789 ночь``,
      ``… 6789 (ночь).``) kept: it is a label written after its value, not a signature.
      ``is_label`` says whether the tail, separators removed, is one label.
    """
    text = _clean(text)
    if _HAS_UNIT_START(text):
        text = _UNIT_RE.sub(_unit_gap, text)
    last = _last_digit(text)
    if last >= 0:
        tail = text[last + 1 :]
        words = " ".join(tail.translate(_DASHED_BLANK_MARKS).split())
        if words and not is_label(words):
            text = text[: last + 1]
    return _strip_edges(text, _DASHED_RUN)


def _unit_gap(unit: re.Match[str]) -> str:
    """What a removed unit leaves: the white space before it and a ";", so it still
    separates (``12 кВт 345`` is two values, never joined by the thousands rule)."""
    return unit.group("space") + ";"


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
    if text[-1:].isdigit() and text[-1].isascii():  # the common case, without a copy
        return len(text) - 1
    found = _DIGIT.search(text[::-1])
    return -1 if found is None else len(text) - 1 - found.start()


def _is_signature(tail: str) -> bool:
    """A tail is dropped when it holds a word (a name, a farewell), not only separators."""
    return bool(tail.translate(_DROP_MARKS).strip())


def _strip_edges(text: str, run: re.Pattern[str] = _SEPARATOR_RUN) -> str:
    """Without the runs of separators at either end (each end scanned once)."""
    if text and not run.match(text[0]) and not run.match(text[-1]):
        return text
    head = run.match(text)
    start = head.end() if head else 0
    tail = run.match(text[::-1])
    end = len(text) - (tail.end() if tail else 0)
    return text[start:end] if start < end else ""
