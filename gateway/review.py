"""Operator review of readings held as outliers: list, approve, reject. The customer is
told on the channel they wrote from, through the outbound queue, with the preliminary
charge when approved — when that channel can send on its own initiative."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import structlog

from billing_bridge.charge import preliminary_charge
from gateway import replies
from gateway.domain.outbound import Notice, SendVerdict
from gateway.domain.outcome import ReadingLine
from gateway.domain.store import Outbound, Store, StoredReading, Transactor
from gateway.outbound import OutboundSender

log = structlog.get_logger("gateway.review")


class Decided(list[StoredReading]):
    """The readings decided (empty: nothing of it was held any more), and whether the
    customer is told: ``notice``, with ``detail`` (the channel, or why not)."""

    def __init__(
        self,
        readings: Iterable[StoredReading] = (),
        notice: Notice = Notice.NOT_TOLD,
        detail: str = "",
    ) -> None:
        super().__init__(readings)
        self.notice = notice
        self.detail = detail


class Review:
    def __init__(
        self, db: Transactor, outbound: OutboundSender, clock: Callable[[], datetime]
    ) -> None:
        self._db = db
        self._outbound = outbound
        self._clock = clock

    async def held(self) -> list[StoredReading]:
        return await self._db.run(lambda uow: uow.readings.held())

    async def approve(self, message_id: int, account: str | None = None) -> Decided:
        """Approve the held readings of one submission for one account (``account`` may
        be left out when the submission holds only one's: see ``ReadingStore.decide``)."""
        return await self._decide(message_id, approve=True, reason=None, account=account)

    async def reject(self, message_id: int, reason: str, account: str | None = None) -> Decided:
        return await self._decide(message_id, approve=False, reason=reason, account=account)

    async def _decide(
        self, message_id: int, *, approve: bool, reason: str | None, account: str | None
    ) -> Decided:
        now = self._clock()
        channels = self._outbound.channels

        def decide(uow: Store) -> tuple[list[StoredReading], int | None]:
            decided = uow.readings.decide(
                message_id, approve=approve, note=reason, now=now, account=account
            )
            if not decided:
                return decided, None
            first = decided[0]
            if not first.sender or first.channel not in channels:
                return decided, None
            if approve:
                # One account's readings: charged with that account's own debt.
                owner = uow.registry.load_account(first.account)
                assert owner is not None  # its readings reference it
                tariffs = uow.registry.load_tariffs()
                charge = preliminary_charge(lines(decided), tariffs, owner.debt, first.taken_on)
                text = replies.review_approved(first.account, lines(decided), charge)
            else:
                text = replies.review_rejected(first.account, reason or "")
            kind = "review_approved" if approve else "review_rejected"
            told = Outbound(first.channel, first.sender, text, kind, message_id)
            return decided, uow.outbound.queue(told, now)

        decided, queued = await self._db.run(decide)
        if not decided:
            return Decided()
        first = decided[0]
        result = Decided(decided, *await self._tell(first, queued))
        log.info(
            "review_decided",
            message_id=message_id,
            account=first.account,
            approved=approve,
            readings=len(decided),
            notice=result.notice.value,
        )
        return result

    async def _tell(self, first: StoredReading, queued: int | None) -> tuple[Notice, str]:
        """Send the queued notice now; whether the customer is (or will be) told."""
        if queued is None:
            why = "no sender address" if not first.sender else f"{first.channel} cannot send"
            return Notice.NOT_TOLD, why
        sent = (await self._outbound.send_now([queued])).get(queued)
        if sent is None:  # another sender holds it
            return Notice.QUEUED, first.channel
        if sent.verdict is SendVerdict.SENT:
            return Notice.TOLD, first.channel
        if sent.verdict is SendVerdict.RETRY:
            return Notice.QUEUED, f"{first.channel}: {sent.detail}"
        return Notice.FAILED, f"{first.channel}: {sent.detail}"


def lines(readings: list[StoredReading]) -> tuple[ReadingLine, ...]:
    return tuple(
        ReadingLine(r.meter, r.service, r.zone, r.value, r.previous, r.consumption)
        for r in readings
    )
