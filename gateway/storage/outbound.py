"""The outbound queue: messages sent later than the synchronous reply, per channel."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from gateway.domain.outbound import OutboundItem, SendVerdict, SentOutcome
from gateway.domain.store import Outbound
from gateway.storage import tables as t
from gateway.storage.gauges import QueueGauge, queue_gauge
from gateway.storage.messages import column_length, fit

if TYPE_CHECKING:  # the database builds a unit of work of this module's SqlOutbound
    from gateway.storage.database import Database

_ob = t.outbound.c
# Who had messages of a kind on a channel (the reminders' check, every minute of a
# window's first day): the kind's entries of ix_outbound_kind, never the whole queue.
RECIPIENTS = select(_ob.recipient).where(
    _ob.channel == bindparam("channel"), _ob.kind == bindparam("kind")
)
# The receipt state of a delivered message (SMPP 3.4 appendix B).
DELIVERED = "DELIVRD"
_RECIPIENT_LENGTH = column_length(_ob.recipient)
_DUE = (
    select(_ob.id, _ob.channel, _ob.recipient, _ob.text, _ob.attempts, _ob.kind)
    .where(
        _ob.status == "queued",
        _ob.channel.in_(bindparam("channels", expanding=True)),
        (_ob.next_attempt_at.is_(None)) | (_ob.next_attempt_at <= bindparam("now")),
        (_ob.lease_until.is_(None)) | (_ob.lease_until < bindparam("now")),
    )
    .order_by(_ob.id)
    .limit(bindparam("limit"))
)
_SETTLE = (
    t.outbound.update()
    .where(_ob.id == bindparam("row_id"))
    .values(
        status=bindparam("status"),
        attempts=_ob.attempts + 1,
        next_attempt_at=bindparam("due"),
        sent_at=bindparam("sent_at"),
        provider_id=bindparam("provider_id"),
        last_error=func.coalesce(bindparam("error"), _ob.last_error),
        lease_until=None,
    )
)


class SqlOutbound:
    """The queue as a unit of work writes to it (with the decision it tells of)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def queue(self, item: Outbound, now: datetime) -> int:
        result = self.conn.execute(
            t.outbound.insert().returning(_ob.id),
            {
                "channel": item.channel,
                "recipient": fit(item.recipient, _RECIPIENT_LENGTH),
                "text": item.text,
                "kind": item.kind,
                "message_id": item.message_id,
                "status": "queued",
                "attempts": 0,
                "created_at": now,
            },
        )
        return int(result.scalar_one())

    def recipients(self, channel: str, kind: str) -> set[str]:
        return set(self.conn.scalars(RECIPIENTS, {"channel": channel, "kind": kind}))

    def opt_out(self, phone: str, since: datetime) -> bool:
        if self.is_opted_out(phone):
            return False
        self.conn.execute(t.opt_outs.insert(), {"phone": phone, "since": since})
        return True

    def opt_in(self, phone: str) -> bool:
        deleted = self.conn.execute(t.opt_outs.delete().where(t.opt_outs.c.phone == phone))
        return bool(deleted.rowcount)

    def is_opted_out(self, phone: str) -> bool:
        query = select(t.opt_outs.c.phone).where(t.opt_outs.c.phone == phone)
        return self.conn.scalar(query) is not None

    def answered(self, message_id: int, kind: str) -> bool:
        query = select(_ob.id).where(_ob.message_id == message_id, _ob.kind == kind).limit(1)
        return self.conn.scalar(query) is not None


@dataclass(frozen=True, slots=True)
class OutboundStatus:
    queued: int
    sent: int
    failed: int
    oldest_queued_seconds: float | None
    # (id, channel, kind, attempts, last error) of rows queued after a failed attempt or
    # failed for good: what an operator looks at.
    problems: list[tuple[int, str, str, int, str]]


class SqlOutboundQueue:
    """The queue as the senders see it: claim due rows with a lease, record attempts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self,
        channels: Collection[str],
        now: datetime,
        limit: int,
        lease_seconds: float,
        *,
        ids: Sequence[int] | None = None,
    ) -> list[OutboundItem]:
        """Lease up to ``limit`` due rows of ``channels`` (only ``ids``, when given)."""
        if not channels:
            return []
        until = now + timedelta(seconds=lease_seconds)

        def claim(conn: Connection) -> list[OutboundItem]:
            query = _DUE
            if ids is not None:
                query = query.where(_ob.id.in_(list(ids)))
            if conn.dialect.name == "postgresql":  # several senders: skip rows one holds
                query = query.with_for_update(skip_locked=True)
            params = {"channels": list(channels), "now": now, "limit": limit}
            rows = conn.execute(query, params).all()
            if rows:
                conn.execute(
                    t.outbound.update()
                    .where(_ob.id.in_([r.id for r in rows]))
                    .values(lease_until=until)
                )
            return [
                OutboundItem(r.id, r.channel, r.recipient, r.text, r.attempts, r.kind) for r in rows
            ]

        return await self._db.run(lambda uow: claim(uow.conn))

    async def settle(self, outcomes: Sequence[SentOutcome]) -> None:
        """Record the attempts, in one transaction."""
        if not outcomes:
            return
        rows = [
            {
                "row_id": o.item.id,
                "status": "queued" if o.result.verdict is SendVerdict.RETRY else o.result.verdict,
                "due": o.due,
                "sent_at": o.at if o.result.verdict is SendVerdict.SENT else None,
                "provider_id": o.result.detail[:128]
                if o.result.verdict is SendVerdict.SENT
                else None,
                "error": None if o.result.verdict is SendVerdict.SENT else o.result.detail,
            }
            for o in outcomes
        ]
        ids = [
            {"smsc_id": provider_id[:64], "outbound_id": o.item.id, "created_at": o.at}
            for o in outcomes
            if o.result.verdict is SendVerdict.SENT
            for provider_id in o.result.ids
        ]

        def settle(conn: Connection) -> None:
            conn.execute(_SETTLE, rows)
            if ids:
                conn.execute(t.smpp_submits.insert(), ids)

        await self._db.run(lambda uow: settle(uow.conn))

    async def receipt(self, provider_id: str, state: str, at: datetime) -> int | None:
        """Record a delivery receipt for the row that sent ``provider_id``; that row's id,
        or None when no row sent it. A row of several segments keeps the first failure:
        one segment delivered does not hide another lost."""

        def record(conn: Connection) -> int | None:
            row_id = conn.scalar(
                select(t.smpp_submits.c.outbound_id).where(
                    t.smpp_submits.c.smsc_id == provider_id[:64]
                )
            )
            if row_id is None:
                return None
            conn.execute(
                t.outbound.update()
                .where(
                    _ob.id == row_id,
                    _ob.receipt.is_(None) | (_ob.receipt == DELIVERED),
                )
                .values(receipt=state[:16], receipt_at=at)
            )
            return int(row_id)

        return await self._db.run(lambda uow: record(uow.conn))

    async def opted_out(self, phones: Collection[str]) -> set[str]:
        """Which of ``phones`` sent СТОП (and not СТАРТ since)."""
        if not phones:
            return set()
        query = select(t.opt_outs.c.phone).where(t.opt_outs.c.phone.in_(list(phones)))
        return await self._db.run(lambda uow: set(uow.conn.scalars(query)))

    async def gauge(self, now: datetime) -> QueueGauge:
        """Queued and failed messages, and the oldest queued one's age (``/metrics``; see
        :mod:`gateway.storage.gauges`)."""
        return await self._db.run(lambda uow: queue_gauge(uow.conn, t.outbound, "queued", now))

    async def status(self, now: datetime) -> OutboundStatus:
        def read(conn: Connection) -> OutboundStatus:
            counts = {
                status: int(n)
                for status, n in conn.execute(select(_ob.status, func.count()).group_by(_ob.status))
            }
            oldest = conn.scalar(select(func.min(_ob.created_at)).where(_ob.status == "queued"))
            problems = conn.execute(
                select(_ob.id, _ob.channel, _ob.kind, _ob.attempts, _ob.last_error)
                .where((_ob.status == "failed") | ((_ob.status == "queued") & (_ob.attempts > 0)))
                .order_by(_ob.id)
            )
            return OutboundStatus(
                queued=counts.get("queued", 0),
                sent=counts.get("sent", 0),
                failed=counts.get("failed", 0),
                oldest_queued_seconds=None if oldest is None else (now - oldest).total_seconds(),
                problems=[(i, c, k, a, e or "") for i, c, k, a, e in problems],
            )

        return await self._db.run(lambda uow: read(uow.conn))
