"""One received email (RFC 5322 bytes) turned into the list text for
:func:`parsers.parse_list`, and a note of every attachment read or ignored. Pure: no I/O,
nothing raises on a broken message; stdlib ``email`` (``policy.default``) and openpyxl.

**Body.** The first text/plain body part, else the HTML one turned into text (tags
stripped; ``<br>``, ``</p>``, ``</div>``, ``</tr>``, ``</li>``, headings and the like end a
line; table cells are separated by spaces; scripts, styles and the head are dropped;
entities unescaped; the lines of a ``<pre>`` stay lines). Quoted reply text is dropped:
plain lines starting with ``>``, everything after an Outlook ``-----Original
Message-----`` / ``-----Исходное сообщение-----`` line, and in HTML ``<blockquote>``,
Gmail's ``gmail_quote`` and everything after Outlook's ``divRplyFwdMsg``. So is the
signature: everything after a ``-- `` line (RFC 3676; ``--`` too, as clients strip the
space), Gmail's ``gmail_signature`` and Thunderbird's ``moz-signature``.
``format=flowed`` is unwrapped.

**Charsets** (:func:`decode_text`): bytes that are valid UTF-8 are UTF-8 whatever the
label says (cp1251 or KOI8-R Cyrillic is practically never valid UTF-8, and ASCII is the
same in all); otherwise the declared charset, then cp1251, then latin-1 with replacement.
Labels that are not ASCII-based (UTF-16, UTF-7, ISO-2022-*) are tried first.

**Attachments** are recognised by file extension, else by content type:

* CSV (``.csv``, ``.tsv``, ``text/csv``…): UTF-8 (BOM or not), else Windows-1251 (a
  UTF-16 BOM, as Excel's "Unicode text" writes, is honoured); the delimiter is sniffed
  among ``;``, tab and ``,`` (see :func:`_sniff_delimiter`).
* XLSX (``.xlsx``, ``.xlsm``): openpyxl read-only (defusedxml is installed, so its XML is
  parsed safely), every visible worksheet in order, computed values (``data_only``);
  whole floats lose their ``.0``, other floats keep up to 15 significant digits, dates,
  times and booleans are ignored. At most :data:`MAX_XLSX_ROWS` rows and
  :data:`MAX_COLUMNS` columns are read, and a workbook whose declared uncompressed size is
  over :data:`MAX_XLSX_EXPANSION` times the attachment limit is refused unread (a zip
  bomb); Python's zipfile never inflates past the declared size.
* Plain text (``.txt``, ``text/plain`` attachments): decoded as CSV is, lines kept.

Rows to lines (CSV and XLSX, :func:`_row_line`): rows without a run of 6 digits (the
header, totals, blank rows) are skipped — they would give ``parse_list`` nothing; a header
row before the first data row is used to find the apartment column (``кв``, ``квартира``,
``apt``, ``flat``). The account is the first cell holding 6 digits. Cells before it are
not readings: the grammar would take a leading apartment number for the account and
refuse a name, so the apartment cell (the header's apartment column, else a short number
like ``12`` or ``12а`` just before the account) becomes the ``кв. 12`` prefix
``parse_list`` already strips, and any other leading cell (names, row numbers) is dropped.
The account and every non-empty cell after it are joined by spaces:
``12;1234567890;12345;6789`` → ``кв. 12 1234567890 12345 6789``.

Anything else (PDF, images, Word, old XLS, archives, forwarded mails), anything over
``max_attachment_bytes``, text in neither UTF-8 nor Windows-1251, an encrypted or corrupt
XLSX, is ignored with a note in Russian for the report. Inline images (logos of a
signature) are skipped silently.

``MailContent.text`` is the body, then each attachment's lines, the sources separated by
a blank line; ``MailContent.sources`` maps its line numbers back to each source.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from html.parser import HTMLParser

import openpyxl

from channels.email_safety import from_address, header_text

BODY_NAME = "текст письма"
MAX_XLSX_ROWS = 50_000
MAX_COLUMNS = 50
MAX_XLSX_EXPANSION = 30
MAX_NAME = 120

_ACCOUNT = re.compile(r"[0-9]{6,}")
_APARTMENT_VALUE = re.compile(r"^(?:кв(?:артира)?\.?\s*)?([0-9]{1,4}\s*[а-яa-z]?)$", re.IGNORECASE)
_APARTMENT_HEADER = re.compile(
    r"^\s*(?:№\s*)?(?:кв(?:артира)?\.?|apt\.?|apartment|flat)(?:\s|\.|№|$)", re.IGNORECASE
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:original message|исходное сообщение)\s*-{2,}\s*$", re.IGNORECASE
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

# Charset labels whose bytes are not ASCII-based: UTF-8 validity says nothing about them.
_NOT_ASCII_BASED = ("utf-16", "utf-32", "utf_16", "utf_32", "utf-7", "utf_7", "iso-2022", "hz")

_CSV_EXTENSIONS = (".csv", ".tsv")
_XLSX_EXTENSIONS = (".xlsx", ".xlsm")
_CSV_TYPES = frozenset(
    {
        "text/csv",
        "text/tab-separated-values",
        "text/comma-separated-values",
        "application/csv",
    }
)
_XLSX_TYPES = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-excel.sheet.macroenabled.12",
    }
)
# Recognised but unread: (extensions, content types, note).
_UNREAD_KINDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...] = (
    ("pdf", (".pdf",), ("application/pdf",), "не читается (PDF)"),
    (
        "xls",
        (".xls",),
        ("application/vnd.ms-excel",),
        "не читается (старый формат Excel XLS), сохраните как XLSX или CSV",
    ),
    (
        "word",
        (".doc", ".docx", ".rtf", ".odt"),
        (
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/rtf",
        ),
        "не читается (документ Word), пришлите таблицу XLSX или CSV",
    ),
    ("ods", (".ods",), ("application/vnd.oasis.opendocument.spreadsheet",), "не читается (ODS)"),
    (
        "archive",
        (".zip", ".rar", ".7z", ".gz"),
        ("application/zip", "application/x-rar-compressed", "application/x-7z-compressed"),
        "не читается (архив)",
    ),
)


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment of the mail: read (``lines`` data lines put into the text) or
    ignored (``lines`` is None) and why. ``kind`` is ``csv``, ``xlsx``, ``txt``, ``pdf``,
    ``image``, ``xls``, ``word``, ``ods``, ``archive``, ``message`` or ``other``;
    ``reason`` is None when read, else ``too_large``, ``unsupported``, ``undecodable``
    or ``corrupt``; ``note`` is the Russian text for the report."""

    name: str
    kind: str
    lines: int | None
    note: str
    reason: str | None = None

    @property
    def read(self) -> bool:
        return self.lines is not None

    def describe(self) -> str:
        """``схема.pdf — не читается (PDF)``."""
        return f"{self.name} — {self.note}"


@dataclass(frozen=True, slots=True)
class Source:
    """Where one source sits in :attr:`MailContent.text`: lines ``first_line`` to
    ``first_line + line_count - 1`` (1-based, as ``ListLine.number``)."""

    name: str
    first_line: int
    line_count: int


@dataclass(frozen=True, slots=True)
class MailContent:
    """What one email says. ``sender`` is the From address, bare and lower-cased (``""``
    when there is not exactly one); ``text`` the list text for ``parse_list``;
    ``too_large`` is set when the message was over the size limit and only its headers
    were read (``text`` is then empty)."""

    sender: str
    subject: str
    message_id: str | None
    body: str
    body_kind: str  # "plain", "html" or "none"
    text: str
    sources: tuple[Source, ...]
    attachments: tuple[Attachment, ...]
    too_large: bool = False

    @property
    def ignored(self) -> tuple[Attachment, ...]:
        return tuple(item for item in self.attachments if not item.read)

    def notes(self) -> list[str]:
        """One report line per ignored attachment."""
        return [item.describe() for item in self.ignored]

    def locate(self, line_number: int) -> tuple[str, int] | None:
        """The source of line ``line_number`` of :attr:`text` and its line within it."""
        for source in self.sources:
            if source.first_line <= line_number < source.first_line + source.line_count:
                return source.name, line_number - source.first_line + 1
        return None


# --- parsing -------------------------------------------------------------------------


def parse_bytes(raw: bytes) -> EmailMessage:
    """The message parsed with ``policy.default`` (never raises: defects are recorded)."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def read_message(
    raw: bytes, *, max_attachment_bytes: int, max_message_bytes: int | None = None
) -> MailContent:
    """Parse ``raw`` and read it (:func:`content_of`). Over ``max_message_bytes`` only the
    headers are parsed: the result has the sender and subject, no text, ``too_large``."""
    if max_message_bytes is not None and len(raw) > max_message_bytes:
        headers = BytesHeaderParser(policy=policy.default).parsebytes(raw)
        return MailContent(
            sender=from_address(headers) or "",
            subject=header_text(headers, "Subject") or "",
            message_id=header_text(headers, "Message-ID"),
            body="",
            body_kind="none",
            text="",
            sources=(),
            attachments=(),
            too_large=True,
        )
    return content_of(parse_bytes(raw), max_attachment_bytes=max_attachment_bytes)


def content_of(message: EmailMessage, *, max_attachment_bytes: int) -> MailContent:
    """The body and attachments of a parsed message (see the module's rules)."""
    body_part = _body_part(message)
    body_kind, body = _body_of(body_part)

    attachments: list[Attachment] = []
    chunks: list[tuple[str, list[str]]] = [(BODY_NAME, body.splitlines())] if body else []
    for index, part in enumerate(_attachment_parts(message, body_part), start=1):
        attachment, lines = _read_attachment(part, index, max_attachment_bytes)
        attachments.append(attachment)
        if lines:
            chunks.append((attachment.name, lines))

    text_lines: list[str] = []
    sources: list[Source] = []
    for name, lines in chunks:
        if text_lines:
            text_lines.append("")
        sources.append(Source(name, len(text_lines) + 1, len(lines)))
        text_lines.extend(lines)
    return MailContent(
        sender=from_address(message) or "",
        subject=header_text(message, "Subject") or "",
        message_id=header_text(message, "Message-ID"),
        body=body,
        body_kind=body_kind,
        text="\n".join(text_lines),
        sources=tuple(sources),
        attachments=tuple(attachments),
    )


def body_of(message: EmailMessage) -> str:
    """The text of the body alone (attachments unread): what a mail that is not read as a
    list is recorded with."""
    return _body_of(_body_part(message))[1]


def _body_of(body_part: EmailMessage | None) -> tuple[str, str]:
    """The body's kind (``plain``, ``html`` or ``none``) and its text, quotes dropped."""
    if body_part is None:
        return "none", ""
    decoded = decode_text(_payload(body_part), body_part.get_content_charset())
    if body_part.get_content_type() == "text/html":
        return "html", clean_body(html_to_text(decoded))
    params = {k.lower(): v.lower() for k, v in body_part.get_params(failobj=[]) if v}
    if params.get("format") == "flowed":
        decoded = unflow(decoded, delsp=params.get("delsp") == "yes")
    return "plain", clean_body(decoded)


def _body_part(message: EmailMessage) -> EmailMessage | None:
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except Exception:
        return None
    return part if isinstance(part, EmailMessage) else None


def _attachment_parts(message: Message, body: Message | None) -> Iterator[Message]:
    """Every leaf part that is not the body nor an alternative of it; a forwarded message
    (``message/rfc822``) is one part, not descended into."""
    if message is body:
        return
    if message.is_multipart():
        if message.get_content_type() == "message/rfc822":
            yield message
            return
        payload = message.get_payload()
        if isinstance(payload, list):
            for child in payload:
                if isinstance(child, Message):
                    yield from _attachment_parts(child, body)
        return
    ctype = message.get_content_type()
    disposition = message.get_content_disposition()
    name = _filename(message)
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not name:
        return  # an alternative of the body, not an attachment
    if ctype.startswith("image/") and disposition != "attachment":
        return  # an inline picture: a logo in a signature
    yield message


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:
        return ""
    return _CONTROL.sub(" ", name).strip()[:MAX_NAME]


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""


# --- text ------------------------------------------------------------------------------


def decode_text(data: bytes, declared: str | None) -> str:
    """Text of ``data``: see the module's charset rules. Never raises."""
    label = _codec(declared)
    candidates: list[str] = []
    if label is not None and label.startswith(_NOT_ASCII_BASED):
        candidates.append(label)
    candidates.append("utf-8")
    if label is not None:
        candidates.append(label)
    candidates.append("cp1251")
    for encoding in candidates:
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1", errors="replace")


def _codec(label: str | None) -> str | None:
    """The codec name of a charset label, or None when Python does not know it."""
    if not label:
        return None
    try:
        return codecs.lookup(label.strip().strip('"')).name
    except (LookupError, ValueError):
        return None


def unflow(text: str, *, delsp: bool) -> str:
    """Undo ``format=flowed`` (RFC 3676): a line ending in a space continues on the next,
    a leading space is unstuffed; the signature line ``-- `` stays a line."""
    out: list[str] = []
    current = ""
    joining = False
    for raw_line in text.splitlines():
        line = raw_line[1:] if raw_line.startswith(" ") else raw_line
        flowed = line.endswith(" ") and line != "-- "
        if flowed and delsp:
            line = line[:-1]
        current = current + line if joining else line
        joining = flowed
        if not flowed:
            out.append(current)
            current = ""
    if joining:
        out.append(current)
    return "\n".join(out)


def clean_body(text: str) -> str:
    """Drop quoted lines (``>``), everything from an Outlook original-message line or a
    signature separator (``-- ``) on, trailing spaces and runs of blank lines."""
    kept: list[str] = []
    for raw_line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw_line.replace("\xa0", " ").rstrip()
        if line in ("--", "-- ") or _ORIGINAL_MESSAGE.match(line):
            break
        if line.lstrip().startswith(">"):
            continue
        if not line and (not kept or not kept[-1]):
            continue
        kept.append(line)
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept)


_BREAK_TAGS = frozenset(
    {
        "br", "p", "div", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5",
        "h6", "hr", "pre", "section", "article", "header", "footer", "dt", "dd", "address",
    }
)  # fmt: skip
_CELL_TAGS = frozenset({"td", "th"})
_DROP_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript"})
_QUOTE_CLASSES = frozenset({"gmail_quote", "gmail_signature", "moz-signature", "yandex_quote"})
_VOID_TAGS = frozenset(
    {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"}
)
_STOP_IDS = frozenset({"divrplyfwdmsg"})


class _TextExtractor(HTMLParser):
    """HTML to text with the line rules of the module."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_tag: str | None = None
        self._skip_depth = 0
        self._stopped = False
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._stopped:
            return
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth += 1
            return
        values = {name: (value or "").lower() for name, value in attrs}
        if values.get("id", "") in _STOP_IDS:
            self._stopped = True
            return
        classes = set(values.get("class", "").split())
        if tag not in _VOID_TAGS and (
            tag in _DROP_TAGS or tag == "blockquote" or classes & _QUOTE_CLASSES
        ):
            self._skip_tag, self._skip_depth = tag, 1
            return
        if tag == "pre":
            self._pre += 1
        if tag in _BREAK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._stopped and self._skip_tag is None and tag in _BREAK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._stopped:
            return
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip_tag = None
            return
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag in _BREAK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._stopped and self._skip_tag is None:
            # White space collapses as in a browser, but lines of a <pre> stay lines.
            pattern = r"[^\S\n]+" if self._pre else r"\s+"
            self.parts.append(re.sub(pattern, " ", data))


def html_to_text(markup: str) -> str:
    """The text of an HTML body: one line per block, cells separated by spaces, white
    space collapsed as a browser does, quotes and signatures dropped (module rules)."""
    extractor = _TextExtractor()
    try:
        extractor.feed(markup)
        extractor.close()
    except Exception:  # html.parser is tolerant; keep what was read if it is not
        pass
    text = "".join(extractor.parts).replace("\xa0", " ")
    return "\n".join(" ".join(line.split()) for line in text.split("\n"))


# --- attachments -----------------------------------------------------------------------


def _kind(name: str, ctype: str) -> str:
    lower = name.lower()
    if lower.endswith(_CSV_EXTENSIONS):
        return "csv"
    if lower.endswith(_XLSX_EXTENSIONS):
        return "xlsx"
    if lower.endswith(".txt"):
        return "txt"
    for kind, extensions, _, _ in _UNREAD_KINDS:
        if lower.endswith(extensions):
            return kind
    if ctype in _CSV_TYPES:
        return "csv"
    if ctype in _XLSX_TYPES:
        return "xlsx"
    if ctype == "text/plain":
        return "txt"
    if ctype == "message/rfc822":
        return "message"
    if ctype.startswith("image/"):
        return "image"
    for kind, _, types, _ in _UNREAD_KINDS:
        if ctype in types:
            return kind
    return "other"


def _unread_note(kind: str, ctype: str) -> str:
    for known, _, _, note in _UNREAD_KINDS:
        if known == kind:
            return note
    if kind == "image":
        return "не читается (изображение), пришлите показания текстом или таблицей"
    if kind == "message":
        return "не читается (вложенное письмо), перешлите показания текстом"
    return f"не читается (тип {ctype})"


def _read_attachment(part: Message, index: int, max_bytes: int) -> tuple[Attachment, list[str]]:
    ctype = part.get_content_type()
    name = _filename(part) or f"вложение {index}"
    kind = _kind(name, ctype)
    if kind not in ("csv", "xlsx", "txt"):
        return Attachment(name, kind, None, _unread_note(kind, ctype), "unsupported"), []
    data = _payload(part)
    if len(data) > max_bytes:
        note = f"больше {size_text(max_bytes)}, не прочитано"
        return Attachment(name, kind, None, note, "too_large"), []
    if kind == "xlsx":
        rows, problem = _xlsx_rows(data, max_bytes)
        if rows is None:
            return Attachment(name, kind, None, problem, "corrupt"), []
        lines = list(rows_to_lines(rows))
        return Attachment(name, kind, _count(lines), problem or _lines_note(lines)), lines
    text = _decode_file(data)
    if text is None:
        note = "не читается: текст не в UTF-8 и не в Windows-1251"
        return Attachment(name, kind, None, note, "undecodable"), []
    if kind == "txt":
        lines = clean_body(text).splitlines()
    else:
        try:
            lines = list(rows_to_lines(_csv_rows(text)))
        except csv.Error:
            note = "не читается: повреждённый CSV"
            return Attachment(name, kind, None, note, "corrupt"), []
    return Attachment(name, kind, _count(lines), _lines_note(lines)), lines


def _count(lines: Sequence[str]) -> int:
    """The lines that say something (a table's header and blank rows are kept as empty
    lines, so that line numbers are the file's)."""
    return sum(1 for line in lines if line.strip())


def size_text(limit: int) -> str:
    """A size limit in Russian: ``10 МБ``, ``512 КБ``."""
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):g} МБ"
    if limit >= 1024:
        return f"{limit / 1024:g} КБ"
    return f"{limit} байт"


def _lines_note(lines: Sequence[str]) -> str:
    count = _count(lines)
    return f"прочитано строк: {count}" if count else "нет строк с лицевыми счетами"


def _decode_file(data: bytes) -> str | None:
    """UTF-16 with a BOM, UTF-8 (BOM or not), else Windows-1251; None when it is neither
    or holds NUL bytes (not text)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings: tuple[str, ...] = ("utf-16",)
    else:
        encodings = ("utf-8-sig", "cp1251")
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return None if "\x00" in text else text
    return None


def _sniff_delimiter(text: str) -> str:
    """``;``, tab or ``,``: the one that splits the most of the first 50 non-empty lines
    into the same number (at least 2) of fields; ties go in that order, ``;`` first, as
    a comma is also the decimal mark in Russian. A single column gives ``;``."""
    sample = [line for line in text.splitlines() if line.strip()][:50]
    best, best_score = ";", (0, 0)
    for delimiter in (";", "\t", ","):
        counts = [len(row) for row in csv.reader(sample, delimiter=delimiter)]
        wide = [count for count in counts if count > 1]
        if not wide:
            continue
        modal = max(set(wide), key=wide.count)
        score = (wide.count(modal), modal)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _csv_rows(text: str) -> Iterator[list[str]]:
    delimiter = _sniff_delimiter(text)
    for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
        yield row[:MAX_COLUMNS]


def _cell_text(value: object) -> str:
    """A cell as text: whole floats without ``.0``, dates, times and booleans as ""."""
    if value is None or isinstance(value, bool | date | datetime | time | timedelta):
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return ""
        if value.is_integer():
            return str(int(value))
        return format(Decimal(format(value, ".15g")), "f")
    return " ".join(str(value).split())


def _xlsx_rows(data: bytes, max_bytes: int) -> tuple[Iterable[list[str]] | None, str]:
    """The rows of every visible worksheet, or None and why not. An empty second value
    when all was read, else a note that the rows were cut."""
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        return None, "не читается: файл зашифрован паролем или в старом формате XLS"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None, "не читается: файл XLSX повреждён"
    if inflated > MAX_XLSX_EXPANSION * max(max_bytes, 1024 * 1024):
        return None, "не читается: таблица слишком большая в распакованном виде"
    try:
        rows: list[list[str]] = []
        cut = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                for sheet in book.worksheets:
                    if getattr(sheet, "sheet_state", "visible") != "visible":
                        continue
                    for values in sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True):
                        if len(rows) >= MAX_XLSX_ROWS:
                            cut = True
                            break
                        rows.append([_cell_text(value) for value in values])
                    if cut:
                        break
            finally:
                book.close()
    except Exception:  # openpyxl raises many kinds on a broken workbook
        return None, "не читается: файл XLSX повреждён"
    note = f"прочитаны первые {MAX_XLSX_ROWS} строк таблицы" if cut else ""
    return rows, note


def rows_to_lines(rows: Iterable[Sequence[str]]) -> Iterator[str]:
    """One list line per row of a table (the module's rules for rows): a row with no
    account (a header, a blank or a note) gives an empty line, so line N of the file's
    text is row N of the table, as a spreadsheet numbers it."""
    apartment_column: int | None = None
    seen_data = False
    for raw_row in rows:
        row = [" ".join(cell.split()) for cell in raw_row]
        account = next((i for i, cell in enumerate(row) if _ACCOUNT.search(cell)), None)
        if account is None:
            if not seen_data and any(row):
                apartment_column = next(
                    (i for i, cell in enumerate(row) if _APARTMENT_HEADER.match(cell)), None
                )
            yield ""
            continue
        seen_data = True
        yield _row_line(row, account, apartment_column)


def _row_line(row: Sequence[str], account: int, apartment_column: int | None) -> str:
    candidate = ""
    if apartment_column is not None:
        candidate = row[apartment_column] if apartment_column < account else ""
    elif account > 0:
        candidate = row[account - 1]
    cells = [cell for cell in row[account:] if cell]
    apartment = _APARTMENT_VALUE.match(candidate)
    if apartment:
        cells.insert(0, f"кв. {apartment.group(1)}")
    return " ".join(cells)


__all__ = [
    "Attachment",
    "MailContent",
    "Source",
    "content_of",
    "decode_text",
    "html_to_text",
    "parse_bytes",
    "read_message",
    "rows_to_lines",
]
