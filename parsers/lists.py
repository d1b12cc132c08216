"""Group lists from building elders: a multi-line text (an email body) read line by line
with the same grammar as an SMS.

Per line: a leading list number (``1.``, ``1)``, ``№1``) and an apartment prefix
(``кв. 12 —``, ``кв 12:``, ``квартира 12,``) are removed. A line is a data line when it
then holds a number of at least 6 digits (an account); other lines (greetings, headings
like ``дом 10``, ``С уважением…``) are skipped, and so are contact lines (``тел.``,
``e-mail``). Every data line gives one :class:`ListLine` with its line number and either a
Submission or a ParseError, so a report can answer each line. The length limit of a message
(:data:`parsers.MAX_TEXT`) applies to each data line, not to the list: a data line longer
than that gets the "too long" ParseError; a list may have any number of lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from parsers.grammar import ParseError, Submission, parse_submission, refuse_too_long
from parsers.normalize import fold

_NUMBERING = re.compile(r"^\s*(?:№\s*[0-9]{1,4}\s*[.)]?|[0-9]{1,4}\s*[.)])\s+")
_ACCOUNT_LIKE = re.compile(r"[0-9]{6,}")
_CONTACT = re.compile(r"^\s*(?:тел|телефон|моб|e-?mail|почта|с уважением)\b", re.IGNORECASE)
_APARTMENT = re.compile(
    r"^\s*(?:кв(?:артира)?\.?|kb\.?)\s*[0-9]+[а-яa-z]?\s*[-–—:,.)]*\s*", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class ListLine:
    number: int  # 1-based line number in the text
    text: str  # the line as written
    result: Submission | ParseError

    @property
    def ok(self) -> bool:
        return isinstance(self.result, Submission)


def strip_prefixes(line: str) -> str:
    """Remove a list number and an apartment prefix: ``1. кв. 12 — 1234567890 1 2``."""
    line = _NUMBERING.sub("", line, count=1)
    return _APARTMENT.sub("", line, count=1)


def parse_list(text: str) -> Iterator[ListLine]:
    """One :class:`ListLine` per line that carries digits, in order."""
    for number, line in enumerate(text.splitlines(), start=1):
        data = strip_prefixes(line)
        if _CONTACT.match(data) or not _ACCOUNT_LIKE.search(fold(data)):
            continue
        try:
            refuse_too_long(data)
            result: Submission | ParseError = parse_submission(data)
        except ParseError as err:
            result = err
        yield ListLine(number, line, result)
