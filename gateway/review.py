"""Operator review of readings held as outliers: list, approve, reject; the sender is told."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from gateway.domain.ports import Notifier
from gateway.storage import Database
from gateway.storage.database import StoredReading

log = structlog.get_logger("gateway.review")


class Review:
    def __init__(self, db: Database, notify: Notifier, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._notify = notify
        self._clock = clock

    async def held(self) -> list[StoredReading]:
        return await self._db.run(lambda uow: uow.held())

    async def approve(self, message_id: int) -> list[StoredReading]:
        return await self._decide(message_id, approve=True, reason=None)

    async def reject(self, message_id: int, reason: str) -> list[StoredReading]:
        return await self._decide(message_id, approve=False, reason=reason)

    async def _decide(
        self, message_id: int, *, approve: bool, reason: str | None
    ) -> list[StoredReading]:
        now = self._clock()
        decided = await self._db.run(
            lambda uow: uow.decide(message_id, approve=approve, note=reason, now=now)
        )
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
            text = (
                f"ЛС {first.account}: показания проверены и приняты."
                if approve
                else f"ЛС {first.account}: показания не приняты. {reason}"
            )
            await self._notify(first.channel, first.sender, text[:134])
        return decided
