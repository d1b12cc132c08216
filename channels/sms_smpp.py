"""SMS over SMPP 3.4: the gateway as an ESME bound to an operator's or aggregator's SMSC.

:class:`SmppLink` keeps the binding (one transceiver session, or a receiver and a
transmitter when the operator requires it): it connects (optionally over TLS), binds,
answers and sends ``enquire_link``, reconnects after a lost link with exponential back-off
and jitter (1 s doubling to 60 s), logs a refused bind once with its status name and
retries it every minute, and unbinds on shutdown. PDUs are encoded and decoded by
``smpplib``'s codec (:mod:`channels.smpp_pdu`); the session logic is here because the
gateway's guarantees live in it:

* a ``deliver_sm`` is answered only once what it carries is committed — the message and
  its outcome, or the part of a concatenated message — and never when the database could
  not store it (the response is withheld: the SMSC delivers it again);
* ``submit_sm`` requests awaiting an answer are bounded by a window, and sent at most at
  ``submits_per_second``.

:class:`SmppChannel` turns a ``deliver_sm`` into an :class:`InboundMessage` of the ``smpp``
channel (parts reassembled, in any order) or a delivery receipt, and :class:`SmppSender`
sends queued replies and notifications as ``submit_sm`` (GSM 7-bit or UCS-2, split with a
UDH), retrying throttled ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, cast

import structlog

from channels.smpp_pdu import (
    ESME_RMSGQFUL,
    ESME_ROK,
    ESME_RTHROTTLED,
    MAX_SEQUENCE,
    Part,
    Pdu,
    PduError,
    Receipt,
    decode,
    encode,
    read_deliver,
    read_frame,
    segments,
    status_name,
)
from gateway.domain.errors import StorageUnavailable
from gateway.domain.model import InboundMessage
from gateway.domain.outbound import SendResult, SendVerdict
from gateway.domain.ports import OnInbound, SmsParts
from gateway.domain.privacy import mask_sender

log = structlog.get_logger("channels.sms_smpp")

CHANNEL = "smpp"
# A message delivered again within this window with the same sender and text is the same
# message (the SMSC's redelivery after a lost deliver_sm_resp): handled once.
REDELIVERY_WINDOW = timedelta(minutes=10)

# Seconds a submit waits for the session to be bound before it is retried later.
BIND_WAIT = 2.0
# Times a delivery receipt is matched to its send before it is answered unmatched (about
# 10 s in all).
RECEIPT_TRIES = 8

BindMode = Literal["transceiver", "split"]


@dataclass(frozen=True, slots=True)
class SmppConfig:
    host: str
    system_id: str
    password: str
    source_addr: str
    port: int = 2775
    system_type: str = ""
    address_range: str = ""
    tls: Literal["ssl", "none"] = "none"
    bind: BindMode = "transceiver"
    submits_per_second: float = 10.0
    window: int = 10
    enquire_link_interval: float = 30.0
    part_timeout: float = 600.0
    # The longest wait for the SMSC's answer to a request (bind, submit, enquire_link).
    response_timeout: float = 10.0
    reconnect_base: float = 1.0
    reconnect_cap: float = 60.0
    # A refused bind is retried after this long (a wrong password does not heal quickly).
    bind_refused_wait: float = 60.0
    ssl_context: ssl.SSLContext | None = None


class LinkDown(Exception):
    """No bound session can carry the request now."""


class SmppRefused(Exception):
    """The SMSC answered a request with an error status."""

    def __init__(self, status: int) -> None:
        super().__init__(status_name(status))
        self.status = status


# What a received deliver_sm is answered with: a status, or None to withhold the answer.
OnDeliver = Callable[[Pdu], Awaitable[int | None]]


class _Session:
    """One bound connection: its reader, its pending requests, its keep-alive."""

    def __init__(
        self,
        config: SmppConfig,
        bind: str,
        on_deliver: OnDeliver | None,
        sequence: itertools.count[int],
    ) -> None:
        self._config = config
        self._bind = bind
        self._on_deliver = on_deliver
        self._sequence = sequence
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._window = asyncio.Semaphore(config.window)
        self._writer: asyncio.StreamWriter | None = None
        self._write_lock = asyncio.Lock()
        self._handlers: set[asyncio.Task[None]] = set()
        self.bound = asyncio.Event()
        self.lost = asyncio.Event()
        self._refusals_logged: set[int] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, bind and serve until ``stop``; reconnect after any loss."""
        delay = self._config.reconnect_base
        while not stop.is_set():
            wait = delay
            try:
                await self._serve(stop)
                delay = self._config.reconnect_base  # it was bound: start over
                wait = delay
            except SmppRefused as refused:
                if refused.status not in self._refusals_logged:
                    self._refusals_logged.add(refused.status)
                    log.error(
                        "smpp_bind_refused",
                        bind=self._bind,
                        status=refused.args[0],
                        retry_in=self._config.bind_refused_wait,
                    )
                wait = self._config.bind_refused_wait
            except (OSError, asyncio.IncompleteReadError, TimeoutError, PduError, LinkDown) as exc:
                log.warning(
                    "smpp_link_lost", bind=self._bind, error=type(exc).__name__, retry_in=delay
                )
                delay = min(self._config.reconnect_cap, delay * 2)
            except Exception:  # a bug must not end the link for good: reconnect
                log.exception("smpp_session_failed", bind=self._bind, retry_in=delay)
                delay = min(self._config.reconnect_cap, delay * 2)
            finally:
                await self._close()
            if stop.is_set():
                break
            # Jitter: several gateways (or sessions) do not reconnect in step.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait * random.uniform(0.8, 1.2))

    async def _serve(self, stop: asyncio.Event) -> None:
        config = self._config
        context = None
        if config.tls == "ssl":
            context = config.ssl_context or ssl.create_default_context()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(config.host, config.port, ssl=context),
            config.response_timeout,
        )
        self._writer = writer
        self.lost.clear()
        reading = asyncio.create_task(self._read(reader))
        try:
            answer = await self._request(
                self._bind,
                system_id=config.system_id,
                password=config.password,
                system_type=config.system_type,
                interface_version=0x34,
                address_range=config.address_range,
            )
            if answer.status != ESME_ROK:
                raise SmppRefused(answer.status)
            self._refusals_logged.clear()
            self.bound.set()
            log.info("smpp_bound", bind=self._bind, smsc=answer.fields.get("system_id"))
            keeping = asyncio.create_task(self._keep_alive())
            stopping = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait(
                {reading, keeping, stopping}, return_when=asyncio.FIRST_COMPLETED
            )
            keeping.cancel()
            stopping.cancel()
            if stop.is_set() and not reading.done():
                await self._unbind()
            elif reading in done:
                reading.result()  # raises what ended the link
                raise ConnectionResetError("the SMSC ended the session")
            elif keeping in done:
                keeping.result()
        finally:
            self.bound.clear()
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading

    async def _unbind(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._request("unbind"), 2.0)
        log.info("smpp_unbound", bind=self._bind)

    async def _keep_alive(self) -> None:
        """enquire_link every interval; an unanswered one means the link is dead."""
        while True:
            await asyncio.sleep(self._config.enquire_link_interval)
            await self._request("enquire_link")

    async def _close(self) -> None:
        self.bound.clear()
        self.lost.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(LinkDown("the link was lost"))
        self._pending.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            frame = await read_frame(reader)
            try:
                pdu = decode(frame)
            except PduError as exc:
                log.warning("smpp_bad_pdu", error=str(exc))
                if exc.sequence is not None:
                    await self._send(encode("generic_nack", exc.sequence, status=0x00000003))
                continue
            if pdu.is_response:
                future = self._pending.pop(pdu.sequence, None)
                if future is not None and not future.done():
                    future.set_result(pdu)
                continue
            if pdu.command == "enquire_link":
                await self._send(encode("enquire_link_resp", pdu.sequence))
            elif pdu.command == "unbind":
                await self._send(encode("unbind_resp", pdu.sequence))
                return
            elif pdu.command == "deliver_sm" and self._on_deliver is not None:
                task = asyncio.create_task(self._deliver(pdu))
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)
            else:
                await self._send(encode("generic_nack", pdu.sequence, status=0x00000003))

    async def _deliver(self, pdu: Pdu) -> None:
        assert self._on_deliver is not None
        try:
            status = await self._on_deliver(pdu)
        except Exception:
            log.exception("smpp_deliver_failed", sequence=pdu.sequence)
            status = None
        if status is None:
            return  # withheld: the SMSC delivers it again
        with contextlib.suppress(OSError, LinkDown):
            await self._send(encode("deliver_sm_resp", pdu.sequence, status=status))

    async def _send(self, frame: bytes) -> None:
        writer = self._writer
        if writer is None:
            raise LinkDown("not connected")
        async with self._write_lock:
            writer.write(frame)
            await writer.drain()

    async def _request(self, command: str, **fields: object) -> Pdu:
        async with self._window:
            sequence = next(self._sequence) % MAX_SEQUENCE + 1
            future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
            self._pending[sequence] = future
            try:
                await self._send(encode(command, sequence, **cast(dict[str, Any], fields)))
                return await asyncio.wait_for(future, self._config.response_timeout)
            finally:
                self._pending.pop(sequence, None)

    async def submit(self, **fields: object) -> Pdu:
        if not self.bound.is_set():
            try:  # just starting, or binding again: a moment's wait, not a retry in 30 s
                await asyncio.wait_for(self.bound.wait(), BIND_WAIT)
            except TimeoutError:
                raise LinkDown("not bound") from None
        return await self._request("submit_sm", **fields)


class SmppLink:
    """The binding to the SMSC (see the module): ``run`` until stopped, ``submit`` any time."""

    def __init__(self, config: SmppConfig) -> None:
        self.config = config
        self._on_deliver: OnDeliver | None = None
        sequence = itertools.count(1)
        if config.bind == "transceiver":
            self._sessions = [_Session(config, "bind_transceiver", self._deliver, sequence)]
            self._transmitter = self._sessions[0]
        else:
            self._transmitter = _Session(config, "bind_transmitter", None, sequence)
            receiver = _Session(config, "bind_receiver", self._deliver, sequence)
            self._sessions = [receiver, self._transmitter]
        self._pace = asyncio.Lock()
        self._next_slot = 0.0

    @property
    def up(self) -> bool:
        """Whether every session is bound."""
        return all(session.bound.is_set() for session in self._sessions)

    def attach(self, on_deliver: OnDeliver) -> None:
        """Who handles what the SMSC delivers (the channel, built after the link)."""
        self._on_deliver = on_deliver

    async def _deliver(self, pdu: Pdu) -> int | None:
        if self._on_deliver is None:
            return None  # not ready: the SMSC delivers it again
        return await self._on_deliver(pdu)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(session.run(stop) for session in self._sessions))

    async def wait_bound(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.gather(*(s.bound.wait() for s in self._sessions)), timeout)

    async def submit(self, **fields: object) -> Pdu:
        """One ``submit_sm`` at the configured pace; its answer. LinkDown, TimeoutError."""
        loop = asyncio.get_running_loop()
        async with self._pace:
            slot = max(loop.time(), self._next_slot)
            self._next_slot = slot + 1.0 / self.config.submits_per_second
        await asyncio.sleep(max(0.0, slot - loop.time()))
        return await self._transmitter.submit(**fields)


class OnReceipt(Protocol):
    async def __call__(self, provider_id: str, state: str, at: datetime) -> int | None: ...


class SmppChannel:
    """Inbound ``deliver_sm``: a message for the intake, a part kept, or a receipt."""

    def __init__(
        self,
        on_inbound: OnInbound,
        parts: SmsParts,
        on_receipt: OnReceipt,
        clock: Callable[[], datetime],
        *,
        part_timeout: float,
        replied: Callable[[], None] = lambda: None,
    ) -> None:
        """``replied`` is called when a reply was queued (the sender then looks at once)."""
        self._on_inbound = on_inbound
        self._parts = parts
        self._on_receipt = on_receipt
        self._clock = clock
        self._part_timeout = part_timeout
        self._replied = replied
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    async def on_deliver(self, pdu: Pdu) -> int | None:
        """The status to answer ``pdu`` with, once what it carries is committed; None
        (withhold the answer) when it could not be stored."""
        try:
            item = read_deliver(pdu)
        except PduError as exc:
            log.warning("smpp_deliver_unreadable", error=str(exc))
            return ESME_ROK  # nothing to keep: redelivering it cannot help
        try:
            if isinstance(item, Receipt):
                await self._receipt(item)
            else:
                # One sender's messages one at a time: its parts complete in one place.
                async with self._one_at_a_time(item.source):
                    await self._part(item)
        except StorageUnavailable:
            return None
        return ESME_ROK

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, source: str) -> AsyncIterator[None]:
        """A lock per sender, forgotten when nobody holds or awaits it."""
        entry = self._locks.setdefault(source, (asyncio.Lock(), [0]))
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                self._locks.pop(source, None)

    async def _receipt(self, receipt: Receipt) -> None:
        """Record it on the row that sent the segment. A receipt can overtake the record
        of its send (the sender records a pass when the pass is done): it is matched again
        for a few seconds before it is answered unmatched."""
        wait = 0.1
        row = None
        for _ in range(RECEIPT_TRIES):
            for smsc_id in receipt_ids(receipt.message_id):
                row = await self._on_receipt(smsc_id, receipt.state, self._clock())
                if row is not None:
                    break
            if row is not None:
                break
            await asyncio.sleep(wait)
            wait = min(2.0, wait * 2)
        log.info("smpp_receipt", smsc_id=receipt.message_id, state=receipt.state, outbound_id=row)

    async def _part(self, part: Part) -> None:
        now = self._clock()
        sender = _sender(part.source)
        if part.total <= 1 or part.reference is None:
            external = part.smsc_id or _window_id(sender, part.text, now)
            await self._handle(InboundMessage(CHANNEL, sender, part.text, now, external))
            return
        whole = await self._parts.keep(
            sender, part.reference, part.total, part.number, part.text, now
        )
        if whole is None:
            log.info("smpp_part_kept", sender=mask_sender(sender), part=part.number)
            return
        external = f"parts:{part.reference}:{whole.key}"
        await self._handle(InboundMessage(CHANNEL, sender, whole.text, now, external))
        await self._parts.handled(sender, whole.key, now)

    async def _handle(self, message: InboundMessage) -> None:
        outcome = await self._on_inbound(message)
        if outcome.reply is not None:
            self._replied()

    async def give_up(self) -> int:
        """Record what came of concatenated messages whose parts stopped coming (after
        ``part_timeout``) as the text they have; how many."""
        now = self._clock()
        expired = await self._parts.expired(now - timedelta(seconds=self._part_timeout))
        for sender, whole in expired:
            log.warning(
                "smpp_parts_given_up",
                sender=mask_sender(sender),
                parts=whole.parts,
                total=whole.total,
            )
            external = f"parts:incomplete:{whole.key}"
            await self._handle(InboundMessage(CHANNEL, sender, whole.text, now, external))
            await self._parts.handled(sender, whole.key, now)
        return len(expired)

    async def run_give_up(self, stop: asyncio.Event) -> None:
        """:meth:`give_up` every minute until ``stop``."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(60.0, self._part_timeout))
            try:
                await self.give_up()
            except Exception:  # the database is away: the next round tries again
                log.exception("smpp_give_up_failed")


class SmppSender:
    """The ``smpp`` channel's sender: a queued text as ``submit_sm`` segments."""

    def __init__(self, link: SmppLink, retries: int = 4, backoff: float = 0.5) -> None:
        self._link = link
        self._references = itertools.count(random.randrange(256))
        self._retries = retries
        self._backoff = backoff

    async def send(self, recipient: str, text: str) -> SendResult:
        config = self._link.config
        split = segments(text, next(self._references) & 0xFF)
        source_ton, source_npi = _address_type(config.source_addr)
        ids: list[str] = []
        for part in split.parts:
            fields = {
                "source_addr_ton": source_ton,
                "source_addr_npi": source_npi,
                "source_addr": config.source_addr,
                "dest_addr_ton": 1,
                "dest_addr_npi": 1,
                "destination_addr": recipient.lstrip("+"),
                "esm_class": split.esm_class,
                "data_coding": split.data_coding,
                "registered_delivery": 1,
                "short_message": part,
            }
            answer = await self._submit(fields)
            if isinstance(answer, SendResult):
                return answer
            ids.append(str(answer.fields.get("message_id", "")))
        return SendResult(SendVerdict.SENT, " ".join(ids)[:128], ids=tuple(i for i in ids if i))

    async def _submit(self, fields: dict[str, object]) -> Pdu | SendResult:
        """One segment, retried while the SMSC is throttling; its answer, or the result
        that ends the send."""
        wait = self._backoff
        for attempt in range(self._retries + 1):
            try:
                answer = await self._link.submit(**fields)
            except (LinkDown, TimeoutError, OSError) as exc:
                return SendResult(SendVerdict.RETRY, f"smpp: {type(exc).__name__}")
            if answer.status == ESME_ROK:
                return answer
            if answer.status in (ESME_RTHROTTLED, ESME_RMSGQFUL):
                if attempt < self._retries:
                    await asyncio.sleep(wait)
                    wait *= 2
                    continue
                return SendResult(SendVerdict.RETRY, status_name(answer.status), retry_after=wait)
            return SendResult(SendVerdict.FAILED, status_name(answer.status))
        raise AssertionError("unreachable")


def receipt_ids(message_id: str) -> list[str]:
    """The ids a receipt may mean: as written, and — SMSCs are known to answer a submit
    with a hexadecimal id and write the receipt's in decimal, or the other way round — the
    same number in the other base."""
    ids = [message_id]
    if message_id.isdigit():
        ids += [format(int(message_id), "x"), format(int(message_id), "X")]
    elif message_id and all(c in "0123456789abcdefABCDEF" for c in message_id):
        ids.append(str(int(message_id, 16)))
    return list(dict.fromkeys(ids))


def _sender(source: str) -> str:
    """An SMSC's source_addr as the intake's sender: digits of 10 or more are an
    international number without its +."""
    return f"+{source}" if source.isdigit() and len(source) >= 10 else source


def _window_id(sender: str, text: str, now: datetime) -> str:
    """The identity of a single-part message without an SMSC id: sender, text and the
    :data:`REDELIVERY_WINDOW` it came in."""
    bucket = int(now.timestamp() // REDELIVERY_WINDOW.total_seconds())
    digest = hashlib.sha256(f"{sender}\n{text}".encode()).hexdigest()[:24]
    return f"sm:{digest}:{bucket}"


def _address_type(address: str) -> tuple[int, int]:
    """TON and NPI of a source address: a short number (network specific), an
    international number, or alphanumeric."""
    if address.isdigit():
        return (3, 0) if len(address) <= 8 else (1, 1)
    return 5, 0
