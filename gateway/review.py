"""Operator review of readings held as outliers: list, approve, reject; the sender is told
on their channel, with the preliminary charge when approved."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from billing_bridge.charge import preliminary_charge
from gateway import replies
from gateway.domain.outcome import Charge, ReadingLine
from gateway.domain.ports import Notifier
from gateway.storage import Database, UnitOfWork
from gateway.storage.database import StoredReading

log = structlog.get_logger("gateway.review")


class Review:
    def __init__(self, db: Database, notify: Notifier, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._notify = notify
        self._clock = clock

    async def held(self) -> list[StoredReading]:
        return await self._db.run(lambda uow: uow.held())

    async def approve(self, message_id: int, account: str | None = None) -> list[StoredReading]:
        """Approve the held readings of one submission for one account (``account`` may
        be left out when the submission holds only one's: see ``UnitOfWork.decide``)."""
        return await self._decide(message_id, approve=True, reason=None, account=account)

    async def reject(
        self, message_id: int, reason: str, account: str | None = None
    ) -> list[StoredReading]:
        return await self._decide(message_id, approve=False, reason=reason, account=account)

    async def _decide(
        self, message_id: int, *, approve: bool, reason: str | None, account: str | None
    ) -> list[StoredReading]:
        now = self._clock()

        def decide(uow: UnitOfWork) -> tuple[list[StoredReading], Charge | None]:
            decided = uow.decide(message_id, approve=approve, note=reason, now=now, account=account)
            if not decided or not approve:
                return decided, None
            # One account's readings: charged with that account's own debt.
            owner = uow.load_account(decided[0].account)
            assert owner is not None  # its readings reference it
            on = decided[0].taken_on
            return decided, preliminary_charge(lines(decided), uow.load_tariffs(), owner.debt, on)

        decided, charge = await self._db.run(decide)
        if not decided:
            return []
        first = decided[0]
        log.info(
            "review_decided",
            message_id=message_id,
            account=first.account,
            approved=approve,
            readings=len(decided),
        )
        if first.sender:
            if approve:
                assert charge is not None
                text = replies.review_approved(first.account, lines(decided), charge)
            else:
                text = replies.review_rejected(first.account, reason or "")
            await self._notify(first.channel, first.sender, text)
        return decided


def lines(readings: list[StoredReading]) -> tuple[ReadingLine, ...]:
    return tuple(
        ReadingLine(r.meter, r.service, r.zone, r.value, r.previous, r.consumption)
        for r in readings
    )
