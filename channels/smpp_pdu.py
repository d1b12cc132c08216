"""SMPP 3.4 codec: whole PDUs off a stream, smpplib's parser and generator behind a typed
face, the texts of inbound short messages (GSM 03.38, UCS-2, Latin-1, UDH and SAR
concatenation, delivery receipts) and the splitting of outbound texts into parts.

PDUs are packed and parsed by ``smpplib`` 2.2.4 only. Where smpplib is wrong it is corrected
around the edges, never by packing PDUs here:

* it ignores the ``sequence`` it is given (the number comes from its client object), and a
  bind's ``interface_version`` is overwritten with 0x34 after the keyword arguments are
  applied: both are set again on the command before ``generate()``;
* it truncates C-octet strings that are too long and encodes TLV strings as UTF-8 but
  mandatory ones as Latin-1: :func:`encode` refuses such values instead (C-octet strings
  are ASCII in SMPP 3.4);
* its parser reads past a missing NUL or a short body into garbage (a missing NUL even sends
  it back to the start of the body), drops the last octet of a string TLV whether or not it
  is the NUL, fails on a TLV this command does not define (``KeyError``) and advances by the
  size it expects instead of the TLV's length: the parsing methods are overridden with
  checked versions (:data:`_PARSE_OVERRIDES`) that keep smpplib's layout tables;
* it leaves string parameters as ``bytes``: :func:`decode` gives them as ``str`` (Latin-1,
  so any octet survives).

``smpplib.gsm`` is not used: its table puts a backtick where ``§`` belongs (0x5F), encodes the
escape character itself, lacks form feed, and ``make_parts`` splits escape sequences and
surrogate pairs and picks a random reference.
"""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import smpplib.command
import smpplib.consts
import smpplib.exceptions
import smpplib.pdu
import smpplib.ptypes

HEADER_LENGTH: Final = 16
MAX_SEQUENCE: Final = 0x7FFF_FFFF

# Command statuses the gateway reacts to.
ESME_ROK: Final = 0x00
ESME_RINVMSGLEN: Final = 0x01
ESME_RINVCMDLEN: Final = 0x02
ESME_RINVCMDID: Final = 0x03
ESME_RINVBNDSTS: Final = 0x04
ESME_RALYBND: Final = 0x05
ESME_RSYSERR: Final = 0x08
ESME_RBINDFAIL: Final = 0x0D
ESME_RINVPASWD: Final = 0x0E
ESME_RINVSYSID: Final = 0x0F
ESME_RMSGQFUL: Final = 0x14
ESME_RTHROTTLED: Final = 0x58
ESME_RX_T_APPN: Final = 0x64  # temporary application error: "could not store it, retry"
ESME_RX_P_APPN: Final = 0x65  # permanent application error: "never send this one again"
ESME_RINVOPTPARSTREAM: Final = 0xC0

# esm_class
ESM_UDHI: Final = 0x40
_ESM_TYPE_MASK: Final = 0x3C
_ESM_RECEIPT: Final = 0x04
_ESM_INTERMEDIATE: Final = 0x20

DATA_CODING_GSM: Final = 0x00
DATA_CODING_UCS2: Final = 0x08


class PduError(Exception):
    """A malformed, truncated or unknown PDU. ``command_id`` and ``sequence`` are those of its
    header when it had one (to answer ``generic_nack`` with the right sequence number)."""

    def __init__(
        self, message: str, *, command_id: int | None = None, sequence: int | None = None
    ) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.sequence = sequence


@dataclass(frozen=True, slots=True)
class Pdu:
    command: str
    status: int
    sequence: int
    fields: Mapping[str, object] = field(default_factory=dict, hash=False)

    @property
    def is_response(self) -> bool:
        return self.command.endswith("_resp") or self.command == "generic_nack"


# --- statuses ------------------------------------------------------------------------------

_STATUS_NAMES: Final[dict[int, str]] = {
    int(getattr(smpplib.consts, name)): name.removeprefix("SMPP_")
    for name in sorted(dir(smpplib.consts))
    if name.startswith("SMPP_ESME_")
}


def status_name(status: int) -> str:
    """``ESME_ROK``, ``ESME_RTHROTTLED``…; ``0x%08X`` for a status smpplib does not name."""
    return _STATUS_NAMES.get(status, f"0x{status:08X}")


# --- framing --------------------------------------------------------------------------------


async def read_frame(reader: asyncio.StreamReader, max_length: int = 65_536) -> bytes:
    """One whole PDU (length prefix included); IncompleteReadError at EOF (``partial`` is
    empty when the peer closed between PDUs); PduError if the declared length is < 16 or
    > max_length (the stream cannot be resynchronised after that: close it)."""
    prefix = await reader.readexactly(4)
    (length,) = struct.unpack(">L", prefix)
    if length < HEADER_LENGTH or length > max_length:
        raise PduError(f"declared PDU length {length} is outside {HEADER_LENGTH}..{max_length}")
    return prefix + await reader.readexactly(length - 4)


# --- smpplib, checked -----------------------------------------------------------------------

_TLV_NAMES: Final[dict[int, str]] = {
    int(code): str(name) for name, code in smpplib.consts.OPTIONAL_PARAMS.items()
}
_OSTR: Final[Any] = smpplib.ptypes.ostr
_FLAG: Final[Any] = smpplib.ptypes.flag


def _need(data: bytes, end: int, what: str) -> None:
    if end > len(data):
        raise PduError(f"{what}: the PDU ends {end - len(data)} octet(s) early")


def _parse_int(self: Any, name: str, data: bytes, pos: int) -> tuple[bytes, int]:
    _need(data, pos + int(self.params[name].size), name)
    result: tuple[bytes, int] = smpplib.command.Command._parse_int(self, name, data, pos)
    return result


def _parse_string(
    self: Any, name: str, data: bytes, pos: int, length: int | None = None
) -> tuple[bytes, int]:
    if length is None:  # mandatory C-octet string: up to the NUL, which must be there
        end = data.find(b"\0", pos)
        if end < 0:
            raise PduError(f"{name}: C-octet string without its NUL")
        setattr(self, name, data[pos:end])
        return data, end + 1
    # A string TLV: its length includes the NUL, which some SMSCs leave out.
    _need(data, pos + length, name)
    setattr(self, name, data[pos : pos + length].split(b"\0", 1)[0])
    return data, pos + length


def _parse_ostring(
    self: Any, name: str, data: bytes, pos: int, length: int | None = None
) -> tuple[bytes, int]:
    if length is None:
        length = int(getattr(self, self.params[name].len_field) or 0)
    _need(data, pos + length, name)
    setattr(self, name, data[pos : pos + length])
    return data, pos + length


def _parse_optional_params(self: Any, data: bytes) -> None:
    """smpplib's TLV loop, with bounds, tolerant of TLVs the command does not define (skipped,
    as vendor TLVs are), and always moving on by the TLV's own length."""
    pos = 0
    while pos < len(data):
        _need(data, pos + 4, "TLV header")
        tag, pos = smpplib.command.unpack_short(data, pos)
        length, pos = smpplib.command.unpack_short(data, pos)
        end = pos + length
        _need(data, end, f"TLV 0x{tag:04X}")
        name = _TLV_NAMES.get(tag)
        param = self.params.get(name) if name is not None else None
        if name is None or param is None:
            pos = end
            continue
        if param.type is int:
            if length != param.size:
                raise PduError(f"TLV {name}: length {length}, SMPP 3.4 says {param.size}")
            _parse_int(self, name, data, pos)
        elif param.type is str:
            _parse_string(self, name, data, pos, length)
        elif param.type is _OSTR:
            _parse_ostring(self, name, data, pos, length)
        elif param.type is _FLAG:
            setattr(self, name, True)
        pos = end


_PARSE_OVERRIDES: Final[dict[str, Callable[..., object]]] = {
    "_parse_int": _parse_int,
    "_parse_string": _parse_string,
    "_parse_ostring": _parse_ostring,
    "parse_optional_params": _parse_optional_params,
}
_CHECKED: dict[str, Any] = {}


def _command(name: str) -> Any:
    """A fresh smpplib command object for ``name`` whose parser is the checked one."""
    checked = _CHECKED.get(name)
    if checked is None:
        base = type(smpplib.command.factory(name, sequence=0))
        checked = type(f"Checked{base.__name__}", (base,), dict(_PARSE_OVERRIDES))
        _CHECKED[name] = checked
    return checked(name, sequence=0, allow_unknown_opt_params=True)


def _params(command: Any) -> Mapping[str, Any]:
    params: Mapping[str, Any] = command.params
    return params


# --- decode ---------------------------------------------------------------------------------


def decode(frame: bytes) -> Pdu:
    """A whole PDU as :func:`read_frame` returns it. PduError on anything smpplib cannot
    parse: a short or inconsistent header, an unknown (or unsupported by smpplib) command id,
    a truncated body, a string without its NUL, a TLV running past the end."""
    frame = bytes(frame)
    if len(frame) < HEADER_LENGTH:
        raise PduError(f"{len(frame)} octets: shorter than a PDU header")
    length, command_id, _status, sequence = struct.unpack(">LLLL", frame[:HEADER_LENGTH])
    if length != len(frame):
        raise PduError(
            f"header says {length} octets, the frame has {len(frame)}",
            command_id=command_id,
            sequence=sequence,
        )
    try:
        name = str(smpplib.pdu.extract_command(frame))
        command = _command(name)
    except smpplib.exceptions.UnknownCommandError:
        raise PduError(
            f"unknown command id 0x{command_id:08X}", command_id=command_id, sequence=sequence
        ) from None
    try:
        command.parse(frame)
    except PduError as error:
        error.command_id, error.sequence = command_id, sequence
        raise
    except Exception as error:  # smpplib raises whatever its internals hit
        raise PduError(f"{name}: {error!r}", command_id=command_id, sequence=sequence) from error
    fields: dict[str, object] = {}
    for key, param in _params(command).items():
        value = getattr(command, key, None)
        if value is None:
            continue
        if param.type is str and isinstance(value, bytes):
            value = value.decode("latin-1")
        fields[key] = value
    return Pdu(
        command=name,
        status=int(command.status),
        sequence=int(command.sequence),
        fields=MappingProxyType(fields),
    )


# --- encode ---------------------------------------------------------------------------------


def _check_field(command: str, key: str, param: Any, value: object) -> object:
    where = f"{command}.{key}"
    if param.type is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{where} must be an int, not {type(value).__name__}")
        if not 0 <= value < 256 ** int(param.size):
            raise ValueError(f"{where}={value} does not fit {param.size} octet(s)")
        return value
    if param.type is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a str, not {type(value).__name__}")
        if not value.isascii() or "\0" in value:
            raise ValueError(f"{where} must be ASCII without NUL: {value!r}")
        limit = getattr(param, "max", None)
        if limit is not None and len(value) > int(limit) - 1:
            raise ValueError(f"{where} is longer than {int(limit) - 1} characters")
        return value
    if param.type is _OSTR:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise ValueError(f"{where} must be bytes, not {type(value).__name__}")
        octets = bytes(value)
        limit = 254 if key == "short_message" else 65_535
        if len(octets) > limit:
            raise ValueError(f"{where} is {len(octets)} octets, more than {limit}")
        return octets
    raise ValueError(f"{where}: smpplib cannot generate this parameter")


def encode(command: str, sequence: int, *, status: int = 0, **fields: object) -> bytes:
    """A whole PDU by ``smpplib.command.factory(command, ...).generate()``; ``fields`` as
    smpplib names them. ValueError for an unknown command or parameter, a value of the wrong
    type or out of range, a string that is not ASCII or too long (smpplib would truncate it
    silently), ``sm_length`` (computed)."""
    # Any 32-bit number, to echo a peer's in a response even when it is outside SMPP's
    # 1..MAX_SEQUENCE (our own requests should stay within that).
    if not 0 <= sequence <= 0xFFFF_FFFF:
        raise ValueError(f"sequence {sequence} does not fit 4 octets")
    if not 0 <= status <= 0xFFFF_FFFF:
        raise ValueError(f"status {status} does not fit 4 octets")
    try:
        pdu = smpplib.command.factory(command, sequence=sequence, status=status)
    except smpplib.exceptions.UnknownCommandError:
        raise ValueError(f"smpplib does not support the command {command!r}") from None
    params = _params(pdu)
    checked: dict[str, object] = {}
    for key, value in fields.items():
        if key not in params or key == "sm_length":
            raise ValueError(f"{command} has no settable parameter {key!r}")
        checked[key] = _check_field(command, key, params[key], value)
    # Set on the command rather than passed to factory(): smpplib's constructor ignores the
    # sequence and overwrites interface_version (see the module docstring).
    for key, value in checked.items():
        setattr(pdu, key, value)
    pdu.sequence = sequence
    pdu.status = status
    try:
        frame: bytes = pdu.generate()
    except (struct.error, TypeError, ValueError, UnicodeError) as error:
        raise ValueError(f"{command}: {error}") from error
    return frame


# --- GSM 03.38 ------------------------------------------------------------------------------

_ESC: Final = 0x1B
_GSM_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION: Final[dict[int, str]] = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
_GSM_ENCODE: Final[dict[str, bytes]] = {
    **{char: bytes([code]) for code, char in enumerate(_GSM_BASIC) if code != _ESC},
    **{char: bytes([_ESC, code]) for code, char in _GSM_EXTENSION.items()},
}
assert len(_GSM_BASIC) == 128


def gsm_encodable(text: str) -> bool:
    """Every character is in the GSM 03.38 basic or extension table."""
    return all(char in _GSM_ENCODE for char in text)


def _decode_gsm(data: bytes) -> str:
    """Unpacked GSM 03.38 (one septet per octet). An escape before a code the extension table
    lacks gives the basic table's character (03.38 §6.2.1.1); undecodable octets give U+FFFD."""
    out: list[str] = []
    i = 0
    while i < len(data):
        code = data[i]
        i += 1
        if code > 0x7F:
            out.append("\ufffd")
        elif code != _ESC:
            out.append(_GSM_BASIC[code])
        elif i == len(data) or data[i] > 0x7F or data[i] == _ESC:
            out.append("\ufffd")
            i += 1
        else:
            out.append(_GSM_EXTENSION.get(data[i], _GSM_BASIC[data[i]]))
            i += 1
    return "".join(out)


# SMPP's own data_coding values 0x00-0x0F that name a Python codec.
_SMPP_CODECS: Final[dict[int, str]] = {
    0x01: "ascii",
    0x02: "latin-1",
    0x03: "latin-1",
    0x04: "latin-1",
    0x06: "iso8859-5",
    0x07: "iso8859-8",
    0x08: "utf-16-be",
    0x0A: "iso2022-jp",
}


def _alphabet(data_coding: int) -> str:
    """``gsm``, ``ucs2`` or a codec name for a data_coding value."""
    if data_coding == DATA_CODING_GSM:
        return "gsm"
    if 0 < data_coding <= 0x0F:
        return _SMPP_CODECS.get(data_coding, "latin-1")
    group = data_coding >> 4
    if group <= 0x07:  # general data coding (with or without automatic deletion)
        if data_coding & 0x20:  # compressed: nothing to read it with
            return "latin-1"
        return ("gsm", "latin-1", "ucs2", "latin-1")[(data_coding >> 2) & 0x03]
    if group in (0x0C, 0x0D):  # message waiting indication, GSM 7-bit
        return "gsm"
    if group == 0x0E:  # message waiting indication, UCS-2
        return "ucs2"
    if group == 0x0F:
        return "latin-1" if data_coding & 0x04 else "gsm"
    return "latin-1"  # reserved groups 0x8-0xB, or a value that is not an octet


def decode_text(data: bytes, data_coding: int) -> str:
    """0: SMSC default = GSM 03.38 unpacked with the escape extension table; 1: IA5/ASCII;
    3: Latin-1; 8: UCS-2 read as UTF-16BE (surrogate pairs decode); 2/4 (8-bit binary):
    Latin-1; 6/7: ISO-8859-5/-8; 0x0A: ISO-2022-JP; other SMPP values below 0x10: Latin-1;
    above: by the GSM 03.38 data coding groups; otherwise Latin-1. Never raises:
    undecodable units become U+FFFD."""
    alphabet = _alphabet(data_coding) if 0 <= data_coding <= 0xFF else "latin-1"
    data = bytes(data)
    if alphabet == "gsm":
        return _decode_gsm(data)
    if alphabet == "ucs2":
        alphabet = "utf-16-be"
    return data.decode(alphabet, errors="replace")


# --- inbound --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Part:
    source: str
    destination: str
    text: str
    reference: int | None
    total: int
    number: int
    smsc_id: str | None


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str
    state: str
    error: str | None


MESSAGE_STATES: Final[dict[int, str]] = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
_STATE_SYNONYMS: Final[dict[str, str]] = {
    "DELIVERED": "DELIVRD",
    "UNDELIVERABLE": "UNDELIV",
    "UNDELIVERED": "UNDELIV",
    "REJECTED": "REJECTD",
    "ACCEPTED": "ACCEPTD",
}

_RECEIPT_KEY = re.compile(
    r"(?:^|(?<=\s))(submit[ _]date|done[ _]date|[a-z][a-z_]*)\s*:", re.IGNORECASE
)


def parse_receipt_text(text: str) -> dict[str, str]:
    """``id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…`` → a dict with
    lower-case keys (``submit date``, ``done date`` with one space). Missing fields are
    absent; ``text`` takes the rest of the string."""
    result: dict[str, str] = {}
    matches = list(_RECEIPT_KEY.finditer(text))
    for index, match in enumerate(matches):
        key = " ".join(match.group(1).lower().replace("_", " ").split())
        if key == "text":
            result.setdefault(key, text[match.end() :].strip())
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        result.setdefault(key, text[match.end() : end].strip())
    return result


def _text_of(fields: Mapping[str, object]) -> tuple[bytes, int]:
    payload = fields.get("message_payload")
    body = payload if isinstance(payload, bytes) else fields.get("short_message")
    coding = fields.get("data_coding")
    return (
        body if isinstance(body, bytes) else b"",
        coding if isinstance(coding, int) else DATA_CODING_GSM,
    )


def _int_field(fields: Mapping[str, object], key: str) -> int | None:
    value = fields.get(key)
    return value if isinstance(value, int) else None


def _str_field(fields: Mapping[str, object], key: str) -> str:
    value = fields.get(key)
    return value if isinstance(value, str) else ""


def _split_udh(body: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """(information elements, the rest) of a body that starts with a user data header."""
    if not body:
        raise PduError("UDHI set on an empty message")
    end = 1 + body[0]
    if end > len(body):
        raise PduError(f"UDH length {body[0]} runs past the message ({len(body)} octets)")
    elements: list[tuple[int, bytes]] = []
    pos = 1
    while pos < end:
        if pos + 2 > end:
            raise PduError("truncated UDH information element")
        tag, size = body[pos], body[pos + 1]
        if pos + 2 + size > end:
            raise PduError(f"UDH information element 0x{tag:02X} runs past the header")
        elements.append((tag, body[pos + 2 : pos + 2 + size]))
        pos += 2 + size
    return elements, body[end:]


def _concatenation(
    elements: list[tuple[int, bytes]], fields: Mapping[str, object]
) -> tuple[int, int, int] | None:
    """(reference, total, number) from a UDH concatenation element, else the sar_* TLVs;
    an element with total 0 or a number outside 1..total is ignored (23.040 §9.2.3.24.1)."""
    candidates: list[tuple[int, int, int]] = []
    for tag, value in elements:
        if tag == 0x00 and len(value) == 3:
            candidates.append((value[0], value[1], value[2]))
        elif tag == 0x08 and len(value) == 4:
            candidates.append(((value[0] << 8) | value[1], value[2], value[3]))
    sar = [_int_field(fields, key) for key in ("sar_msg_ref_num", "sar_total_segments")]
    number = _int_field(fields, "sar_segment_seqnum")
    if sar[0] is not None and sar[1] is not None and number is not None:
        candidates.append((sar[0], sar[1], number))
    for reference, total, number in candidates:
        if total >= 1 and 1 <= number <= total:
            return reference, total, number
    return None


def read_deliver(pdu: Pdu) -> Part | Receipt:
    """The short message or the delivery receipt a ``deliver_sm`` (or ``data_sm``) carries.
    esm_class message type 0x04 (SMSC delivery receipt) or 0x20 (intermediate notification)
    → Receipt; else Part. message_payload wins over short_message. PduError for another
    command or a malformed user data header."""
    if pdu.command not in ("deliver_sm", "data_sm"):
        raise PduError(f"{pdu.command} is not a deliver_sm", sequence=pdu.sequence)
    fields = pdu.fields
    esm_class = _int_field(fields, "esm_class") or 0
    body, coding = _text_of(fields)
    if esm_class & _ESM_TYPE_MASK in (_ESM_RECEIPT, _ESM_INTERMEDIATE):
        if esm_class & ESM_UDHI:
            body = _split_udh(body)[1]
        return _receipt(fields, decode_text(body, coding))
    elements: list[tuple[int, bytes]] = []
    if esm_class & ESM_UDHI:
        elements, body = _split_udh(body)
    concatenation = _concatenation(elements, fields)
    reference, total, number = None, 1, 1
    if concatenation is not None and concatenation[1] > 1:
        reference, total, number = concatenation
    return Part(
        source=_str_field(fields, "source_addr"),
        destination=_str_field(fields, "destination_addr"),
        text=decode_text(body, coding),
        reference=reference,
        total=total,
        number=number,
        # SMPP 3.4 gives a mobile-originated deliver_sm no SMSC message id: there is none
        # to take (receipted_message_id only means something on a receipt).
        smsc_id=None,
    )


def _receipt(fields: Mapping[str, object], text: str) -> Receipt:
    parsed = parse_receipt_text(text)
    message_id = _str_field(fields, "receipted_message_id").strip() or parsed.get("id", "")
    stat = parsed.get("stat", "").upper()
    if stat:
        state = _STATE_SYNONYMS.get(stat, stat)
    else:
        state = MESSAGE_STATES.get(_int_field(fields, "message_state") or 7, "UNKNOWN")
    error = parsed.get("err")
    if error is not None and (not error or set(error) <= {"0"}):
        error = None
    return Receipt(message_id=message_id, state=state, error=error)


# --- outbound -------------------------------------------------------------------------------

GSM_SINGLE: Final = 160
GSM_PART: Final = 153
UCS2_SINGLE: Final = 70
UCS2_PART: Final = 67
MAX_PARTS: Final = 255


@dataclass(frozen=True, slots=True)
class Segments:
    data_coding: int
    esm_class: int
    parts: tuple[bytes, ...]


def segments(text: str, reference: int) -> Segments:
    """GSM 7-bit (sent unpacked, one septet per octet) when every character is in the GSM
    basic or extension table, an extension character counting 2 septets; else UCS-2
    (UTF-16BE, an astral character counting 2 units). One part when it fits 160 septets / 70
    units; else parts of at most 153 septets / 67 units, each after the UDH 05 00 03
    <reference & 0xFF> <total> <n>, never splitting an escape pair or a surrogate pair.
    ValueError beyond 255 parts (or for a lone surrogate)."""
    if gsm_encodable(text):
        data_coding, single, part = DATA_CODING_GSM, GSM_SINGLE, GSM_PART
        units = [_GSM_ENCODE[char] for char in text]
        unit_size = 1
    else:
        data_coding, single, part = DATA_CODING_UCS2, UCS2_SINGLE, UCS2_PART
        units = [char.encode("utf-16-be") for char in text]
        unit_size = 2
    if sum(len(unit) for unit in units) <= single * unit_size:
        return Segments(data_coding, 0, (b"".join(units),))
    chunks: list[bytes] = []
    current = b""
    for unit in units:
        if len(current) + len(unit) > part * unit_size:
            chunks.append(current)
            current = b""
        current += unit
    chunks.append(current)
    if len(chunks) > MAX_PARTS:
        raise ValueError(f"the text needs {len(chunks)} parts, more than {MAX_PARTS}")
    total = len(chunks)
    ref = reference & 0xFF
    return Segments(
        data_coding,
        ESM_UDHI,
        tuple(
            bytes((0x05, 0x00, 0x03, ref, total, number)) + chunk
            for number, chunk in enumerate(chunks, start=1)
        ),
    )
