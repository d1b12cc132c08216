"""A loopback SMSC: the operator's side of SMPP 3.4, over real TCP on 127.0.0.1.

The gateway is an ESME: it binds to the operator's SMSC, receives ``deliver_sm`` (SMS from
households, delivery receipts) and sends ``submit_sm`` (replies). ``FakeSmsc`` is that
SMSC, for integration tests and benchmarks::

    async with FakeSmsc(system_id="gw", password="secret") as smsc:
        ...  # point the ESME at smsc.host, smsc.port
        await smsc.wait_bound()
        status = await smsc.deliver_text("+79120000001", "123456 7890")
        [reply] = await smsc.wait_submitted(1)
        assert reply.text.startswith("Показания приняты")

Every PDU is generated and parsed by ``smpplib``'s codec (``smpplib.command.factory``,
``.generate()``, ``.parse()``); only the 4-byte ``command_length`` is read by hand, to
frame the TCP stream. Each control is a plain attribute or method, documented where it is
defined; in short:

* binds: ``binds``/``bind_statuses`` (recorded), ``refuse_bind`` (forced refusal),
  wrong system_id/password refused automatically; ``wait_bound()``, ``wait_binds(n)``;
* submits: ``submitted`` (recorded), ``answers`` (queue of forced statuses),
  ``silent_submits``, ``auto_receipts``; ``wait_submitted(n)``, ``texts()``;
* deliveries: ``deliver()``, ``deliver_text()``, ``deliver_parts()``, ``deliver_receipt()``;
  ``delivered``/``deliver_resps`` (recorded);
* link: ``enquire_links_received``, ``silent_enquire_links``, ``enquire_link()``,
  ``unbinds``, ``unbind()``;
* outages: ``drop()``, ``accepting``, ``stop()``/``start()`` (same port);
* debugging: ``log`` (every PDU in and out), ``generic_nacks``, ``errors``.

What a real SMSC does that is modelled: SMPP 3.4 ``*_resp`` PDUs carry no body when
``command_status`` is not 0 (bind and submit refusals), ``submit_sm`` on a receiver-only or
unbound session gets ``ESME_RINVBNDSTS``, a second bind on a session ``ESME_RALYBND``, a
``submit_sm`` without a destination ``ESME_RINVDSTADR``, a PDU it cannot parse or does not
support (``query_sm``, ``data_sm``, ``replace_sm``, ``cancel_sm``, ...) ``generic_nack``, an
impossible ``command_length`` ``generic_nack`` and the connection closed. Not modelled: a
window limit, throttling by rate (script it with ``answers``), ``outbind``, SMPP 5.0.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, NamedTuple

import smpplib.command
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
import smpplib.pdu

__all__ = [
    "ESM_CLASS_RECEIPT",
    "ESM_CLASS_UDHI",
    "MESSAGE_STATES",
    "BindAttempt",
    "FakeSmsc",
    "LogEntry",
    "Session",
    "ShortMessage",
    "gsm_decode",
    "gsm_encode",
    "join_parts",
]

C = smpplib.consts
ESME_ROK: int = C.SMPP_ESME_ROK
ESME_RINVCMDLEN: int = C.SMPP_ESME_RINVCMDLEN
ESME_RINVCMDID: int = C.SMPP_ESME_RINVCMDID
ESME_RINVBNDSTS: int = C.SMPP_ESME_RINVBNDSTS
ESME_RALYBND: int = C.SMPP_ESME_RALYBND
ESME_RSYSERR: int = C.SMPP_ESME_RSYSERR
ESME_RINVDSTADR: int = C.SMPP_ESME_RINVDSTADR
ESME_RINVPASWD: int = C.SMPP_ESME_RINVPASWD
ESME_RINVSYSID: int = C.SMPP_ESME_RINVSYSID

HEADER_LEN = 16
MAX_PDU_LEN = 64 * 1024  # a longer command_length is garbage: nack and close
MAX_SEQUENCE = 0x7FFFFFFF
SHORT_MESSAGE_MAX = 254  # octets; longer single messages go in message_payload

ESM_CLASS_UDHI = 0x40  # short_message starts with a User Data Header
ESM_CLASS_RECEIPT = 0x04  # SMSC delivery receipt (message type bits 2-5)
DATA_CODING_GSM = 0x00  # SMSC default alphabet: GSM 03.38, one septet per octet
DATA_CODING_UCS2 = 0x08
SMSC_INTERFACE_VERSION = 0x34
# message_state values (SMPP 3.4 §5.2.28), keyed by the receipt's "stat:" word.
MESSAGE_STATES = {
    "ENROUTE": 1,
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
}
BIND_COMMANDS = frozenset({"bind_transceiver", "bind_receiver", "bind_transmitter"})
RECEIVER_BINDS = frozenset({"bind_transceiver", "bind_receiver"})
TRANSMITTER_BINDS = frozenset({"bind_transceiver", "bind_transmitter"})


# --- GSM 03.38, unpacked (one septet per octet) --------------------------------------------

# smpplib.gsm.GSM_CHARACTER_TABLE: 128 basic characters, then the 128 of the 0x1B
# extension table, with "`" as filler. It has "`" at 0x5F where GSM 03.38 has "§": fixed here.
_TABLE = smpplib.gsm.GSM_CHARACTER_TABLE
_GSM_BASIC = {ch: i for i, ch in enumerate(_TABLE[:128]) if ch not in "`\x1b"}
_GSM_BASIC["§"] = 0x5F
_GSM_EXTENDED = {ch: i for i, ch in enumerate(_TABLE[128:]) if ch != "`"}
_GSM_DECODE_BASIC = {i: ch for ch, i in _GSM_BASIC.items()}
_GSM_DECODE_EXTENDED = {i: ch for ch, i in _GSM_EXTENDED.items()}


def gsm_char(ch: str) -> bytes | None:
    """One character in the GSM 7-bit alphabet, unpacked (1 or 2 octets), or None."""
    if ch in _GSM_BASIC:
        return bytes([_GSM_BASIC[ch]])
    if ch in _GSM_EXTENDED:
        return bytes([0x1B, _GSM_EXTENDED[ch]])
    return None


def gsm_encode(text: str) -> bytes | None:
    """``text`` in the GSM 7-bit alphabet, one septet per octet; None if not encodable."""
    out = bytearray()
    for ch in text:
        encoded = gsm_char(ch)
        if encoded is None:
            return None
        out += encoded
    return bytes(out)


def gsm_decode(data: bytes) -> str:
    """Unpacked GSM 7-bit octets back to text (unknown septets become "?")."""
    out: list[str] = []
    escape = False
    for octet in data:
        if escape:
            out.append(_GSM_DECODE_EXTENDED.get(octet, "?"))
            escape = False
        elif octet == 0x1B:
            escape = True
        else:
            out.append(_GSM_DECODE_BASIC.get(octet, "?"))
    return "".join(out)


def decode_text(data: bytes, data_coding: int) -> str:
    """Decode a message body by its data_coding: 0 GSM (unpacked), 1 ASCII, 3 Latin-1,
    8 UCS-2 (read as UTF-16-BE, so surrogate pairs work); anything else as Latin-1."""
    if data_coding == DATA_CODING_GSM:
        return gsm_decode(data)
    if data_coding == DATA_CODING_UCS2:
        return data.decode("utf-16-be", errors="replace")
    if data_coding == C.SMPP_ENCODING_IA5:
        return data.decode("ascii", errors="replace")
    return data.decode("latin-1")


def _text(value: Any) -> str:
    """smpplib parses C-octet strings as bytes (and leaves absent ones None)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _opt_int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _address(number: str) -> tuple[str, int, int]:
    """(address, TON, NPI) as an operator sends them: "+7912…" → ("7912…", 1 international,
    1 ISDN); digits → (digits, 0 unknown, 1 ISDN); anything else → alphanumeric (5, 0)."""
    if number.startswith("+") and number[1:].isdigit():
        return number[1:], C.SMPP_TON_INTL, C.SMPP_NPI_ISDN
    if number.isdigit():
        return number, C.SMPP_TON_UNK, C.SMPP_NPI_ISDN
    return number, C.SMPP_TON_ALNUM, C.SMPP_NPI_UNK


def make_pdu(name: str, sequence: int, status: int = ESME_ROK, **fields: Any) -> Any:
    """A smpplib PDU object with the given header and fields.

    Quirk worked around: ``factory(name, sequence=n)`` does not set the sequence (the
    ``sequence`` property reads the dummy client's 0, so ``_set_vars`` skips it) and without
    ``sequence=`` a request PDU asks the dummy client for ``next_sequence()``, which it lacks.
    So the sequence is passed (to skip that) and then set explicitly."""
    pdu = smpplib.command.factory(name, sequence=sequence, status=status, **fields)
    pdu.sequence = sequence
    return pdu


def parse_pdu(data: bytes) -> Any:
    """Parse one framed PDU with smpplib (unknown TLVs are skipped, not fatal).

    Raises ``smpplib.exceptions.UnknownCommandError`` for a command smpplib does not know
    or has no class for, and whatever smpplib's parser raises on garbage."""
    name = smpplib.pdu.extract_command(data)
    pdu = smpplib.command.factory(name, sequence=0, allow_unknown_opt_params=True)
    pdu.parse(data)
    return pdu


# --- records -------------------------------------------------------------------------------


class BindAttempt(NamedTuple):
    """One bind PDU received (accepted or not; see ``FakeSmsc.bind_statuses``)."""

    command: str  # "bind_transceiver" | "bind_receiver" | "bind_transmitter"
    system_id: str
    system_type: str
    address_range: str


class LogEntry(NamedTuple):
    """One PDU through the fake: ``direction`` is "in" (from the ESME) or "out"."""

    session: int
    direction: str
    command: str
    status: int
    sequence: int


@dataclass(kw_only=True)
class ShortMessage:
    """A ``submit_sm`` received from the ESME or a ``deliver_sm`` sent to it.

    ``status`` is the ``*_resp`` command_status: for a submit the one the fake answered
    (None: not answered), for a deliver the one the ESME answered (None: no answer yet).
    ``message_id`` is the id given to an accepted submit ("smsc-1", ...)."""

    command: str
    sequence: int
    session: int
    source: str
    destination: str
    source_ton: int = 0
    source_npi: int = 0
    dest_ton: int = 0
    dest_npi: int = 0
    data_coding: int = 0
    esm_class: int = 0
    registered_delivery: int = 0
    short_message: bytes = b""
    message_payload: bytes | None = None
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    receipted_message_id: str | None = None
    message_state: int | None = None
    status: int | None = None
    message_id: str | None = None
    at: datetime = field(default_factory=datetime.now)

    @property
    def udh(self) -> bytes | None:
        """The User Data Header (with its length octet) when esm_class has UDHI set."""
        if not self.esm_class & ESM_CLASS_UDHI or not self.short_message:
            return None
        return self.short_message[: 1 + self.short_message[0]]

    @property
    def body(self) -> bytes:
        """The user data: message_payload if present, else short_message without the UDH."""
        if self.message_payload is not None and not self.short_message:
            return self.message_payload
        udh = self.udh
        return self.short_message[len(udh) :] if udh is not None else self.short_message

    @property
    def concat(self) -> tuple[int, int, int] | None:
        """(reference, total, part number) from the UDH (IE 0x00 8-bit or 0x08 16-bit
        reference) or from the sar_* TLVs; None for a single message."""
        udh = self.udh
        if udh is not None:
            pos = 1
            while pos + 2 <= len(udh):
                iei, length = udh[pos], udh[pos + 1]
                value = udh[pos + 2 : pos + 2 + length]
                if iei == 0x00 and length == 3 and len(value) == 3:
                    return value[0], value[1], value[2]
                if iei == 0x08 and length == 4 and len(value) == 4:
                    return (value[0] << 8) | value[1], value[2], value[3]
                pos += 2 + length
        if self.sar_msg_ref_num is not None and self.sar_total_segments is not None:
            return self.sar_msg_ref_num, self.sar_total_segments, self.sar_segment_seqnum or 0
        return None

    @property
    def text(self) -> str:
        """This PDU's body decoded by its data_coding (one part only; see ``join_parts``)."""
        return decode_text(self.body, self.data_coding)


def join_parts(messages: Iterable[ShortMessage]) -> list[str]:
    """Texts of ``messages`` with concatenated parts joined (bodies joined, then decoded),
    in the order each message (its first part) arrived. Incomplete multipart messages are
    left out; a repeated part counts once (the first copy)."""
    entries: list[str | tuple[str, str, int, int]] = []
    groups: dict[tuple[str, str, int, int], dict[int, ShortMessage]] = {}
    for message in messages:
        concat = message.concat
        if concat is None:
            entries.append(message.text)
            continue
        ref, total, number = concat
        key = (message.source, message.destination, ref, total)
        if key not in groups:
            groups[key] = {}
            entries.append(key)
        groups[key].setdefault(number, message)
    texts: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            texts.append(entry)
            continue
        parts = groups[entry]
        total = entry[3]
        if all(n in parts for n in range(1, total + 1)):
            body = b"".join(parts[n].body for n in range(1, total + 1))
            texts.append(decode_text(body, parts[1].data_coding))
    return texts


@dataclass
class _Pending:
    message: ShortMessage | None
    future: asyncio.Future[Any] | None


class Session:
    """One TCP connection from the ESME. ``bind_command`` is set once a bind succeeded."""

    def __init__(
        self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.number = number
        self.peer: Any = writer.get_extra_info("peername")
        self.bind_command: str | None = None
        self.system_id: str | None = None
        self.closed = False
        self._reader = reader
        self._writer = writer
        self._sequence = 0
        self._pending: dict[int, _Pending] = {}
        self._write_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<Session {self.number} {self.bind_command or 'unbound'} {self.peer}>"

    @property
    def bound(self) -> bool:
        return self.bind_command is not None

    @property
    def receiver(self) -> bool:
        """Bound as receiver or transceiver: deliver_sm may go here."""
        return self.bind_command in RECEIVER_BINDS

    @property
    def transmitter(self) -> bool:
        """Bound as transmitter or transceiver: submit_sm is accepted here."""
        return self.bind_command in TRANSMITTER_BINDS

    def next_sequence(self) -> int:
        self._sequence = self._sequence % MAX_SEQUENCE + 1
        return self._sequence

    def close(self, *, abort: bool = False) -> None:
        """Close the connection (``abort``: at once, dropping unsent data); fail waiters."""
        if not self.closed:
            self.closed = True
            if abort:
                self._writer.transport.abort()
            else:
                self._writer.close()
        for pending in self._pending.values():
            if pending.future is not None and not pending.future.done():
                pending.future.set_exception(
                    ConnectionError(f"session {self.number} closed before the response")
                )
        self._pending.clear()


# --- the SMSC ------------------------------------------------------------------------------


class FakeSmsc:
    """An SMPP 3.4 SMSC on ``host`` (127.0.0.1) and a free ``port`` (kept across
    ``stop()``/``start()``). Use ``async with FakeSmsc(...) as smsc:``.

    ``system_id``/``password``: the credentials a bind must carry (None: anything goes);
    a wrong system_id is refused with ESME_RINVSYSID, a wrong password with ESME_RINVPASWD.
    ``resp_timeout``: how long ``deliver()``/``enquire_link()``/``unbind()`` wait for the
    ESME's response. ``bind_timeout``: how long ``deliver()`` waits for a bound receiver.
    ``service_number``: the default destination of deliveries (the gateway's short code).
    """

    smsc_system_id = "fake-smsc"

    def __init__(
        self,
        system_id: str | None = "gw",
        password: str | None = "secret",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        resp_timeout: float = 5.0,
        bind_timeout: float = 5.0,
        service_number: str = "4444",
    ) -> None:
        self.system_id = system_id
        self.password = password
        self.host = host
        self.port = port
        self.resp_timeout = resp_timeout
        self.bind_timeout = bind_timeout
        self.service_number = service_number

        # --- controls (set them any time) ---
        #: Refuse every bind with this command_status (e.g. 0x0E ESME_RINVPASWD,
        #: 0x0D ESME_RBINDFAIL); None: check the credentials. A refused session stays
        #: connected (unbound): the ESME may retry on it or hang up.
        self.refuse_bind: int | None = None
        #: Forced answers for the next submit_sm PDUs, consumed one per submit, oldest first:
        #: a non-zero status → a body-less submit_sm_resp with that status (no message_id);
        #: 0 → the normal answer; None → no answer at all for that submit. When it is empty
        #: every submit is accepted. ``smsc.answers.extend([0x58, 0x14])``.
        self.answers: deque[int | None] = deque()
        #: Never answer submit_sm while True (records them, consumes no ``answers``).
        self.silent_submits = False
        #: After accepting a submit that asks for a receipt (registered_delivery bits 0-1:
        #: 1 always, 2 on failure only — so 2 gets one only when the stat is not DELIVRD),
        #: send a receipt for it with ``auto_receipt_stat``/``auto_receipt_err`` to a bound
        #: receiver (in the background; failures land in ``errors``).
        self.auto_receipts = False
        self.auto_receipt_stat = "DELIVRD"
        self.auto_receipt_err = "000"
        #: Do not answer the ESME's enquire_link while True (still counted).
        self.silent_enquire_links = False
        #: While False, every new TCP connection is closed at once (counted in
        #: ``refused_connections``); existing sessions are untouched.
        self.accepting = True

        # --- records ---
        self.binds: list[BindAttempt] = []  #: every bind PDU, in order
        self.bind_statuses: list[int] = []  #: the status answered to each of ``binds``
        self.unbinds: list[str] = []  #: bind_command ("" if unbound) of each ESME unbind
        self.enquire_links_received = 0
        self.enquire_link_resps: list[int] = []  #: statuses of answers to ``enquire_link()``
        self.submitted: list[ShortMessage] = []  #: every submit_sm, answered or not
        self.delivered: list[ShortMessage] = []  #: every deliver_sm sent
        self.deliver_resps: list[tuple[int, int]] = []  #: (sequence, status) of each resp
        self.generic_nacks: list[tuple[int, int]] = []  #: (sequence, status) nacks sent
        self.generic_nacks_received: list[tuple[int, int]] = []  #: from the ESME
        self.log: list[LogEntry] = []  #: every PDU in and out (while ``keep_log``)
        #: Set False for long benchmarks: ``log`` then stays empty (other records are kept).
        self.keep_log = True
        self.errors: list[BaseException] = []  #: failed auto receipts, handler bugs
        self.connections = 0  #: TCP connections accepted (while ``accepting``)
        self.refused_connections = 0  #: TCP connections closed at once (not ``accepting``)
        self.sessions: list[Session] = []  #: open sessions, oldest first

        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._session_numbers = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._refs = itertools.count(1)
        self._round_robin = 0

    # --- lifecycle ---

    async def __aenter__(self) -> FakeSmsc:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listen (again) on ``host``/``port``; the first start picks a free port."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every session abruptly (like ``drop()``); the port is
        kept for ``start()``. Background receipts are cancelled."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.drop()
        if server is not None:
            await server.wait_closed()

    async def drop(self) -> None:
        """Close every session at once, without unbind (an outage or a network cut).
        Returns when their handlers have finished; the server keeps listening."""
        for session in list(self.sessions):
            session.close(abort=True)
        handlers = [task for task in self._handlers if task is not asyncio.current_task()]
        if handlers:
            await asyncio.wait(handlers, timeout=5)

    # --- waiting ---

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "a condition"
    ) -> None:
        """Wait until ``predicate()`` is true, re-checking it after every PDU, connection and
        disconnection; TimeoutError after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"fake SMSC: no {what} within {timeout} s") from None

    async def wait_bound(self, timeout: float = 5.0, *, receiver: bool = False) -> Session:
        """Wait for a bound session (``receiver``: one that can take deliver_sm) and return
        the most recently bound one."""

        def ready() -> list[Session]:
            return [s for s in self.sessions if (s.receiver if receiver else s.bound)]

        await self.wait_until(lambda: bool(ready()), timeout, "bound session")
        return ready()[-1]

    async def wait_binds(self, n: int, timeout: float = 5.0) -> list[BindAttempt]:
        """Wait until ``n`` bind PDUs arrived (accepted or refused); return the first ``n``."""
        await self.wait_until(lambda: len(self.binds) >= n, timeout, f"{n} binds")
        return self.binds[:n]

    async def wait_submitted(self, n: int, timeout: float = 5.0) -> list[ShortMessage]:
        """Wait until ``n`` submit_sm arrived (answered or not); return the first ``n``."""
        await self.wait_until(lambda: len(self.submitted) >= n, timeout, f"{n} submit_sm")
        return self.submitted[:n]

    async def wait_deliver_resps(self, n: int, timeout: float = 5.0) -> list[tuple[int, int]]:
        """Wait until ``n`` deliver_sm_resp arrived; return the first ``n`` (sequence, status)."""
        await self.wait_until(lambda: len(self.deliver_resps) >= n, timeout, f"{n} deliver_sm_resp")
        return self.deliver_resps[:n]

    # --- inspection ---

    @property
    def accepted(self) -> list[ShortMessage]:
        """The submits answered with ESME_ROK (those with a message_id)."""
        return [m for m in self.submitted if m.status == ESME_ROK]

    def texts(self, destination: str | None = None) -> list[str]:
        """Texts of the accepted submits (to ``destination`` if given, as the ESME wrote the
        address), with concatenated parts joined; see ``join_parts``."""
        return join_parts(
            m for m in self.accepted if destination is None or m.destination == destination
        )

    # --- sending to the ESME ---

    async def _send(self, session: Session, pdu: Any) -> None:
        if session.closed:
            raise ConnectionError(f"session {session.number} is closed")
        data = pdu.generate()
        if self.keep_log:
            self.log.append(LogEntry(session.number, "out", pdu.command, pdu.status, pdu.sequence))
        async with session._write_lock:
            session._writer.write(data)
            await session._writer.drain()

    async def _request(
        self, session: Session, pdu: Any, message: ShortMessage | None, wait: bool
    ) -> Any:
        """Send a request PDU; with ``wait`` return the ESME's response PDU (TimeoutError
        after ``resp_timeout``, ConnectionError if the session closes first)."""
        sequence = pdu.sequence
        future: asyncio.Future[Any] | None = (
            asyncio.get_running_loop().create_future() if wait else None
        )
        session._pending[sequence] = _Pending(message, future)
        try:
            await self._send(session, pdu)
        except BaseException:
            session._pending.pop(sequence, None)
            raise
        if future is None:
            return None
        try:
            async with asyncio.timeout(self.resp_timeout):
                return await future
        except TimeoutError:
            raise TimeoutError(
                f"fake SMSC: no response to {pdu.command} #{sequence} within {self.resp_timeout} s"
            ) from None
        finally:
            pending = session._pending.get(sequence)
            if pending is not None and pending.future is future:
                # Keep logging a late answer on the message, but nobody waits for it now.
                pending.future = None

    async def _receiver(self, session: Session | None) -> Session:
        if session is not None:
            return session
        await self.wait_until(
            lambda: any(s.receiver for s in self.sessions),
            self.bind_timeout,
            "bound receiver/transceiver session",
        )
        receivers = [s for s in self.sessions if s.receiver]
        self._round_robin += 1
        return receivers[self._round_robin % len(receivers)]

    async def deliver(
        self,
        source: str,
        destination: str | None,
        short_message: bytes = b"",
        *,
        data_coding: int = 0,
        esm_class: int = 0,
        sar: tuple[int, int, int] | None = None,
        message_payload: bytes | None = None,
        receipted_message_id: str | None = None,
        message_state: int | None = None,
        registered_delivery: int = 0,
        wait: bool = True,
        session: Session | None = None,
    ) -> int:
        """Send one deliver_sm and return the command_status of the ESME's deliver_sm_resp.

        It goes to ``session`` or else to a bound receiver/transceiver session (round robin
        when there are several), waiting up to ``bind_timeout`` for one to be bound.
        ``source``/``destination`` (None: ``service_number``): "+digits" is sent as an
        international number (TON 1, NPI 1, without the "+"), digits with TON 0 NPI 1,
        anything else as alphanumeric (TON 5). ``sar``: (ref, total, part) as sar_* TLVs.
        ``short_message`` and ``message_payload`` are exclusive (SMPP 3.4).

        With ``wait`` it waits up to ``resp_timeout`` (TimeoutError; ConnectionError if the
        session closes first). A generic_nack from the ESME counts as the answer (its status
        is returned). With ``wait=False`` it returns the deliver_sm's sequence_number at once;
        the answer still lands in ``deliver_resps`` and on the ``delivered`` record.
        """
        if short_message and message_payload is not None:
            raise ValueError("short_message and message_payload are exclusive")
        if len(short_message) > SHORT_MESSAGE_MAX:
            raise ValueError(f"short_message is over {SHORT_MESSAGE_MAX} octets")
        target = await self._receiver(session)
        source_addr, source_ton, source_npi = _address(source)
        dest_addr, dest_ton, dest_npi = _address(destination or self.service_number)
        sequence = target.next_sequence()
        ref, total, number = sar if sar is not None else (None, None, None)
        pdu = make_pdu(
            "deliver_sm",
            sequence,
            service_type="",
            source_addr_ton=source_ton,
            source_addr_npi=source_npi,
            source_addr=source_addr,
            dest_addr_ton=dest_ton,
            dest_addr_npi=dest_npi,
            destination_addr=dest_addr,
            esm_class=esm_class,
            registered_delivery=registered_delivery,
            data_coding=data_coding,
            short_message=short_message or None,
            message_payload=message_payload,
            sar_msg_ref_num=ref,
            sar_total_segments=total,
            sar_segment_seqnum=number,
            receipted_message_id=receipted_message_id,
            message_state=message_state,
        )
        message = ShortMessage(
            command="deliver_sm",
            sequence=sequence,
            session=target.number,
            source=source_addr,
            destination=dest_addr,
            source_ton=source_ton,
            source_npi=source_npi,
            dest_ton=dest_ton,
            dest_npi=dest_npi,
            data_coding=data_coding,
            esm_class=esm_class,
            registered_delivery=registered_delivery,
            short_message=short_message,
            message_payload=message_payload,
            sar_msg_ref_num=ref,
            sar_total_segments=total,
            sar_segment_seqnum=number,
            receipted_message_id=receipted_message_id,
            message_state=message_state,
        )
        self.delivered.append(message)
        resp = await self._request(target, pdu, message, wait)
        if not wait:
            return sequence
        return int(resp.status)

    async def deliver_text(
        self,
        source: str,
        text: str,
        *,
        destination: str | None = None,
        wait: bool = True,
        session: Session | None = None,
    ) -> int:
        """Deliver ``text`` as one message: GSM 7-bit unpacked (data_coding 0) if every
        character is in the GSM alphabet, else UCS-2 (data_coding 8); over 254 octets it
        goes in message_payload. Returns like ``deliver()``."""
        encoded = gsm_encode(text)
        data_coding = DATA_CODING_GSM
        if encoded is None:
            encoded, data_coding = text.encode("utf-16-be"), DATA_CODING_UCS2
        if len(encoded) > SHORT_MESSAGE_MAX:
            return await self.deliver(
                source,
                destination,
                b"",
                data_coding=data_coding,
                message_payload=encoded,
                wait=wait,
                session=session,
            )
        return await self.deliver(
            source, destination, encoded, data_coding=data_coding, wait=wait, session=session
        )

    @staticmethod
    def split(
        text: str,
        *,
        ucs2: bool = True,
        udh16: bool = False,
        sar: bool = False,
        chars_per_part: int | None = None,
    ) -> list[bytes]:
        """Split ``text`` into encoded part bodies that fit one SMS each (140 octets with
        the UDH): UCS-2 67 characters (66 with a 16-bit reference, 70 with ``sar``), GSM
        153 septets (152, 160). Never splits a GSM escape or a UTF-16 surrogate pair.
        ``chars_per_part`` caps the characters per part (to get several parts from a short
        text). ValueError if ``ucs2`` is False and the text is not GSM-encodable."""
        udh_octets = 0 if sar else (7 if udh16 else 6)
        # UCS-2: whole 16-bit units; GSM: septets, the UDH padded to a septet boundary.
        limit = (140 - udh_octets) // 2 * 2 if ucs2 else 160 - (udh_octets * 8 + 6) // 7
        parts: list[bytes] = []
        current = bytearray()
        chars = 0
        for ch in text:
            encoded = ch.encode("utf-16-be") if ucs2 else gsm_char(ch)
            if encoded is None:
                raise ValueError(f"{ch!r} is not in the GSM 7-bit alphabet")
            full = len(current) + len(encoded) > limit
            if current and (full or (chars_per_part is not None and chars >= chars_per_part)):
                parts.append(bytes(current))
                current, chars = bytearray(), 0
            current += encoded
            chars += 1
        if current or not parts:
            parts.append(bytes(current))
        return parts

    async def deliver_parts(
        self,
        source: str,
        text: str,
        *,
        order: Iterable[int] | None = None,
        udh16: bool = False,
        ucs2: bool = True,
        sar: bool = False,
        ref: int | None = None,
        chars_per_part: int | None = None,
        destination: str | None = None,
        wait: bool = True,
        session: Session | None = None,
    ) -> list[int]:
        """Deliver ``text`` as a concatenated message, one deliver_sm per part (see
        ``split``), each with a UDH (esm_class 0x40): ``05 00 03 ref total n`` (8-bit
        reference) or with ``udh16`` ``06 08 04 ref_hi ref_lo total n``; with ``sar`` the
        parts carry sar_msg_ref_num/sar_total_segments/sar_segment_seqnum TLVs instead.
        UCS-2 (data_coding 8) unless ``ucs2=False`` (GSM unpacked, data_coding 0). Always
        concatenated, even when the text fits one part (then total is 1).

        ``order``: the 1-based part numbers to send, in that order (default 1..N); leave
        some out or repeat them to test reassembly. ``ref``: the reference (default: a
        counter per fake, 1, 2, ...), masked to 8 or 16 bits. Parts are sent one after the
        other, each waiting for its answer when ``wait``; returns the statuses (or, with
        ``wait=False``, the sequence numbers) in sending order."""
        parts = self.split(text, ucs2=ucs2, udh16=udh16, sar=sar, chars_per_part=chars_per_part)
        total = len(parts)
        if total > 255:
            raise ValueError("more than 255 parts")
        reference = next(self._refs) if ref is None else ref
        reference &= 0xFFFF if (udh16 or sar) else 0xFF
        numbers = list(order) if order is not None else list(range(1, total + 1))
        for number in numbers:
            if not 1 <= number <= total:
                raise ValueError(f"part {number} of {total} does not exist")
        results: list[int] = []
        for number in numbers:
            body = parts[number - 1]
            data_coding = DATA_CODING_UCS2 if ucs2 else DATA_CODING_GSM
            if sar:
                status = await self.deliver(
                    source,
                    destination,
                    body,
                    data_coding=data_coding,
                    sar=(reference, total, number),
                    wait=wait,
                    session=session,
                )
            else:
                if udh16:
                    udh = bytes([6, 0x08, 4, reference >> 8, reference & 0xFF, total, number])
                else:
                    udh = bytes([5, 0x00, 3, reference, total, number])
                status = await self.deliver(
                    source,
                    destination,
                    udh + body,
                    data_coding=data_coding,
                    esm_class=ESM_CLASS_UDHI,
                    wait=wait,
                    session=session,
                )
            results.append(status)
        return results

    async def deliver_receipt(
        self,
        message_id: str,
        stat: str = "DELIVRD",
        err: str = "000",
        *,
        source: str | None = None,
        destination: str | None = None,
        submit_date: datetime | None = None,
        done_date: datetime | None = None,
        text: str = "",
        wait: bool = True,
        session: Session | None = None,
    ) -> int:
        """Deliver an SMSC delivery receipt (esm_class 0x04, data_coding 0) whose text is
        ``id:<id> sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm
        stat:DELIVRD err:000 text:`` (dlvrd:000 unless DELIVRD), with receipted_message_id
        and message_state (MESSAGE_STATES, 7 UNKNOWN for an unknown stat) TLVs.

        For a message_id this fake gave out, the addresses default to the submit's reversed
        (from its destination, to its source) and submit date to when it arrived; otherwise
        from "0" to ``service_number``, now. Returns like ``deliver()``."""
        original = next((m for m in self.submitted if m.message_id == message_id), None)
        if original is not None:
            default_source = ("+" if original.dest_ton == 1 else "") + original.destination
            default_destination = ("+" if original.source_ton == 1 else "") + original.source
            submitted_at = original.at
        else:
            default_source, default_destination, submitted_at = "0", None, datetime.now()
        done = done_date or datetime.now()
        submitted_at = submit_date or submitted_at
        body = (
            f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
            f"submit date:{submitted_at:%y%m%d%H%M} done date:{done:%y%m%d%H%M} "
            f"stat:{stat} err:{err} text:{text}"
        )
        return await self.deliver(
            source or default_source,
            destination or default_destination,
            body.encode("ascii"),
            data_coding=DATA_CODING_GSM,
            esm_class=ESM_CLASS_RECEIPT,
            receipted_message_id=message_id,
            message_state=MESSAGE_STATES.get(stat, MESSAGE_STATES["UNKNOWN"]),
            wait=wait,
            session=session,
        )

    async def enquire_link(self, session: Session | None = None) -> int:
        """Send enquire_link to ``session`` (default: the most recently bound one, waiting
        ``bind_timeout`` for one) and return the status of its enquire_link_resp, also
        recorded in ``enquire_link_resps``. TimeoutError after ``resp_timeout``."""
        target = session or await self.wait_bound(self.bind_timeout)
        resp = await self._request(
            target, make_pdu("enquire_link", target.next_sequence()), None, True
        )
        status = int(resp.status)
        self.enquire_link_resps.append(status)
        return status

    async def unbind(self, session: Session | None = None) -> None:
        """SMSC-initiated unbind: send unbind to ``session`` (default: every open session),
        wait up to ``resp_timeout`` for unbind_resp, then close the connection."""
        targets = [session] if session is not None else list(self.sessions)

        async def one(target: Session) -> None:
            with contextlib.suppress(TimeoutError, ConnectionError):
                await self._request(target, make_pdu("unbind", target.next_sequence()), None, True)
            target.close()

        await asyncio.gather(*(one(t) for t in targets))

    # --- serving the ESME ---

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting or self._server is None:
            self.refused_connections += 1
            writer.close()
            self._notify()
            return
        self.connections += 1
        session = Session(next(self._session_numbers), reader, writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self.sessions.append(session)
        self._notify()
        try:
            await self._serve(session)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception as exc:  # never let a bug here kill the server quietly
            self.errors.append(exc)
        finally:
            session.close()
            if session in self.sessions:
                self.sessions.remove(session)
            if task is not None:
                self._handlers.discard(task)
            self._notify()

    async def _serve(self, session: Session) -> None:
        reader = session._reader
        while not session.closed:
            try:
                head = await reader.readexactly(4)
            except asyncio.IncompleteReadError:
                return  # EOF (between PDUs or inside a length: nothing to answer)
            length = int.from_bytes(head, "big")
            if not HEADER_LEN <= length <= MAX_PDU_LEN:
                # The stream cannot be framed any more: nack and hang up.
                await self._nack(session, 0, ESME_RINVCMDLEN)
                session.close()
                return
            data = head + await reader.readexactly(length - 4)
            try:
                await self._dispatch(session, data)
            except (ConnectionError, asyncio.CancelledError):
                raise
            except Exception as exc:
                self.errors.append(exc)
                await self._nack(session, int.from_bytes(data[12:16], "big"), ESME_RSYSERR)
            self._notify()

    async def _nack(self, session: Session, sequence: int, status: int) -> None:
        self.generic_nacks.append((sequence, status))
        await self._send(session, make_pdu("generic_nack", sequence, status))

    async def _dispatch(self, session: Session, data: bytes) -> None:
        command_id = int.from_bytes(data[4:8], "big")
        sequence = int.from_bytes(data[12:16], "big")
        try:
            pdu = parse_pdu(data)
        except smpplib.exceptions.UnknownCommandError:
            self._log_in(session, f"0x{command_id:08x}", 0, sequence)
            await self._nack(session, sequence, ESME_RINVCMDID)
            return
        except Exception:
            self._log_in(session, f"0x{command_id:08x}", 0, sequence)
            await self._nack(session, sequence, ESME_RINVCMDLEN)
            return
        name: str = pdu.command
        status = int(pdu.status or 0)
        self._log_in(session, name, status, sequence)

        if name.endswith("_resp") or name == "generic_nack":
            self._on_response(session, pdu, name, status, sequence)
        elif name in BIND_COMMANDS:
            await self._on_bind(session, pdu, name, sequence)
        elif name == "enquire_link":
            self.enquire_links_received += 1
            if not self.silent_enquire_links:
                await self._send(session, make_pdu("enquire_link_resp", sequence))
        elif name == "unbind":
            self.unbinds.append(session.bind_command or "")
            await self._send(session, make_pdu("unbind_resp", sequence))
            session.close()
        elif name == "submit_sm":
            await self._on_submit(session, pdu, sequence)
        else:  # deliver_sm, data_sm, query_sm, alert_notification: not supported from an ESME
            await self._nack(session, sequence, ESME_RINVCMDID)

    def _log_in(self, session: Session, command: str, status: int, sequence: int) -> None:
        if self.keep_log:
            self.log.append(LogEntry(session.number, "in", command, status, sequence))

    def _on_response(
        self, session: Session, pdu: Any, name: str, status: int, sequence: int
    ) -> None:
        if name == "deliver_sm_resp":
            self.deliver_resps.append((sequence, status))
        elif name == "generic_nack":
            self.generic_nacks_received.append((sequence, status))
        pending = session._pending.pop(sequence, None)
        if pending is None:
            return
        if pending.message is not None:
            pending.message.status = status
        if pending.future is not None and not pending.future.done():
            pending.future.set_result(pdu)

    async def _on_bind(self, session: Session, pdu: Any, name: str, sequence: int) -> None:
        attempt = BindAttempt(
            name, _text(pdu.system_id), _text(pdu.system_type), _text(pdu.address_range)
        )
        self.binds.append(attempt)
        if session.bound:
            status = ESME_RALYBND
        elif self.refuse_bind is not None:
            status = self.refuse_bind
        elif self.system_id is not None and attempt.system_id != self.system_id:
            status = ESME_RINVSYSID
        elif self.password is not None and _text(pdu.password) != self.password:
            status = ESME_RINVPASWD
        else:
            status = ESME_ROK
        self.bind_statuses.append(status)
        resp = make_pdu(
            f"{name}_resp",
            sequence,
            status,
            system_id=self.smsc_system_id,
            sc_interface_version=SMSC_INTERFACE_VERSION,
        )
        if status != ESME_ROK:
            resp.params_order = ()  # SMPP 3.4 §4.1.2: no body when command_status != 0
        else:
            session.bind_command = name
            session.system_id = attempt.system_id
        await self._send(session, resp)

    async def _on_submit(self, session: Session, pdu: Any, sequence: int) -> None:
        message = ShortMessage(
            command="submit_sm",
            sequence=sequence,
            session=session.number,
            source=_text(pdu.source_addr),
            destination=_text(pdu.destination_addr),
            source_ton=_int(pdu.source_addr_ton),
            source_npi=_int(pdu.source_addr_npi),
            dest_ton=_int(pdu.dest_addr_ton),
            dest_npi=_int(pdu.dest_addr_npi),
            data_coding=_int(pdu.data_coding),
            esm_class=_int(pdu.esm_class),
            registered_delivery=_int(pdu.registered_delivery),
            short_message=bytes(pdu.short_message or b""),
            message_payload=bytes(pdu.message_payload) if pdu.message_payload else None,
            sar_msg_ref_num=_opt_int(pdu.sar_msg_ref_num),
            sar_total_segments=_opt_int(pdu.sar_total_segments),
            sar_segment_seqnum=_opt_int(pdu.sar_segment_seqnum),
        )
        self.submitted.append(message)
        answer: int | None
        if not session.transmitter:
            answer = ESME_RINVBNDSTS
        elif not message.destination:
            answer = ESME_RINVDSTADR
        elif self.silent_submits:
            answer = None
        elif self.answers:
            answer = self.answers.popleft()
        else:
            answer = ESME_ROK
        message.status = answer
        if answer is None:
            return
        resp = make_pdu("submit_sm_resp", sequence, answer)
        if answer == ESME_ROK:
            message.message_id = f"smsc-{next(self._message_ids)}"
            resp.message_id = message.message_id
        else:
            resp.params_order = ()  # SMPP 3.4 §4.4.2: no body when command_status != 0
        await self._send(session, resp)
        if answer == ESME_ROK and self.auto_receipts and message.message_id is not None:
            wanted = message.registered_delivery & 0x03
            if wanted == 1 or (wanted == 2 and self.auto_receipt_stat != "DELIVRD"):
                self._spawn(self._auto_receipt(message.message_id))

    async def _auto_receipt(self, message_id: str) -> None:
        try:
            await self.deliver_receipt(message_id, self.auto_receipt_stat, self.auto_receipt_err)
        except (TimeoutError, ConnectionError) as exc:
            self.errors.append(exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
