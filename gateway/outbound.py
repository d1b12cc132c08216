"""The outbound senders: drain the outbound queue channel by channel, with retries.

A message sent later than the synchronous reply (a review decision now; reminders and
list reports with the Telegram and email channels) is queued in the same transaction as
what it tells of (:class:`gateway.domain.store.OutboundStore`), then sent by the channel's
:class:`~gateway.domain.outbound.ChannelSender`: at once by whoever queued it
(:meth:`OutboundSender.send_now`), and otherwise by the loop ``gateway serve`` runs
(:meth:`OutboundSender.run_forever`). A failed attempt is due again after exponential
back-off (or the provider's own wait); after ``max_attempts`` it is ``failed`` and shown by
``gateway outbound status``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from gateway.domain.inbound import SMS_CHANNELS
from gateway.domain.outbound import (
    REPLY_KIND,
    ChannelSender,
    OutboundItem,
    SendResult,
    SendVerdict,
    SentOutcome,
)
from gateway.domain.privacy import mask_sender
from gateway.storage.outbound import SqlOutboundQueue

log = structlog.get_logger("gateway.outbound")

# Why a notification was not sent: the phone sent СТОП.
OPTED_OUT = "opted out: the recipient sent СТОП/STOP"


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """A pass claims ``batch`` rows and sends ``concurrency`` at a time; the lease must
    outlast the pass (ceil(batch / concurrency) sends of at most 10 s each), or another
    sender could claim a row still being sent."""

    batch: int = 32
    concurrency: int = 8
    lease_seconds: float = 60.0
    backoff_base: float = 30.0
    backoff_cap: float = 3600.0
    max_attempts: int = 10

    def due_again(self, attempts: int, now: datetime, retry_after: float | None) -> datetime:
        """After the ``attempts``-th failed attempt: base × 2^(attempts-1), capped, or the
        provider's wait when longer."""
        wait = min(self.backoff_cap, self.backoff_base * 2.0 ** max(0, attempts - 1))
        return now + timedelta(seconds=max(wait, retry_after or 0.0))


class OutboundSender:
    """Sends queued messages on the channels that have a sender."""

    def __init__(
        self,
        queue: SqlOutboundQueue,
        senders: Mapping[str, ChannelSender],
        clock: Callable[[], datetime],
        policy: OutboundPolicy | None = None,
        rates: Mapping[str, float] | None = None,
    ) -> None:
        """``rates``: the most messages per second a channel's provider takes (Telegram:
        about 30 overall); that channel's sends are spaced to stay under it."""
        self._queue = queue
        self._senders = senders
        self._clock = clock
        self._policy = policy or OutboundPolicy()
        self._rates = dict(rates or {})
        self._slots: dict[str, float] = {}
        self._pacing = {channel: asyncio.Lock() for channel in self._rates}
        self._nudged = {channel: asyncio.Event() for channel in self._senders}

    def nudge(self, channel: str) -> None:
        """Rows were queued on ``channel``: its sender loop looks now, not at its interval."""
        event = self._nudged.get(channel)
        if event is not None:
            event.set()

    @property
    def channels(self) -> frozenset[str]:
        """The channels that can send on their own initiative."""
        return frozenset(self._senders)

    async def send_now(self, ids: Sequence[int]) -> dict[int, SendResult]:
        """Send these queued rows now (the caller just queued them); what each got."""
        items = await self._queue.claim(
            self.channels, self._clock(), len(ids), self._policy.lease_seconds, ids=ids
        )
        return {o.item.id: o.result for o in await self._send(items)}

    async def run_once(self, channel: str | None = None) -> int:
        """One pass: send what is due (on ``channel``, or on every channel); how many rows
        were attempted."""
        channels = self.channels if channel is None else self.channels & {channel}
        items = await self._queue.claim(
            channels, self._clock(), self._policy.batch, self._policy.lease_seconds
        )
        await self._send(items)
        return len(items)

    async def run_forever(self, stop: asyncio.Event, interval: float) -> None:
        """A sender per channel, until ``stop``: one channel's backlog or slow provider
        never holds up another's messages."""
        await asyncio.gather(*(self._drain(channel, stop, interval) for channel in self.channels))

    async def _drain(self, channel: str, stop: asyncio.Event, interval: float) -> None:
        """Pass after pass: at once while rows come, else every ``interval`` seconds."""
        while not stop.is_set():
            try:
                attempted = await self.run_once(channel)
            except Exception:  # an outage of the database: the next pass tries again
                log.exception("outbound_pass_failed", channel=channel)
                attempted = 0
            if attempted:
                continue
            nudged = self._nudged[channel]
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(nudged.wait())]
            await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
            nudged.clear()

    async def _send(self, items: Sequence[OutboundItem]) -> list[SentOutcome]:
        gate = asyncio.Semaphore(self._policy.concurrency)
        stopped = await self._queue.opted_out(
            {i.recipient for i in items if i.channel in SMS_CHANNELS and i.kind != REPLY_KIND}
        )

        async def attempt(item: OutboundItem) -> SentOutcome:
            if item.recipient in stopped and item.kind != REPLY_KIND:
                # СТОП: only direct replies still go to this phone.
                log.info("outbound_opted_out", id=item.id, recipient=mask_sender(item.recipient))
                return SentOutcome(item, SendResult(SendVerdict.FAILED, OPTED_OUT), self._clock())
            async with gate:
                return await self._attempt(item)

        outcomes = list(await asyncio.gather(*(attempt(item) for item in items)))
        await self._queue.settle(outcomes)
        return outcomes

    async def _paced(self, channel: str) -> None:
        """Wait for the channel's next free slot (its rate), then take it."""
        rate = self._rates.get(channel)
        if not rate:
            return
        loop = asyncio.get_running_loop()
        async with self._pacing[channel]:
            slot = max(loop.time(), self._slots.get(channel, 0.0))
            self._slots[channel] = slot + 1.0 / rate
            await asyncio.sleep(slot - loop.time())

    async def _attempt(self, item: OutboundItem) -> SentOutcome:
        await self._paced(item.channel)
        try:
            result = await self._senders[item.channel].send(item.recipient, item.text)
        except Exception as exc:  # a sender's bug must not stop the queue
            log.exception("outbound_sender_crashed", channel=item.channel, id=item.id)
            result = SendResult(SendVerdict.RETRY, type(exc).__name__)
        now = self._clock()
        attempts = item.attempts + 1
        due = None
        if result.verdict is SendVerdict.RETRY:
            if attempts >= self._policy.max_attempts:
                detail = f"gave up after {attempts} attempts: {result.detail}"
                result = SendResult(SendVerdict.FAILED, detail)
            else:
                due = self._policy.due_again(attempts, now, result.retry_after)
        log.info(
            "outbound_attempted",
            id=item.id,
            channel=item.channel,
            recipient=mask_sender(item.recipient),
            verdict=result.verdict.value,
            attempts=attempts,
            detail=None if result.verdict is SendVerdict.SENT else result.detail,
        )
        return SentOutcome(item, result, now, due)
