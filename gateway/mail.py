"""The email channel's records besides lists: mail that is not read as a list (a stranger's,
an unauthenticated, automatic or oversized one) and the one report of each list.

Both are idempotent, because a mailbox may hand the same mail over again (a crash between
the commit and marking it processed, an SMTP client that missed our 250): a redelivery of
a refused mail records and answers nothing more, and a list gets one report however often
its mail arrives. An answer to a refused mail goes to one address at most once a local day
(a stranger writing every hour hears how to become an elder once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.domain.errors import AlreadyRecorded
from gateway.domain.model import InboundMessage
from gateway.domain.outcome import Outcome
from gateway.domain.store import Outbound, Store, Transactor


class MailDesk:
    """:class:`gateway.domain.ports.MailDesk` over the database."""

    def __init__(self, db: Transactor, clock: Callable[[], datetime], zone: ZoneInfo) -> None:
        self._db = db
        self._clock = clock
        self._zone = zone

    async def is_elder(self, address: str) -> bool:
        return bool(await self._db.run(lambda uow: uow.registry.elder_buildings(address)))

    async def refuse(
        self, message: InboundMessage, outcome: Outcome, answer: Outbound | None
    ) -> list[int]:
        now = self._clock()
        # One answer of a kind per address and local day: the day is part of its kind.
        day_kind = None
        if answer is not None:
            day_kind = f"{answer.kind}:{now.astimezone(self._zone).date().isoformat()}"

        def work(uow: Store) -> list[int]:
            seen = message.external_id and uow.messages.find(message.channel, message.external_id)
            if seen:  # a redelivery: recorded (and answered) already
                return []
            if answer is None or day_kind is None:
                uow.messages.record(message, outcome)
                return []
            if answer.recipient in uow.outbound.recipients(answer.channel, day_kind):
                uow.messages.record(message, replace(outcome, reply=None))  # answered today
                return []
            message_id = uow.messages.record(message, outcome)
            item = Outbound(answer.channel, answer.recipient, answer.text, day_kind, message_id)
            return [uow.outbound.queue(item, now)]

        try:
            return await self._db.run(work)
        except AlreadyRecorded:  # a concurrent delivery of the same mail recorded it
            return []

    async def report(self, item: Outbound) -> list[int]:
        assert item.message_id is not None, "a report answers a recorded list"
        message_id = item.message_id

        def work(uow: Store) -> list[int]:
            if uow.outbound.answered(message_id, item.kind):
                return []
            return [uow.outbound.queue(item, self._clock())]

        return await self._db.run(work)
