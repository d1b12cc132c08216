"""The outbox for the relay (claim, mark, status) and the embedded billing."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Select,
    and_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import FromClause

from gateway.domain.outbox import Delivery, OutboxItem, Settled, Verdict
from gateway.storage import tables as t
from gateway.storage.database import Database
from gateway.storage.gauges import QueueGauge, queue_gauge
from gateway.storage.prepared import OneOf, Prepared

_o = t.outbox.c
_earlier = t.outbox.alias("earlier")
_DUE_ROWS = (
    select(_o.id, _o.register_id, _o.idempotency_key, _o.payload, _o.attempts)
    .where(
        _o.status == "pending",
        # Written by then: rows written during a pass wait for the next one, so under
        # load a pass's claims are whole batches, not the few rows of the last moments.
        _o.created_at <= bindparam("due_by"),
        (_o.next_attempt_at.is_(None)) | (_o.next_attempt_at <= bindparam("due_by")),
        (_o.lease_until.is_(None)) | (_o.lease_until < bindparam("now")),
        # A register's rows go in id order: not while an earlier one is pending.
        ~exists().where(
            and_(
                _earlier.c.register_id == _o.register_id,
                _earlier.c.status == "pending",
                _earlier.c.id < _o.id,
            )
        ),
    )
    .order_by(_o.id)
    .limit(bindparam("limit"))
)


def _claimed(rows: Select[Any]) -> dict[str, Prepared]:
    """``rows`` as a relay claims them, by dialect: PostgreSQL's several relays each skip
    the rows another one holds."""
    return {
        "sqlite": Prepared(rows),
        "postgresql": Prepared(rows.with_for_update(skip_locked=True, of=t.outbox)),
    }


_DUE = _claimed(_DUE_ROWS)
_DUE_IDS = _claimed(_DUE_ROWS.with_only_columns(_o.id))
_LEASE = Prepared(
    t.outbox.update().where(OneOf(_o.id, "ids")).values(lease_until=bindparam("until"))
)


_SETTLE = Prepared(
    t.outbox.update()
    .where(_o.id == bindparam("row_id"))
    .values(
        status=bindparam("status"),
        attempts=bindparam("attempts"),
        next_attempt_at=bindparam("next_attempt_at"),
        delivered_at=bindparam("delivered_at"),
        # A delivered row keeps the error of its last failed attempt, for the record.
        last_error=func.coalesce(bindparam("last_error"), _o.last_error),
        lease_until=None,
    )
)


_RELEASE = (
    t.outbox.update().where(_o.id.in_(bindparam("ids", expanding=True))).values(lease_until=None)
)
# The rows of a register delivered after another (a failed row does not hold them up).
_later = t.outbox.alias("later")


@dataclass(frozen=True, slots=True)
class Retried:
    """What ``gateway outbox retry`` did."""

    ids: list[int]  # the rows re-queued, in id order
    # (re-queued row, the first later row of its register that billing has already):
    # billing gets the re-queued one after it.
    overtaken: list[tuple[int, int]]
    # Why nothing was re-queued, when one row was asked for: it does not exist, or
    # what its status is.
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    pending: int
    failed: int
    delivered: int
    oldest_pending_seconds: float | None
    failures: list[tuple[int, str, str]]  # (outbox id, idempotency key, last error)


class SqlOutboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self, now: datetime, limit: int, lease_seconds: float, *, due_by: datetime
    ) -> list[OutboxItem]:
        until = now + timedelta(seconds=lease_seconds)
        return await self._db.run(lambda uow: _claim(uow.conn, now, due_by, limit, until))

    async def settle(self, results: Sequence[Settled]) -> None:
        """One transaction: the verdicts of sent rows, and the leases of rows claimed but
        never sent given back untouched (no attempt charged, due time and error kept)."""
        rows = [
            {
                "row_id": r.item.id,
                "status": "pending" if r.verdict is Verdict.RETRY else r.verdict.value,
                "attempts": r.item.attempts + (r.verdict is not Verdict.DELIVERED),
                "next_attempt_at": r.at if r.verdict is Verdict.RETRY else None,
                "delivered_at": r.at if r.verdict is Verdict.DELIVERED else None,
                "last_error": None if r.verdict is Verdict.DELIVERED else r.detail,
            }
            for r in results
            if r.sent
        ]
        unsent = [r.item.id for r in results if not r.sent]
        if not rows and not unsent:
            return

        def work(conn: Connection) -> None:
            if rows:
                _SETTLE.execute_many(conn, rows)
            if unsent:
                conn.execute(_RELEASE, {"ids": unsent})

        await self._db.run(lambda uow: work(uow.conn))

    async def status(self, now: datetime) -> OutboxStatus:
        def read(conn: Connection) -> OutboxStatus:
            counts: dict[str, int] = {
                status: int(n)
                for status, n in conn.execute(select(_o.status, func.count()).group_by(_o.status))
            }
            oldest = conn.scalar(select(func.min(_o.created_at)).where(_o.status == "pending"))
            failures = conn.execute(
                select(_o.id, _o.idempotency_key, _o.last_error)
                .where(_o.status == "failed")
                .order_by(_o.id)
            )
            return OutboxStatus(
                pending=counts.get("pending", 0),
                failed=counts.get("failed", 0),
                delivered=counts.get("delivered", 0),
                oldest_pending_seconds=None if oldest is None else (now - oldest).total_seconds(),
                failures=[(i, k, e or "") for i, k, e in failures],
            )

        return await self._db.run(lambda uow: read(uow.conn))

    async def gauge(self, now: datetime) -> QueueGauge:
        """Pending and failed rows, and the oldest pending row's age (``/metrics``; see
        :mod:`gateway.storage.gauges`)."""
        return await self._db.run(lambda uow: queue_gauge(uow.conn, t.outbox, "pending", now))

    async def retry(self, now: datetime, row_id: int | None = None) -> Retried:
        """Queue failed rows for billing again: row ``row_id``, or every failed row. Each
        is ``pending`` and due ``now``; its attempts and last error stay, for the record.
        A row asked for that does not exist or is not failed changes nothing."""

        def work(conn: Connection) -> Retried:
            failed = _o.status == "failed"
            if row_id is not None:
                failed = failed & (_o.id == row_id)
            overtaken = [
                (int(i), int(later))
                for i, later in conn.execute(
                    select(_o.id, func.min(_later.c.id))
                    .join(
                        _later,
                        and_(
                            _later.c.register_id == _o.register_id,
                            _later.c.id > _o.id,
                            _later.c.status == "delivered",
                        ),
                    )
                    .where(failed)
                    .group_by(_o.id)
                    .order_by(_o.id)
                )
            ]
            ids = sorted(
                int(i)
                for i in conn.scalars(
                    t.outbox.update()
                    .where(failed)
                    .values(status="pending", next_attempt_at=now, lease_until=None)
                    .returning(_o.id)
                )
            )
            if row_id is not None and not ids:
                status = conn.scalar(select(_o.status).where(_o.id == row_id))
                refused = (
                    f"no outbox row {row_id}"
                    if status is None
                    else f"outbox row {row_id} is {status}, not failed"
                )
                return Retried([], [], refused)
            return Retried(ids, overtaken)

        return await self._db.run(lambda uow: work(uow.conn))


def _claim(
    conn: Connection, now: datetime, due_by: datetime, limit: int, until: datetime
) -> list[OutboxItem]:
    rows = _DUE[conn.dialect.name].all(conn, {"now": now, "due_by": due_by, "limit": limit})
    if not rows:
        return []
    _LEASE.execute(conn, {"ids": [r.id for r in rows], "until": until})
    return [
        OutboxItem(r.id, r.register_id, r.idempotency_key, json.loads(r.payload), r.attempts)
        for r in rows
    ]


class EmbeddedBilling:
    """Billing kept in the gateway's own database: a repeat of a key is 'already have it'.
    Being local, the relay gives it whole batches of due rows (``deliver_due``), each
    stored and marked delivered in the transaction that claims it; ``deliver`` stores one
    row claimed by other means, by the same statement."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def deliver(self, item: OutboxItem) -> Delivery:
        now = self._clock()
        stored = await self._db.run(lambda uow: _store_in_billing(uow.conn, [item.id], now))
        return Delivery(Verdict.DELIVERED, "stored" if stored else "already had it")

    async def deliver_due(self, now: datetime, due_by: datetime, limit: int) -> int:
        return await self._db.run(lambda uow: _deliver_due(uow.conn, now, due_by, limit))


_billing = t.billing_readings.c


def _into_billing(
    field: Callable[..., ColumnElement[Any]],
    value: ColumnElement[Any],
    chosen: ColumnElement[bool] | None = None,
    source: FromClause = t.outbox,
) -> Insert:
    """Billing's rows for the outbox rows ``chosen`` (by default those of the list
    ``ids``), but for keys billing has already; the columns in the table's order.
    ``source``: the outbox, with what ``field`` reads the payload from."""
    rows = (
        select(
            _o.idempotency_key,
            _o.reading_id,
            func.coalesce(field("kind"), "reading"),
            field("replaces", "idempotency_key"),
            field("account"),
            field("meter"),
            field("zone"),
            field("period"),
            value,
            bindparam("now", type_=_billing.received_at.type),
        )
        .select_from(source)
        .where(
            OneOf(_o.id, "ids") if chosen is None else chosen,
            ~exists().where(_billing.idempotency_key == _o.idempotency_key),
        )
        # Billing's rows in the outbox's order (a register's rows, a correction after
        # what it replaces), whatever order the plan finds them in.
        .order_by(_o.id)
    )
    columns = [c.name for c in t.billing_readings.columns if not c.primary_key]
    return insert(t.billing_readings).from_select(columns, rows)


def _sqlite_field(*path: str) -> ColumnElement[Any]:
    return func.json_extract(_o.payload, "$." + ".".join(path))


# PostgreSQL: the payload parsed once a row (OFFSET 0 keeps the planner from folding the
# subquery in, which would parse it again for every field: about 20 µs a row).
_document = (
    select(cast(_o.payload, JSONB).label("doc")).correlate(t.outbox).offset(0).lateral("document")
)


def _postgresql_field(*path: str) -> ColumnElement[Any]:
    document: Any = _document.c.doc
    for key in path[:-1]:
        document = document[key]
    text: ColumnElement[Any] = document[path[-1]].astext
    return text


# Billing's row from the outbox row's payload (what an HTTP billing would be sent), by
# dialect: a payload field as text, and the value as the column stores it.
_POSTGRESQL_VALUE = cast(_postgresql_field("value"), _billing.value.type)
_WITH_DOCUMENT = t.outbox.join(_document, true())
_INTO_BILLING = {
    "sqlite": _into_billing(_sqlite_field, _sqlite_field("value")),
    "postgresql": _into_billing(_postgresql_field, _POSTGRESQL_VALUE, source=_WITH_DOCUMENT),
}
_DELIVERED_VALUES: dict[str, Any] = {
    "status": "delivered",
    "delivered_at": bindparam("now"),
    "lease_until": None,
}
_DELIVERED = t.outbox.update().where(OneOf(_o.id, "ids")).values(**_DELIVERED_VALUES)
# PostgreSQL: a whole pass in one statement. The claimed rows are a CTE that the copy
# into billing and the UPDATE join by key: one round trip instead of three, and an index
# seek per row. Given a list of 100 ids and no statistics (a new database, until
# autovacuum's first ANALYZE), the planner reads the whole outbox for each of the copy
# and the UPDATE, and hashes the whole of billing's table for the keys it has.
_due = _DUE_IDS["postgresql"].statement.cte("due")
_DELIVER_DUE_POSTGRESQL = (
    t.outbox.update()
    .where(_o.id == _due.c.id)
    .values(**_DELIVERED_VALUES)
    .returning(_o.id)
    .add_cte(
        _into_billing(
            _postgresql_field,
            _POSTGRESQL_VALUE,
            _o.id.in_(select(_due.c.id)),
            _WITH_DOCUMENT,
        ).cte("stored")
    )
)


def _deliver_due(conn: Connection, now: datetime, due_by: datetime, limit: int) -> int:
    """Up to ``limit`` rows due by ``due_by`` claimed, stored in billing (but for keys it
    has) and marked delivered, in the caller's one transaction; how many."""
    params = {"now": now, "due_by": due_by, "limit": limit}
    if conn.dialect.name == "postgresql":
        return len(conn.execute(_DELIVER_DUE_POSTGRESQL, params).all())
    ids = [row.id for row in _DUE_IDS[conn.dialect.name].all(conn, params)]
    if ids:
        _store_in_billing(conn, ids, now)
        conn.execute(_DELIVERED, {"ids": ids, "now": now})
    return len(ids)


def _store_in_billing(conn: Connection, ids: list[int], now: datetime) -> int:
    """Billing's rows for the outbox rows ``ids`` (but for keys it has); how many new."""
    return conn.execute(_INTO_BILLING[conn.dialect.name], {"ids": ids, "now": now}).rowcount
