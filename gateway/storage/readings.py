"""Readings, with the outbox rows billing receives written in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from gateway.domain.errors import AccountNeeded
from gateway.domain.store import NewReading, StoredReading, Taken
from gateway.storage import tables as t
from gateway.storage.prepared import OneOf, Prepared, insert_into

_m, _r, _reg = t.messages.c, t.readings.c, t.registers.c
# The readings of a period a newer one supersedes.
_IN_FORCE = Prepared(
    select(_r.id, _r.register_id, _r.status).where(
        OneOf(_r.register_id, "registers"),
        _r.period == bindparam("period"),
        OneOf(_r.status, "statuses"),
    )
)
_REPLACE = Prepared(t.readings.update().where(OneOf(_r.id, "ids")).values(status="replaced"))
_APPROVE = (
    t.readings.update()
    .where(_r.id == bindparam("reading_id"))
    .values(status="accepted", replaces_id=bindparam("replaces"), review_note=bindparam("note"))
)
_STORED = (
    select(
        _r.id,
        _r.message_id,
        _r.register_id,
        _r.value,
        _r.previous,
        _r.consumption,
        _r.days,
        _r.taken_at,
        _r.taken_on,
        _r.period,
        _reg.account,
        _reg.meter,
        _reg.service,
        _reg.zone,
        _m.channel,
        _m.sender,
        _r.status,
    )
    .join(t.registers, _reg.id == _r.register_id)
    .join(t.messages, _m.id == _r.message_id)
)
# The statements every accepted message runs (see gateway.storage.prepared).
_INSERT_READINGS = insert_into(t.readings, leaving_out=["review_note"])
_INSERT_OUTBOX = insert_into(
    t.outbox, leaving_out=["next_attempt_at", "lease_until", "delivered_at", "last_error"]
)


def _outbox_payload(
    reading_id: int,
    replaces: int | None,
    *,
    period: str,
    account: str,
    meter: str,
    service: str,
    zone: str,
    value: Decimal,
    previous: Decimal | None,
    consumption: Decimal,
    taken_at: datetime,
) -> dict[str, Any]:
    """What billing receives for a reading (documented in the README). A correction names
    the reading billing was sent for the same register and period."""
    return {
        "reading_id": reading_id,
        "kind": "correction" if replaces is not None else "reading",
        "replaces": (
            None
            if replaces is None
            else {"reading_id": replaces, "idempotency_key": idempotency_key(replaces)}
        ),
        "period": period,
        "account": account,
        "meter": meter,
        "service": service,
        "zone": zone,
        "value": format(value, "f"),
        "previous": None if previous is None else format(previous, "f"),
        "consumption": format(consumption, "f"),
        "taken_at": taken_at.isoformat(),
    }


def idempotency_key(reading_id: int) -> str:
    """Billing's key for a reading: derived from it, so a repeat carries the same key."""
    return f"reading-{reading_id}"


def _stored_reading(row: Any) -> StoredReading:
    return StoredReading(
        row.id,
        row.message_id,
        row.account,
        row.meter,
        row.service,
        row.zone,
        row.value,
        row.previous,
        row.consumption,
        row.days,
        row.taken_at,
        row.taken_on,
        row.period,
        row.channel,
        row.sender,
        row.status,
    )


class SqlReadings:
    """Readings, and billing's outbox rows written with them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(
        self,
        message_id: int,
        items: Sequence[NewReading],
        taken_at: datetime,
        taken_on: date,
        period: str,
        *,
        held: bool = False,
    ) -> list[int]:
        """Store readings. An accepted reading supersedes whatever its register already has
        for the period (billing gets it as a correction of the accepted one) and gets its
        outbox row in the same transaction. A held reading supersedes only an earlier held
        one: the accepted reading stays in force until an operator approves."""
        taken = [Taken(message_id, taken_at, item) for item in items]
        return self.add_many(taken, taken_on, period, held=held)

    def add_many(
        self, taken: Sequence[Taken], taken_on: date, period: str, *, held: bool = False
    ) -> list[int]:
        """:meth:`add` for the readings of several messages (concurrent messages decided
        together): one statement of each kind for them all. At most one per register."""
        if not taken:
            return []
        corrected = [t.reading.register.id for t in taken if t.reading.register.current is not None]
        statuses = ("held",) if held else ("accepted", "held")
        replaced = self._supersede(corrected, period, statuses)
        rows = [
            {
                "register_id": t.reading.register.id,
                "message_id": t.message_id,
                "value": t.reading.value,
                "previous": t.reading.previous,
                "consumption": t.reading.consumption,
                "taken_at": t.taken_at,
                "taken_on": taken_on,
                "days": t.reading.days,
                "period": period,
                "status": "held" if held else "accepted",
                "replaces_id": replaced.get(t.reading.register.id),
            }
            for t in taken
        ]
        ids = _INSERT_READINGS.insert_each(self.conn, rows)
        if not held:
            payloads = []
            for reading_id, one in zip(ids, taken, strict=True):
                register = one.reading.register
                payload = _outbox_payload(
                    reading_id,
                    replaced.get(register.id),
                    period=period,
                    account=register.account,
                    meter=register.meter,
                    service=register.service.value,
                    zone=register.zone.value,
                    value=one.reading.value,
                    previous=one.reading.previous,
                    consumption=one.reading.consumption,
                    taken_at=one.taken_at,
                )
                payloads.append((register.id, payload))
            self._enqueue(payloads, [one.taken_at for one in taken])
        return ids

    def _supersede(
        self, register_ids: Sequence[int], period: str, statuses: Sequence[str]
    ) -> dict[int, int]:
        """Mark the readings of ``period`` in one of ``statuses`` replaced; return, per
        register, the accepted one among them: the reading billing was sent."""
        if not register_ids:
            return {}
        params = {"registers": list(register_ids), "period": period, "statuses": list(statuses)}
        rows = _IN_FORCE.all(self.conn, params)
        if rows:
            _REPLACE.execute(self.conn, {"ids": [row.id for row in rows]})
        return {row.register_id: row.id for row in rows if row.status == "accepted"}

    def _enqueue(
        self,
        payloads: Sequence[tuple[int, dict[str, Any]]],
        created: datetime | Sequence[datetime],
    ) -> None:
        """One outbox row per (register id, payload), keyed by the reading (never random),
        created at ``created`` (one time for all, or one per payload)."""
        times = [created] * len(payloads) if isinstance(created, datetime) else created
        _INSERT_OUTBOX.execute_many(
            self.conn,
            [
                {
                    "reading_id": payload["reading_id"],
                    "register_id": register_id,
                    "idempotency_key": idempotency_key(payload["reading_id"]),
                    "payload": t.json_text(payload),
                    "status": "pending",
                    "attempts": 0,
                    "created_at": at,
                }
                for (register_id, payload), at in zip(payloads, times, strict=True)
            ],
        )

    def held(self) -> list[StoredReading]:
        """Readings held for an operator, oldest first."""
        rows = self.conn.execute(_STORED.where(_r.status == "held").order_by(_r.message_id, _r.id))
        return [_stored_reading(row) for row in rows]

    def decide(
        self,
        message_id: int,
        *,
        approve: bool,
        note: str | None,
        now: datetime,
        account: str | None = None,
    ) -> list[StoredReading]:
        """Approve or decline the held readings of one message for one account (a list
        may hold several accounts' lines; ``account`` may be left out when it holds one);
        returns them, or an empty list when nothing of it is held any more. Approved
        readings supersede the accepted ones of their period (a held reading is always its
        register's newest) and are queued for billing; declined ones leave the accepted
        ones in force. Raises :class:`AccountNeeded` when the message holds several
        accounts and none is named."""
        held = _STORED.where(_r.status == "held", _r.message_id == message_id)
        if account is not None:
            held = held.where(_reg.account == account)
        rows = self.conn.execute(held.order_by(_r.id)).all()
        if not rows:
            return []
        accounts = sorted({row.account for row in rows})
        if len(accounts) > 1:
            raise AccountNeeded(message_id, tuple(accounts))
        if not approve:
            ids = [row.id for row in rows]
            self.conn.execute(
                t.readings.update()
                .where(_r.id.in_(ids))
                .values(status="declined", review_note=note)
            )
            return [_stored_reading(row) for row in rows]
        replaced = self._supersede([row.register_id for row in rows], rows[0].period, ["accepted"])
        self.conn.execute(
            _APPROVE,
            [
                {"reading_id": row.id, "replaces": replaced.get(row.register_id), "note": note}
                for row in rows
            ],
        )
        self._enqueue(
            [
                (
                    row.register_id,
                    _outbox_payload(
                        row.id,
                        replaced.get(row.register_id),
                        period=row.period,
                        account=row.account,
                        meter=row.meter,
                        service=row.service,
                        zone=row.zone,
                        value=row.value,
                        previous=row.previous,
                        consumption=row.consumption,
                        taken_at=row.taken_at,
                    ),
                )
                for row in rows
            ],
            now,
        )
        return [_stored_reading(row) for row in rows]

    def history(self, account: str) -> list[StoredReading]:
        """Every reading received for the account, oldest first, whatever its status."""
        rows = self.conn.execute(_STORED.where(_reg.account == account).order_by(_r.id))
        return [_stored_reading(row) for row in rows]

    # ----- registry writes ----------------------------------------------------------------
