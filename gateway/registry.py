"""Loading the registry from the billing system's CSV export (columns: DESIGN.md).

A bad row never stops an import: it is reported as ``file:line: reason`` and skipped while
the good rows are upserted in batches, so a re-import of the same files changes nothing.
The file is streamed: memory does not grow with its size, only with the number of keys
(to report a key given twice).

What refuses a whole file (:class:`HeaderError`, one line; nothing of it is imported):
an encoding it cannot be read in without garbling its text (see :func:`_open`), and a
header row without a required column, with a column twice, or with a name that looks
like a column misspelt (see :func:`_header`). :func:`check_file` makes every check of
an import and writes nothing (``gateway import`` checks every file so before writing
any, and ``--dry-run`` stops there).

What is refused, row by row (each a rejection, never an exception):

- a line that is not valid in the file's encoding (see :func:`sniff_encoding`), and in
  a file read in a single-byte encoding a line that is valid UTF-8 (a file that mixes
  encodings: its text would be garbled);
- a line over :data:`MAX_ROW_BYTES` (1 MiB), a quoted field not closed within 1 MiB or by
  the end of the file (the lines after it are read again as rows of their own), a field
  over Python's CSV field limit, anything else the ``csv`` module cannot read;
- a value that does not convert (numbers, dates ``YYYY-MM-DD`` or ``DD.MM.YYYY``, enums,
  ``residents`` 0..999, digits);
- a value that would not fit its column on PostgreSQL: text longer than its ``String(n)``,
  a decimal beyond ``NUMERIC(20, 6)`` (14 digits before the point, 6 after): the limits are
  read from :mod:`gateway.storage.tables`, so SQLite and PostgreSQL refuse the same rows;
- a control character (NUL, U+0001–U+001F, DEL, U+0080–U+009F) in any field; a
  free-text column (``address``) may hold tabs and line breaks;
- as a last line of defence, a row the database itself refuses: a batch that fails with a
  data or integrity error is written again row by row, and only the refused rows are
  rejected, with the database's error class and message but never the row's values.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import math
import re
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import structlog
from sqlalchemy import Numeric, String, Table, Text, select, tuple_
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.types import TypeDecorator, TypeEngine

from gateway.domain.inbound import e164
from gateway.domain.model import Capacity, Service, Zone
from gateway.storage import Database, UnitOfWork
from gateway.storage import tables as t
from gateway.storage.registry import UpsertCounts

log = structlog.get_logger("gateway.registry")

BATCH = 1000
# The longest row (all its lines, when a quoted field spans several) read into memory.
MAX_ROW_BYTES = 1 << 20
# How many lines with non-ASCII bytes decide a file's encoding.
SNIFF_LINES = 1000
# ``residents``: the people registered at the address, a small whole number.
MAX_RESIDENTS = 999
_RESIDENTS_DIGITS = len(str(MAX_RESIDENTS))

# Every column a file of each kind may have, as the billing system exports it; REQUIRED
# are those its header must have (the others may be left out: empty in every row).
COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": (
        "account",
        "address",
        "building",
        "phone",
        "debt",
        "receipt_code",
        "last_bill_total",
        "residents",
    ),
    "meters": (
        "account",
        "meter",
        "service",
        "zone",
        "digits",
        "verified_until",
        "last_value",
        "last_date",
    ),
    "tariffs": ("service", "zone", "price", "valid_from", "normative"),
    "elders": ("email", "building"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "accounts": ("account",),
    "meters": ("account", "meter", "service", "zone", "digits"),
    "tariffs": ("service", "zone", "price", "valid_from"),
    "elders": ("email", "building"),
}


class RowError(ValueError):
    pass


@dataclass
class FileReport:
    kind: str
    path: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    # Rows read (blank ones aside), the rejected ones too.
    rows: int = 0
    # What is worth saying but rejects nothing (columns that are ignored).
    notes: list[str] = field(default_factory=list)
    # Why nothing of the file could be imported (also the one line of ``errors``).
    header_error: str | None = None

    def summary(self) -> str:
        return (
            f"{self.kind}: {self.inserted} added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {len(self.errors)} rejected ({self.path})"
        )


# ----- reading the file ---------------------------------------------------------------------

UTF8, CP1251, KOI8R, UTF16 = "utf-8", "cp1251", "koi8-r", "utf-16"
# What ``gateway import --encoding`` may force; UTF-16 is known by its byte-order mark.
ENCODINGS = (UTF8, CP1251, KOI8R)
_ENCODING_NAMES = {UTF8: "UTF-8", CP1251: "Windows-1251", KOI8R: "KOI8-R", UTF16: "UTF-16"}
_SNIFF_CHUNK = 1 << 20
_TOO_LONG = f"line longer than {MAX_ROW_BYTES >> 20} MiB"
# How much of the lines that voted Windows-1251 is kept to tell it from KOI8-R.
_SAMPLE_BYTES = 1 << 16


class HeaderError(ValueError):
    """A file that cannot be imported at all, for its encoding or its header row: one
    line, ``file:1: reason``. Nothing of that file is imported."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}:1: {reason}")
        self.reason = reason


@dataclass
class _Votes:
    utf8: int = 0
    cp1251: int = 0
    # The first lines that voted Windows-1251 (whole lines, about _SAMPLE_BYTES).
    sample: bytearray = field(default_factory=bytearray)


def _vote(file: IO[bytes]) -> _Votes:
    """The votes of the first :data:`SNIFF_LINES` lines holding a non-ASCII byte, from
    where ``file`` is (see :func:`sniff_encoding`)."""
    votes = _Votes()
    carry = b""
    skipping = False  # inside a line longer than MAX_ROW_BYTES: it does not vote
    while votes.utf8 + votes.cp1251 < SNIFF_LINES:
        chunk = file.read(_SNIFF_CHUNK)
        if not chunk:
            pieces = [] if skipping else [carry]
        else:
            data = carry + chunk
            if data.isascii():  # nothing to vote; a partial ASCII line changes nothing
                carry = b""
                continue
            pieces = data.split(b"\n")
            carry = pieces.pop()
            if skipping and pieces:
                pieces, skipping = pieces[1:], False
            elif skipping:
                carry = b""
                continue
            if len(carry) > MAX_ROW_BYTES:
                carry, skipping = b"", True
        for piece in pieces:
            if piece.isascii():
                continue
            try:
                piece.decode(UTF8)
                votes.utf8 += 1
            except UnicodeDecodeError:
                try:
                    piece.decode(CP1251)
                except UnicodeDecodeError:
                    continue
                votes.cp1251 += 1
                if len(votes.sample) < _SAMPLE_BYTES:
                    votes.sample += piece + b"\n"
        if not chunk:
            break
    return votes


def sniff_encoding(file: IO[bytes]) -> str:
    """The encoding of a registry file: ``utf-8`` or ``cp1251``. Leaves ``file`` at the
    first byte after a UTF-8 byte-order mark (or at the start).

    The rule, decided once per file:

    - a UTF-8 byte-order mark: UTF-8;
    - otherwise the first :data:`SNIFF_LINES` lines holding any non-ASCII byte vote
      (ASCII lines read the same in both): a line that decodes as UTF-8 votes UTF-8, one
      that does not but decodes as Windows-1251 votes Windows-1251, one that is neither
      (a byte such as 0x98, undefined in both) does not vote;
    - Windows-1251 only with more votes than UTF-8; a tie, or no non-ASCII byte at all,
      is UTF-8.

    Cyrillic text in Windows-1251 is practically never valid UTF-8, so a genuine
    Windows-1251 export is read as one, while a UTF-8 file with a broken line stays UTF-8
    and only that line is rejected. (UTF-16 byte-order marks, a forced encoding and
    KOI8-R: :func:`_open`.)
    """
    start = file.read(len(codecs.BOM_UTF8))
    if start == codecs.BOM_UTF8:
        return UTF8
    file.seek(0)
    votes = _vote(file)
    file.seek(0)
    return CP1251 if votes.cp1251 > votes.utf8 else UTF8


# Russian letters' frequencies in running text (per cent; ё counts as е): Windows-1251
# and KOI8-R hold the same letters at other bytes, so text read in the wrong one of the
# two has its frequent letters turned into rare ones.
_RUSSIAN = {
    "о": 10.97, "е": 8.45, "а": 8.01, "и": 7.35, "н": 6.70, "т": 6.26, "с": 5.47,
    "р": 4.73, "в": 4.54, "л": 4.40, "к": 3.49, "м": 3.21, "д": 2.98, "п": 2.81,
    "у": 2.62, "я": 2.01, "ы": 1.90, "ь": 1.74, "г": 1.70, "з": 1.65, "б": 1.59,
    "ч": 1.44, "й": 1.21, "х": 0.97, "ж": 0.94, "ш": 0.73, "ю": 0.64, "ц": 0.48,
    "щ": 0.36, "э": 0.32, "ф": 0.26, "ъ": 0.04,
}  # fmt: skip
_LOG_FREQUENCY = {letter: math.log(share / 100) for letter, share in _RUSSIAN.items()}
# Punctuation both encodings may hold; any other non-ASCII character counts as very rare.
_NEUTRAL = frozenset("«»№–—‘’‚“”„…•\u00a0")
_RARE = math.log(0.0005)
# A verdict needs this many letters, and KOI8-R must read this much better per letter.
# (Russian text scores 0.6-1.0 better in its own encoding than in the other, on samples
# of three lines to a thousand: the margin keeps a genuine Windows-1251 file well clear.)
_MIN_LETTERS, _MARGIN = 100, 0.25


def _russian_score(text: str) -> tuple[float, int]:
    """The mean log frequency of the non-ASCII characters of ``text`` as Russian letters,
    and how many there were."""
    total, count = 0.0, 0
    for char in text:
        if char.isascii() or char in _NEUTRAL:
            continue
        total += _LOG_FREQUENCY.get(char.lower().replace("ё", "е"), _RARE)
        count += 1
    return (total / count if count else 0.0), count


def _reads_like_koi8(sample: bytes) -> bool:
    """Whether lines taken for Windows-1251 read clearly better as KOI8-R."""
    as_cp1251, letters = _russian_score(sample.decode(CP1251, "replace"))
    as_koi8, _ = _russian_score(sample.decode(KOI8R))
    return letters >= _MIN_LETTERS and as_koi8 - as_cp1251 > _MARGIN


class _Utf16ToUtf8(io.RawIOBase):
    """A UTF-16 file (after its byte-order mark) read as UTF-8, a chunk at a time. What
    is not valid UTF-16 (an unpaired surrogate, an odd last byte) becomes bytes that are
    not valid UTF-8: the line holding it is rejected, never stored garbled."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(UTF16)("surrogatepass")
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._done:
            chunk = self._raw.read(1 << 16)
            self._done = not chunk
            try:
                text = self._decoder.decode(chunk, final=self._done)
            except UnicodeDecodeError:  # an odd byte at the end of the file
                self._pending = b"\xff"
                break
            self._pending = text.encode(UTF8, "surrogatepass")
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


@dataclass(frozen=True)
class _Source:
    """A registry file open for reading, in the encoding it is read in."""

    file: IO[bytes]  # its bytes (a UTF-16 file's transcoded to UTF-8)
    codec: str  # what its lines decode with
    name: str  # its encoding as people call it: UTF-8, Windows-1251, KOI8-R, UTF-16
    # Read in a single-byte encoding: a line that is valid UTF-8 is refused, not garbled.
    single_byte: bool


@contextmanager
def _open(path: Path, forced: str | None = None) -> Iterator[_Source]:
    """Open a registry file in its encoding; :class:`HeaderError` when it has none that
    can be read without garbling its text.

    - A byte-order mark decides: UTF-8, or UTF-16 (little- or big-endian); UTF-32 is
      refused. ``forced`` must not contradict it.
    - Otherwise ``forced`` (one of :data:`ENCODINGS`), refused for a file that is UTF-8
      beyond doubt (every line with non-ASCII bytes is valid UTF-8): read as a
      single-byte encoding its text would be garbled.
    - Otherwise :func:`sniff_encoding`'s vote; a file it takes for Windows-1251 that
      reads clearly better as KOI8-R is refused, naming ``--encoding koi8-r``.
    """
    if forced is not None and forced not in ENCODINGS:
        raise ValueError(f"unknown encoding {forced!r}: one of {', '.join(ENCODINGS)}")
    with path.open("rb", buffering=1 << 16) as file:
        start = file.read(4)
        if start in (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE):
            raise HeaderError(path, "UTF-32 is not supported: save the file as UTF-8")
        if start[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            if forced is not None:
                raise HeaderError(path, _contradicted("UTF-16", forced))
            file.seek(0)  # the decoder reads the byte-order mark itself
            with io.BufferedReader(_Utf16ToUtf8(file), 1 << 16) as utf8:
                yield _Source(utf8, UTF8, "UTF-16", single_byte=False)
            return
        if start[:3] == codecs.BOM_UTF8:
            if forced not in (None, UTF8):
                raise HeaderError(path, _contradicted("UTF-8", forced))
            file.seek(3)
            yield _Source(file, UTF8, "UTF-8", single_byte=False)
            return
        file.seek(0)
        votes = _vote(file)
        file.seek(0)
        if forced is None:
            codec = CP1251 if votes.cp1251 > votes.utf8 else UTF8
            if codec == CP1251 and _reads_like_koi8(bytes(votes.sample)):
                raise HeaderError(
                    path,
                    "the file reads like KOI8-R, not Windows-1251: give --encoding koi8-r "
                    "(or --encoding cp1251 to read it as Windows-1251 all the same)",
                )
        else:
            codec = forced
            if codec != UTF8 and votes.utf8 and not votes.cp1251:
                raise HeaderError(
                    path,
                    f"the file is UTF-8 (every line with non-ASCII bytes is valid UTF-8): "
                    f"read as {_ENCODING_NAMES[codec]} its text would be garbled; "
                    "leave out --encoding",
                )
        yield _Source(file, codec, _ENCODING_NAMES[codec], single_byte=codec != UTF8)


def _contradicted(found: str, forced: str) -> str:
    return (
        f"the file starts with a {found} byte-order mark, not {_ENCODING_NAMES[forced]} "
        "as --encoding says: leave out --encoding"
    )


def _mixed(data: bytes, source: _Source) -> str | None:
    """Why a line of a single-byte file is refused: it is valid UTF-8 (the file mixes
    encodings; read as the file's, its text would be garbled)."""
    if not source.single_byte or data.isascii():
        return None
    try:
        data.decode(UTF8)
    except UnicodeDecodeError:
        return None
    return (
        f"valid UTF-8 in a file read as {source.name} (the file mixes encodings): "
        "not loaded, lest its text be garbled"
    )


Line = tuple[int, bytes | None]  # (line number, its bytes; None for a line over the limit)


class _Lines:
    """The physical lines of a binary file, numbered from 1, at most MAX_ROW_BYTES each
    (a longer one is consumed and given as ``None``); lines can be pushed back."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._number = 0
        self._pending: deque[Line] = deque()

    def next(self) -> Line | None:
        if self._pending:
            return self._pending.popleft()
        data = self._file.readline(MAX_ROW_BYTES + 1)
        if not data:
            return None
        self._number += 1
        if len(data) > MAX_ROW_BYTES and not data.endswith(b"\n"):
            while True:  # the rest of the line, a bounded chunk at a time
                rest = self._file.readline(1 << 16)
                if not rest or rest.endswith(b"\n"):
                    break
            return self._number, None
        return self._number, data

    def push_back(self, lines: list[Line]) -> None:
        self._pending.extendleft(reversed(lines))


# Where the reader is within a row, as the csv module sees it (default dialect: quote
# '"', doubled quotes, no escape character).
_START, _FIELD, _QUOTED = 0, 1, 2
_QUOTE, _NEWLINE = ord('"'), ord("\n")


def _scan(data: bytes, delimiter: int, state: int) -> int:
    """The state after ``data`` (bytes: quote, delimiter and newline are ASCII, which
    never occur inside a UTF-8 sequence nor differ in Windows-1251)."""
    i, n = 0, len(data)
    sep = bytes([delimiter])
    while i < n:
        if state == _QUOTED:
            j = data.find(b'"', i)
            if j < 0:
                return _QUOTED
            # After a closing quote: another quote is an escaped one, a delimiter or a
            # newline ends the field, anything else goes on as unquoted text -- exactly
            # the transitions at the start of a field.
            state, i = _START, j + 1
        elif state == _FIELD:
            j, k = data.find(sep, i), data.find(b"\n", i)
            end = j if k < 0 or 0 <= j < k else k
            if end < 0:
                return _FIELD
            state, i = _START, end + 1
        else:
            c = data[i]
            if c == _QUOTE:
                state = _QUOTED
            elif c != delimiter and c != _NEWLINE:
                state = _FIELD
            i += 1
    return state


Record = list[tuple[int, bytes]] | str  # the lines of one row, or why it cannot be read


def _rest_of_row(lines: _Lines, number: int, data: bytes, delimiter: int) -> Record:
    """The lines of the row that starts with ``data``: more than one when a quoted field
    holds line breaks; a reason when that field is not closed within MAX_ROW_BYTES or by
    the end of the file (then the lines after the first are given back to be read afresh)."""
    state = _scan(data, delimiter, _START)
    parts, size = [(number, data)], len(data)
    while state == _QUOTED:
        item = lines.next()
        more = None if item is None else item[1]
        if item is None or more is None or size + len(more) > MAX_ROW_BYTES:
            lines.push_back([*parts[1:], *([] if item is None else [item])])
            within = "" if item is None else f" within {MAX_ROW_BYTES >> 20} MiB"
            return f"a quoted field that starts on this line is not closed{within}"
        parts.append((item[0], more))
        size += len(more)
        state = _scan(more, delimiter, state)
    return parts


class _Feed:
    """What one long-lived ``csv.reader`` reads: the lines of the current row only.
    ``starved`` tells that the reader wanted another line: the row goes on."""

    def __init__(self) -> None:
        self.pending: list[str] = []  # reversed
        self.starved = False

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if self.pending:
            return self.pending.pop()
        self.starved = True
        raise StopIteration


def _decode(parts: list[tuple[int, bytes]], source: _Source) -> list[str] | tuple[int, str]:
    texts = []
    for number, data in parts:
        try:
            texts.append(data.decode(source.codec))
        except UnicodeDecodeError as exc:
            column = len(data[: exc.start].decode(source.codec)) + 1
            if source.name == "UTF-16":  # the bytes are our transcoding's, not the file's
                return number, f"not valid UTF-16 (at column {column})"
            byte = data[exc.start]
            return number, f"not valid {source.name} (byte 0x{byte:02x} at column {column})"
        mixed = _mixed(data, source)
        if mixed is not None:
            return number, mixed
    return texts


def _rows(lines: _Lines, source: _Source, delimiter: str) -> Iterator[tuple[int, list[str] | str]]:
    """Each row's cells, or why it cannot be read, with the line it starts on.

    A line is first given to the csv module alone: if the module asks for no further
    line, that line is the row (most rows; no scanning of our own). If it asks for one,
    a quoted field goes on over the next lines: :func:`_scan` finds where the row ends,
    and the module reads all its lines together."""
    feed = _Feed()
    reader = csv.reader(feed, delimiter=delimiter)
    sep = ord(delimiter)
    encoding = source.codec

    def parse(texts: list[str]) -> list[str] | str:
        feed.pending, feed.starved = texts[::-1], False
        try:
            return next(reader, [])
        except csv.Error as exc:
            feed.pending.clear()
            return _csv_reason(exc)

    while (item := lines.next()) is not None:
        number, data = item
        if data is None:
            yield number, _TOO_LONG
            continue
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            pass  # _decode below says where; first find the row's end
        else:
            row = parse([text])
            # A csv error before the end of the line leaves unknown whether a quoted
            # field was open at its end: _scan decides then.
            if not feed.starved and (isinstance(row, list) or _scan(data, sep, _START) != _QUOTED):
                yield number, _mixed(data, source) or row
                continue
        parts = _rest_of_row(lines, number, data, sep)
        if isinstance(parts, str):
            yield number, parts
            continue
        texts = _decode(parts, source)
        if isinstance(texts, tuple):
            yield texts
            continue
        row = parse(texts)
        if feed.starved:  # cannot be: _scan and the csv module agree on where rows end
            row = "not readable as CSV"
        yield number, row


def _delimiter(head: str) -> str:
    """The delimiter the header line holds most of: ``,``, ``;`` or a tab (on a tie, in
    that order; a comma when it holds none)."""
    counts = {d: head.count(d) for d in (",", ";", "\t")}
    return max(counts, key=counts.__getitem__)


def _records(
    path: Path, encoding: str | None = None
) -> Generator[tuple[int, list[str] | str], None, None]:
    """Every row of the file, the header row first, as its cells (not stripped) or why it
    cannot be read, with the line it starts on; nothing for an empty file. Raises
    :class:`HeaderError` (at the first item) for a file that cannot be read at all."""
    with _open(path, encoding) as source:
        lines = _Lines(source.file)
        first = lines.next()
        if first is None:
            return
        lines.push_back([first])
        head = first[1] or b""
        if b"\x00" in head:
            raise HeaderError(
                path,
                "the header row holds NUL bytes: UTF-16 without a byte-order mark? "
                "Save the file as UTF-8",
            )
        yield from _rows(lines, source, _delimiter(head.decode(source.codec, "replace")))


def _names(cells: list[str]) -> list[str]:
    """Column names as the header row writes them: case and spaces around do not count."""
    return [cell.strip().lower() for cell in cells]


def read_csv(
    path: Path, *, encoding: str | None = None
) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    """Rows as ``(line number, {column: value})``, streamed, or ``(line number, RowError)``
    for a line that cannot be read (the reading goes on with the next row). Header names
    are lower-cased, values stripped, blank rows skipped. A row's number is the line it
    starts on. The delimiter: what the header line holds most of, ``,`` ``;`` or a tab;
    the encoding: ``encoding`` (one of :data:`ENCODINGS`) or a byte-order mark or
    :func:`sniff_encoding` (see :func:`_open`). A file that cannot be read at all, or
    without a readable header, gives one RowError for line 1 and nothing else."""
    records = _records(path, encoding)
    try:
        try:
            first = next(records, None)
        except HeaderError as exc:
            yield 1, RowError(exc.reason)
            return
        if first is None:
            return
        if isinstance(first[1], str):
            yield first[0], RowError(first[1])
            return
        header = _names(first[1])
        for start, row in records:
            if isinstance(row, str):
                yield start, RowError(row)
                continue
            cells = [cell.strip() for cell in row]
            if any(cells):
                yield start, dict(zip(header, cells, strict=False))
    finally:
        records.close()


def _csv_reason(exc: csv.Error) -> str:
    if "field larger than field limit" in str(exc):
        return f"a field is longer than {csv.field_size_limit():,} characters (the CSV limit)"
    if "new-line character seen in unquoted field" in str(exc):
        return "a carriage return inside an unquoted field"
    return f"not readable as CSV: {exc}"


# ----- converting values --------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DOTTED_DATE = re.compile(r"([0-9]{2})\.([0-9]{2})\.([0-9]{4})")
_CAPACITY = re.compile(r"[0-9]{1,3}(?:\.[0-9]{0,3})?")
# Thousands separators a spreadsheet may write (space, no-break space, narrow no-break
# space) go; a decimal comma is a point.
_SPACES = str.maketrans({" ": None, "\u00a0": None, "\u202f": None, ",": "."})


def _show(text: str, limit: int = 40) -> str:
    """A value for a message: whole when short, else its start and its length."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


_POSTGRESQL = make_url("postgresql+asyncpg://").get_dialect()()


def _numeric_limits(type_: TypeEngine[Any]) -> tuple[int, int] | None:
    """(digits before the point, digits after) a column holds on PostgreSQL, the stricter
    back end (SQLite stores ExactDecimal as text and would take anything)."""
    impl = type_.load_dialect_impl(_POSTGRESQL) if isinstance(type_, TypeDecorator) else type_
    if isinstance(impl, Numeric) and impl.precision is not None:
        scale = impl.scale or 0
        return impl.precision - scale, scale
    return None


_DECIMAL_LIMITS = _numeric_limits(t.ExactDecimal())
assert _DECIMAL_LIMITS is not None
# A number within those limits as written (no exponent, no leading zeros beyond them).
_PLAIN_NUMBER = re.compile(
    rf"[+-]?[0-9]{{1,{_DECIMAL_LIMITS[0]}}}(?:\.[0-9]{{0,{_DECIMAL_LIMITS[1]}}})?"
)


def _digits(value: Decimal) -> tuple[int, int]:
    """(digits before the point, significant digits after it) of a finite non-zero value,
    computed from its digits and exponent: no arithmetic on huge values."""
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    trailing = 0
    for digit in reversed(digits):
        if digit:
            break
        trailing += 1
    return max(0, len(digits) + exponent), max(0, -(exponent + trailing))


def _out_of_range(name: str, limits: tuple[int, int]) -> str:
    return (
        f"{name} is out of range: at most {limits[0]} digits before the decimal point "
        f"and {limits[1]} after"
    )


def _decimal(text: str, name: str) -> Decimal:
    """A decimal with a point or a comma, spaces as thousands separators, within the
    decimal columns' range (``NUMERIC(20, 6)``: 14 digits before the point, 6 after;
    zeros beyond the sixth decimal are dropped)."""
    cleaned = text.replace(",", ".")
    if " " in cleaned or not cleaned.isascii():
        cleaned = cleaned.translate(_SPACES)
    if _PLAIN_NUMBER.fullmatch(cleaned):  # within range as written: most values
        return Decimal(cleaned)
    if not _NUMBER.fullmatch(cleaned):
        raise RowError(f"{name} is not a number: {_show(text)}")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:  # e.g. an exponent too large for the decimal module
        raise RowError(f"{name} is not a number: {_show(text)}") from None
    assert _DECIMAL_LIMITS is not None
    if not value:
        return Decimal(0)
    whole, fraction = _digits(value)
    if whole > _DECIMAL_LIMITS[0] or fraction > _DECIMAL_LIMITS[1]:
        raise RowError(f"{_out_of_range(name, _DECIMAL_LIMITS)}: {_show(text)}")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -_DECIMAL_LIMITS[1]:
        value = value.quantize(Decimal(1).scaleb(-_DECIMAL_LIMITS[1]))  # only zeros go
    elif exponent > 0:
        value = value.quantize(Decimal(1))  # 1E+3 is written 1000
    return value


def _date(text: str, name: str) -> date:
    """``YYYY-MM-DD`` or ``DD.MM.YYYY``."""
    try:
        if _DATE.fullmatch(text):
            return date.fromisoformat(text)
        dotted = _DOTTED_DATE.fullmatch(text)
        if dotted:
            day, month, year = (int(part) for part in dotted.groups())
            return date(year, month, day)
        raise ValueError
    except ValueError:
        raise RowError(f"{name} must be a date YYYY-MM-DD or DD.MM.YYYY: {_show(text)}") from None


def _opt(text: str, convert: Callable[[str, str], Any], name: str) -> Any:
    return convert(text, name) if text else None


def _enum(text: str, kind: type[Service] | type[Zone], name: str) -> str:
    try:
        return kind(text.lower()).value
    except ValueError:
        allowed = "|".join(m.value for m in kind)
        raise RowError(f"{name} must be one of {allowed}: {_show(text)}") from None


def _count(text: str, name: str) -> int:
    """A whole number 0..MAX_RESIDENTS in ASCII digits (``²`` is a digit to
    ``str.isdigit`` but not to ``int``; 5,000 digits are over ``int``'s limit)."""
    significant = text.lstrip("0") or "0"
    if (
        not (text.isascii() and text.isdigit())
        or len(significant) > _RESIDENTS_DIGITS
        or int(significant) > MAX_RESIDENTS
    ):
        raise RowError(f"{name} must be a whole number from 0 to {MAX_RESIDENTS}: {_show(text)}")
    return int(significant)


def _capacity(text: str) -> Capacity:
    if not _CAPACITY.fullmatch(text):
        raise RowError(f"digit capacity must look like 6.3, got {_show(text)}")
    try:
        return Capacity.parse(text)
    except ValueError as exc:
        raise RowError(str(exc)) from None


def _account(row: Mapping[str, str]) -> dict[str, Any]:
    return {
        "account": row["account"],
        "address": row.get("address", ""),
        "building": row.get("building", ""),
        "phone": row.get("phone", ""),
        "debt": _decimal(row.get("debt") or "0", "debt"),
        "receipt_code": row.get("receipt_code", ""),
        "last_bill_total": _opt(row.get("last_bill_total", ""), _decimal, "last_bill_total"),
        "residents": _opt(row.get("residents", ""), _count, "residents"),
    }


def _meter(row: Mapping[str, str]) -> dict[str, Any]:
    service = _enum(row["service"], Service, "service")
    zone = _enum(row["zone"], Zone, "zone")
    if service == Service.ELECTRICITY and zone in (Zone.KITCHEN, Zone.BATH):
        raise RowError(f"zone {zone} is for water meters")
    if service != Service.ELECTRICITY and zone in (Zone.DAY, Zone.NIGHT):
        raise RowError(f"zone {zone} is for electricity meters")
    capacity = _capacity(row["digits"])
    last_value = _opt(row.get("last_value", ""), _decimal, "last_value")
    if last_value is not None and not capacity.fits(last_value):
        raise RowError(f"last_value {last_value} does not fit digits {capacity}")
    return {
        "account": row["account"],
        "meter": row["meter"],
        "service": service,
        "zone": zone,
        "digits": str(capacity),
        "verified_until": _opt(row.get("verified_until", ""), _date, "verified_until"),
        "last_value": last_value,
        "last_date": _opt(row.get("last_date", ""), _date, "last_date"),
    }


def _tariff(row: Mapping[str, str]) -> dict[str, Any]:
    price = _decimal(row["price"], "price")
    if price < 0:
        raise RowError(f"price must not be negative: {_show(row['price'])}")
    normative = _opt(row.get("normative", ""), _decimal, "normative")
    if normative is not None and normative < 0:
        raise RowError(f"normative must not be negative: {_show(row['normative'])}")
    return {
        "service": _enum(row["service"], Service, "service"),
        "zone": _enum(row["zone"], Zone, "zone"),
        "price": price,
        "valid_from": _date(row["valid_from"], "valid_from"),
        "normative": normative,
    }


def _elder(row: Mapping[str, str]) -> dict[str, Any]:
    email = row["email"].lower()
    if "@" not in email:
        raise RowError(f"not an email address: {_show(row['email'])}")
    return {"email": email, "building": row["building"]}


# ----- what a column holds ------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tabs, line breaks ok


@dataclass(frozen=True)
class _Columns:
    """What a table's columns hold, read from their types in gateway/storage/tables.py."""

    # (name, String(n)'s n or None for Text, the control characters refused there)
    texts: tuple[tuple[str, int | None, re.Pattern[str]], ...]
    # NUMERIC(p, s) on PostgreSQL as (p - s, s), for the columns whose limits are not
    # those _decimal already enforces (none today: every decimal column is ExactDecimal).
    numbers: dict[str, tuple[int, int]]

    @classmethod
    def of(cls, table: Table) -> _Columns:
        texts: list[tuple[str, int | None, re.Pattern[str]]] = []
        numbers: dict[str, tuple[int, int]] = {}
        for column in table.columns:
            type_ = column.type
            limits = _numeric_limits(type_)
            if limits is not None:
                if limits != _DECIMAL_LIMITS:
                    numbers[column.name] = limits
            elif isinstance(type_, String):  # Text is a String without a length
                free = type_.length is None or isinstance(type_, Text)
                texts.append((column.name, type_.length, _CONTROL_IN_TEXT if free else _CONTROL))
        return cls(tuple(texts), numbers)

    def check(self, row: Mapping[str, Any]) -> None:
        """Refuse what the column could not hold (on PostgreSQL; SQLite alike)."""
        for name, limit, control in self.texts:
            value = row.get(name)
            if not isinstance(value, str):
                continue
            if not value.isprintable():
                found = control.search(value)
                if found:
                    code = ord(found.group())
                    raise RowError(f"{name} contains a control character (U+{code:04X})")
            if limit is not None and len(value) > limit:
                raise RowError(f"{name} is too long: {len(value):,} characters, at most {limit}")
        for name, limits in self.numbers.items():
            value = row.get(name)
            if isinstance(value, Decimal) and value:
                whole, fraction = _digits(value)
                if whole > limits[0] or fraction > limits[1]:
                    raise RowError(_out_of_range(name, limits))


Convert = Callable[[Mapping[str, str]], dict[str, Any]]
_KINDS: dict[str, tuple[Convert, Table, tuple[str, ...]]] = {
    "accounts": (_account, t.accounts, ("account",)),
    "meters": (_meter, t.registers, ("account", "meter", "zone")),
    "tariffs": (_tariff, t.tariffs, ("service", "zone", "valid_from")),
    "elders": (_elder, t.elders, ("email", "building")),
}
_COLUMNS = {kind: _Columns.of(table) for kind, (_c, table, _k) in _KINDS.items()}
ORDER = ("accounts", "meters", "tariffs", "elders")

# ----- importing ----------------------------------------------------------------------------

Progress = Callable[[str, int], None]
# Rows read so far (with those rejected) and the line the last one starts on.
Ticker = Callable[[int, int], None]


def _close(column: str, names: list[str]) -> str | None:
    """The name among ``names`` (not a column) that looks like ``column`` misspelt."""
    found = difflib.get_close_matches(column, names[:200], n=1, cutoff=0.75)
    return found[0] if found else None


def _header(kind: str, path: Path, first: tuple[int, list[str] | str] | None) -> list[str]:
    """The column names of the header row, checked: every required column present, no
    column twice, no unknown name that looks like a misspelt column (that column's
    values would silently be lost). Otherwise :class:`HeaderError`, one line naming
    every problem and the expected columns."""
    expected, required = COLUMNS[kind], REQUIRED[kind]
    described = f"expected columns: {','.join(expected)} ({', '.join(required)} required)"
    if first is None:
        raise HeaderError(path, f"the file is empty: no header row; {described}")
    if isinstance(first[1], str):
        raise HeaderError(path, f"the header row cannot be read: {first[1]}; {described}")
    names = _names(first[1])
    counts = Counter(name for name in names if name)
    unknown = [name for name in counts if name not in expected]
    problems = []
    for column in expected:
        if column in counts:
            if counts[column] > 1:
                problems.append(f"column {column} is there {counts[column]} times")
            continue
        hint = _close(column, unknown)
        if column in required:
            meant = f' (is "{hint}" meant to be {column}?)' if hint else ""
            problems.append(f"no column {column}{meant}")
        elif hint:
            problems.append(f'"{hint}" is not a column (is it {column}?)')
    if problems:
        raise HeaderError(path, f"{'; '.join(problems)}; {described}")
    return names


def _ignored(kind: str, path: Path, names: list[str]) -> list[str]:
    """A note on the header's columns that no column of ``kind`` reads (as before: they
    are ignored)."""
    unknown = [name for name in dict.fromkeys(names) if name and name not in COLUMNS[kind]]
    if not unknown:
        return []
    shown = ", ".join(_show(name) for name in unknown[:10])
    more = f" and {len(unknown) - 10:,} more" if len(unknown) > 10 else ""
    return [f"{path}:1: columns that are not {kind} columns, ignored: {shown}{more}"]


def _valid_rows(
    kind: str,
    path: Path,
    report: FileReport,
    seen: dict[object, int],
    *,
    encoding: str | None,
    country_code: str,
    tick: Ticker | None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The file's good rows, converted and checked, each key once (``seen``: every key
    with its line); each bad one is a ``file:line: reason`` in ``report.errors``.
    Raises :class:`HeaderError` (before any row) for a file that cannot be imported."""
    convert, _table, key = _KINDS[kind]
    columns = _COLUMNS[kind]
    records = _records(path, encoding)
    line = 1
    try:
        header = _header(kind, path, next(records, None))
        report.notes.extend(_ignored(kind, path, header))
        for line, cells in records:
            if isinstance(cells, str):
                reason, values = cells, []
            else:
                reason, values = None, [cell.strip() for cell in cells]
                if not any(values):
                    continue
            report.rows += 1
            if tick is not None and report.rows % BATCH == 0:
                tick(report.rows, line)
            try:
                if reason is not None:
                    raise RowError(reason)
                raw = dict(zip(header, values, strict=False))
                missing = [c for c in REQUIRED[kind] if not raw.get(c)]
                if missing:
                    raise RowError(f"missing {', '.join(missing)}")
                row = convert(raw)
                if "phone" in row:
                    row["phone"] = e164(row["phone"], country_code)
                columns.check(row)
            except RowError as exc:
                report.errors.append(f"{path}:{line}: {exc}")
                continue
            row_key: object = (
                row[key[0]] if len(key) == 1 else "\x1f".join(str(row[k]) for k in key)
            )
            if row_key in seen:
                report.errors.append(f"{path}:{line}: same key as line {seen[row_key]}, skipped")
                continue
            seen[row_key] = line
            yield line, row
    finally:
        records.close()
    if tick is not None and (report.rows % BATCH or not report.rows):
        tick(report.rows, line)


async def import_file(
    db: Database,
    kind: str,
    path: Path,
    progress: Progress | None = None,
    *,
    country_code: str = "7",
    encoding: str | None = None,
    tick: Ticker | None = None,
) -> FileReport:
    """Validate and upsert one registry file; returns what changed and what was rejected.
    An account's phone is stored in E.164 (``country_code`` for numbers written without
    one), the form SMS senders are keyed in. ``encoding`` forces one of
    :data:`ENCODINGS`. A file whose header (or encoding) is refused writes nothing: its
    report has that one error, also in ``header_error``. ``progress`` is told the rows
    written so far, ``tick`` the rows read (rejected ones too) and the last one's line."""
    _convert, table, key = _KINDS[kind]
    report = FileReport(kind, str(path))
    batch: list[tuple[int, dict[str, Any]]] = []
    # Every key of the file with its line. A single column is the key itself, several are
    # joined with U+001F, which no accepted value holds: far smaller than tuples.
    seen: dict[object, int] = {}
    done = 0

    async def flush() -> None:
        nonlocal done
        rows = batch
        if kind == "meters":
            rows = await _drop_unknown_accounts(db, rows, report)
        if rows:
            counts = await _upsert(db, table, key, rows, report)
            report.inserted += counts.inserted
            report.updated += counts.updated
            report.unchanged += counts.unchanged
        done += len(batch)
        batch.clear()
        if progress:
            progress(kind, done)

    rows = _valid_rows(
        kind, path, report, seen, encoding=encoding, country_code=country_code, tick=tick
    )
    try:
        for line, row in rows:
            batch.append((line, row))
            if len(batch) >= BATCH:
                await flush()
    except HeaderError as exc:  # before any row: nothing of the file was written
        report.header_error = str(exc)
        report.errors.append(str(exc))
        return report
    await flush()
    if report.inserted or report.updated:
        await db.analyze(table.name)
    return report


@dataclass
class FileCheck:
    """What :func:`check_file` found: the report of an import that would run now."""

    report: FileReport
    # An accounts file's accounts (its good rows): known to a meters file checked after.
    accounts: frozenset[str] = frozenset()


async def check_file(
    kind: str,
    path: Path,
    *,
    db: Database | None = None,
    accounts: frozenset[str] = frozenset(),
    country_code: str = "7",
    encoding: str | None = None,
    tick: Ticker | None = None,
) -> FileCheck:
    """Every check :func:`import_file` makes, writing nothing: the encoding and the
    header (:class:`HeaderError`), then every row. With ``db``, what the import would do
    there too (read only): how many rows it would add, update and leave unchanged, and a
    meter of an account neither in the database nor in ``accounts`` (an accounts file
    of the same run) is rejected. What the database itself would refuse (its own
    constraints) only the import finds."""
    _convert, table, key = _KINDS[kind]
    report = FileReport(kind, str(path))
    seen: dict[object, int] = {}
    batch: list[tuple[int, dict[str, Any]]] = []

    async def flush() -> None:
        rows = batch
        if db is not None and rows:
            if kind == "meters":
                rows = await _drop_unknown_accounts(db, rows, report, also_known=accounts)
            if rows:
                values = [row for _, row in rows]
                counts = await db.run(lambda uow: _compare(uow.conn, table, key, values))
                report.inserted += counts.inserted
                report.updated += counts.updated
                report.unchanged += counts.unchanged
        batch.clear()

    rows = _valid_rows(
        kind, path, report, seen, encoding=encoding, country_code=country_code, tick=tick
    )
    for line, row in rows:
        batch.append((line, row))
        if len(batch) >= BATCH:
            await flush()
    await flush()
    known = frozenset(str(k) for k in seen) if kind == "accounts" else frozenset()
    return FileCheck(report, known)


def count_lines(path: Path, encoding: str | None = None) -> int:
    """How many lines the file has, as the import reads it (for a progress total)."""
    count, last = 0, b"\n"
    with _open(path, encoding) as source:
        while chunk := source.file.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk
    return count + (not last.endswith(b"\n"))


def _compare(
    conn: Connection, table: Table, key: tuple[str, ...], rows: list[dict[str, Any]]
) -> UpsertCounts:
    """What :meth:`SqlRegistry.upsert` would do with ``rows``, reading only."""
    cols = [table.c[k] for k in key]
    keys = [tuple(row[k] for k in key) for row in rows]
    condition = tuple_(*cols).in_(keys) if len(cols) > 1 else cols[0].in_([k[0] for k in keys])
    value_cols = list(rows[0].keys())
    existing = {
        tuple(r._mapping[k] for k in key): r._mapping
        for r in conn.execute(select(*[table.c[c] for c in value_cols]).where(condition))
    }
    inserted = updated = unchanged = 0
    for row_key, row in zip(keys, rows, strict=True):
        current = existing.get(row_key)
        if current is None:
            inserted += 1
        elif any(current[c] != row[c] for c in value_cols):
            updated += 1
        else:
            unchanged += 1
    return UpsertCounts(inserted, updated, unchanged)


def _upsert_work(
    table: Table, key: tuple[str, ...], values: list[dict[str, Any]]
) -> Callable[[UnitOfWork], UpsertCounts]:
    return lambda uow: uow.registry.upsert(table, key, values)


async def _upsert(
    db: Database,
    table: Table,
    key: tuple[str, ...],
    rows: list[tuple[int, dict[str, Any]]],
    report: FileReport,
) -> UpsertCounts:
    """Upsert a batch in one transaction; if the database refuses it, row by row, each
    in its own transaction, rejecting only the rows it refuses."""
    try:
        return await db.run(_upsert_work(table, key, [row for _, row in rows]))
    except StatementError as exc:
        if not _refused(exc):
            raise
        log.warning(
            "registry_batch_refused",
            kind=report.kind,
            path=report.path,
            first_line=rows[0][0],
            rows=len(rows),
            error=_driver_error(exc).__class__.__name__,
        )
    inserted = updated = unchanged = 0
    for line, row in rows:
        try:
            counts = await db.run(_upsert_work(table, key, [row]))
        except StatementError as exc:
            if not _refused(exc):
                raise
            report.errors.append(f"{report.path}:{line}: {_refusal(exc)}")
            continue
        inserted += counts.inserted
        updated += counts.updated
        unchanged += counts.unchanged
    return UpsertCounts(inserted, updated, unchanged)


def _refused(exc: StatementError) -> bool:
    """The database refused the data (a value, a constraint), not the work: SQLAlchemy's
    DataError or IntegrityError, SQLSTATE class 22 or 23 (asyncpg's data errors reach us
    as plain DBAPIError), or a value that could not even be bound. Anything else (an
    outage, a programming error) propagates."""
    if isinstance(exc, DataError | IntegrityError) or not isinstance(exc, DBAPIError):
        return True
    state = getattr(exc.orig, "sqlstate", None)
    return isinstance(state, str) and state[:2] in ("22", "23")


def _driver_error(exc: StatementError) -> BaseException:
    orig: BaseException | None = exc.orig
    if orig is None:
        return exc
    return orig.__cause__ if orig.__cause__ is not None else orig


_SCHEMA_NAMES = frozenset(
    [table.name for table in t.metadata.tables.values()]
    + [column.name for table in t.metadata.tables.values() for column in table.columns]
    + [str(c.name) for table in t.metadata.tables.values() for c in table.constraints if c.name]
    + [
        f"{table.name}.{column.name}"
        for table in t.metadata.tables.values()
        for column in table.columns
    ]
)
_QUOTED_TEXT = re.compile(r"\"([^\"]*)\"|'([^']*)'")


def _refusal(exc: StatementError) -> str:
    """Why the database refused a row: its error class and message, with no value of the
    row in it (never ``str(exc)``, which has the statement and its parameters). Quoted
    words are kept only when they name the schema (a table, column, constraint); what
    follows the message's first ``": "`` only when it is a list of ``table.column``."""
    error = _driver_error(exc)
    names = _SCHEMA_NAMES | {
        value
        for attr in ("table_name", "column_name", "constraint_name")
        if isinstance(value := getattr(error, attr, None), str)
    }
    lines = str(error).strip().splitlines()
    message, _sep, tail = (lines[0] if lines else "").partition(": ")
    message = _QUOTED_TEXT.sub(
        lambda m: m.group() if (m.group(1) or m.group(2) or "") in names else "…", message
    )
    if tail and all(part.strip() in _SCHEMA_NAMES for part in tail.split(",")):
        message = f"{message}: {tail}"
    column = getattr(error, "column_name", None)
    if isinstance(column, str) and column in names and column not in message:
        message = f"{message} (column {column})"
    return f"the database refused the row: {type(error).__name__}: {message[:160]}"


async def _drop_unknown_accounts(
    db: Database,
    rows: list[tuple[int, dict[str, Any]]],
    report: FileReport,
    also_known: frozenset[str] = frozenset(),
) -> list[tuple[int, dict[str, Any]]]:
    numbers = [r["account"] for _, r in rows if r["account"] not in also_known]
    known = await db.run(lambda uow: uow.registry.existing_accounts(numbers))
    kept = []
    for line, row in rows:
        if row["account"] in known or row["account"] in also_known:
            kept.append((line, row))
        else:
            report.errors.append(f"{report.path}:{line}: unknown account {row['account']}")
    return kept
