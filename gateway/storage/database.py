"""The engine, the unit of work and every query the gateway runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Table, and_, event, func, select, tuple_
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.domain.errors import StorageUnavailable
from gateway.domain.model import (
    Account,
    Capacity,
    PreviousReading,
    Register,
    Service,
    Tariff,
    Zone,
)
from gateway.domain.outcome import Outcome
from gateway.storage import tables as t


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    status: str
    outcome: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewReading:
    register: Register
    value: Decimal
    previous: Decimal | None
    consumption: Decimal


@dataclass(frozen=True, slots=True)
class HistoryRow:
    meter: str
    service: str
    zone: str
    value: Decimal
    previous: Decimal | None
    consumption: Decimal
    taken_at: datetime
    channel: str
    status: str


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


class Database:
    """Owns the engine. SQLite writers are serialised in-process and use
    ``BEGIN IMMEDIATE`` so concurrent processes wait on ``busy_timeout`` instead of failing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        if self.is_sqlite:
            database = make_url(url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(url)
            _sqlite_tuning(self.engine)
        else:
            self.engine = create_async_engine(url, pool_size=10, max_overflow=10)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    async def create_schema(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(t.metadata.create_all)

    async def dispose(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """One transaction: committed when the block ends, rolled back on an exception."""
        if self._write_lock is not None:
            await self._write_lock.acquire()
        try:
            async with self.engine.begin() as conn:
                yield UnitOfWork(conn)
        except (DBAPIError, OSError) as exc:
            if isinstance(exc, DBAPIError) and not exc.connection_invalidated and not _is_busy(exc):
                raise
            raise StorageUnavailable(str(exc)) from exc
        finally:
            if self._write_lock is not None:
                self._write_lock.release()


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _is_busy(exc: DBAPIError) -> bool:
    return "database is locked" in str(exc.orig)


def _sqlite_tuning(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "busy_timeout=10000",
            "foreign_keys=ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class UnitOfWork:
    """The queries of one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # ----- messages -------------------------------------------------------------------

    async def find_message(self, channel: str, external_id: str) -> StoredMessage | None:
        row = (
            await self.conn.execute(
                select(t.messages.c.id, t.messages.c.status, t.messages.c.outcome).where(
                    t.messages.c.channel == channel, t.messages.c.external_id == external_id
                )
            )
        ).first()
        if row is None:
            return None
        return StoredMessage(row.id, row.status, json.loads(row.outcome))

    async def count_recent(
        self, channel: str, sender: str, since: datetime, error_code: str | None = None
    ) -> int:
        """Messages from ``sender`` after ``since`` (with that error code, when given)."""
        query = select(func.count()).where(
            t.messages.c.channel == channel,
            t.messages.c.sender == sender,
            t.messages.c.received_at > since,
        )
        if error_code is not None:
            query = query.where(t.messages.c.error_code == error_code)
        count = await self.conn.scalar(query)
        return int(count or 0)

    async def record_message(
        self,
        *,
        channel: str,
        external_id: str | None,
        sender: str,
        text: str,
        received_at: datetime,
    ) -> int:
        result = await self.conn.execute(
            t.messages.insert().values(
                channel=channel,
                external_id=external_id,
                sender=sender,
                text=text,
                received_at=received_at,
                status="received",
                outcome="{}",
            )
        )
        return _new_id(result)

    async def set_outcome(self, message_id: int, outcome: Outcome) -> None:
        await self.conn.execute(
            t.messages.update()
            .where(t.messages.c.id == message_id)
            .values(
                status=outcome.status.value,
                error_code=outcome.error.code if outcome.error else None,
                account=outcome.account,
                reply=outcome.reply,
                outcome=json.dumps(outcome.to_json(), ensure_ascii=False),
            )
        )

    # ----- registry reads ---------------------------------------------------------------

    async def load_account(self, number: str, *, lock: bool = False) -> Account | None:
        """The account with its registers and each register's previous accepted reading.

        ``lock`` takes a row lock on the account (PostgreSQL) so concurrent messages for
        one account are validated one after the other.
        """
        query = select(t.accounts.c.account, t.accounts.c.debt).where(
            t.accounts.c.account == number
        )
        if lock:
            query = query.with_for_update()
        account = (await self.conn.execute(query)).first()
        if account is None:
            return None
        rows = (
            await self.conn.execute(select(t.registers).where(t.registers.c.account == number))
        ).all()
        latest = await self._latest_readings([r.id for r in rows])
        registers = []
        for row in rows:
            ours = latest.get(row.id)
            baseline = (
                PreviousReading(row.last_value, row.last_date or date.min)
                if row.last_value is not None
                else None
            )
            previous, is_ours = ours, ours is not None
            if baseline is not None and (ours is None or baseline.taken_on > ours.taken_on):
                previous, is_ours = baseline, False
            registers.append(
                Register(
                    id=row.id,
                    account=row.account,
                    meter=row.meter,
                    service=Service(row.service),
                    zone=Zone(row.zone),
                    capacity=Capacity.parse(row.digits),
                    verified_until=row.verified_until,
                    previous=previous,
                    previous_is_ours=is_ours,
                )
            )
        return Account(account.account, account.debt, tuple(registers))

    async def _latest_readings(self, register_ids: Sequence[int]) -> dict[int, PreviousReading]:
        if not register_ids:
            return {}
        newest = (
            select(func.max(t.readings.c.id))
            .where(t.readings.c.register_id.in_(register_ids), t.readings.c.status == "accepted")
            .group_by(t.readings.c.register_id)
        )
        rows = await self.conn.execute(
            select(
                t.readings.c.register_id,
                t.readings.c.value,
                t.readings.c.taken_on,
                t.readings.c.previous,
                t.readings.c.consumption,
            ).where(t.readings.c.id.in_(newest))
        )
        return {
            r.register_id: PreviousReading(r.value, r.taken_on, r.previous, r.consumption)
            for r in rows
        }

    async def load_tariffs(self) -> list[Tariff]:
        rows = await self.conn.execute(select(t.tariffs))
        return [Tariff(Service(r.service), Zone(r.zone), r.price, r.valid_from) for r in rows]

    # ----- readings and the outbox ------------------------------------------------------

    async def add_readings(
        self, message_id: int, items: Sequence[NewReading], taken_at: datetime, taken_on: date
    ) -> list[int]:
        """Store accepted readings and, in the same transaction, one outbox row each."""
        ids = []
        for item in items:
            result = await self.conn.execute(
                t.readings.insert().values(
                    register_id=item.register.id,
                    message_id=message_id,
                    value=item.value,
                    previous=item.previous,
                    consumption=item.consumption,
                    taken_at=taken_at,
                    taken_on=taken_on,
                    status="accepted",
                )
            )
            reading_id = _new_id(result)
            ids.append(reading_id)
            payload = {
                "reading_id": reading_id,
                "account": item.register.account,
                "meter": item.register.meter,
                "service": item.register.service.value,
                "zone": item.register.zone.value,
                "value": format(item.value, "f"),
                "previous": None if item.previous is None else format(item.previous, "f"),
                "consumption": format(item.consumption, "f"),
                "taken_at": taken_at.isoformat(),
            }
            await self.conn.execute(
                t.outbox.insert().values(
                    reading_id=reading_id,
                    idempotency_key=f"reading-{reading_id}",
                    payload=json.dumps(payload, ensure_ascii=False),
                    status="pending",
                    attempts=0,
                    created_at=taken_at,
                )
            )
        return ids

    async def history(self, account: str) -> list[HistoryRow]:
        query = (
            select(
                t.registers.c.meter,
                t.registers.c.service,
                t.registers.c.zone,
                t.readings.c.value,
                t.readings.c.previous,
                t.readings.c.consumption,
                t.readings.c.taken_at,
                t.readings.c.status,
                t.messages.c.channel,
            )
            .join(t.registers, t.readings.c.register_id == t.registers.c.id)
            .join(t.messages, t.readings.c.message_id == t.messages.c.id)
            .where(t.registers.c.account == account)
            .order_by(t.readings.c.id)
        )
        return [
            HistoryRow(
                r.meter,
                r.service,
                r.zone,
                r.value,
                r.previous,
                r.consumption,
                r.taken_at,
                r.channel,
                r.status,
            )
            for r in await self.conn.execute(query)
        ]

    async def outbox_counts(self) -> dict[str, int]:
        rows = await self.conn.execute(
            select(t.outbox.c.status, func.count()).group_by(t.outbox.c.status)
        )
        return {r[0]: int(r[1]) for r in rows}

    # ----- registry writes ----------------------------------------------------------------

    async def upsert(
        self, table: Table, key: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> UpsertCounts:
        """Insert new rows, update changed ones, leave equal ones alone; by natural ``key``."""
        if not rows:
            return UpsertCounts()
        cols = [table.c[k] for k in key]
        keys = [tuple(row[k] for k in key) for row in rows]
        condition = tuple_(*cols).in_(keys) if len(cols) > 1 else cols[0].in_([k[0] for k in keys])
        value_cols = list(rows[0].keys())
        existing = {
            tuple(r._mapping[k] for k in key): r._mapping
            for r in await self.conn.execute(
                select(*[table.c[c] for c in value_cols]).where(condition)
            )
        }
        inserts, updates, unchanged = [], [], 0
        for row_key, row in zip(keys, rows, strict=True):
            current = existing.get(row_key)
            if current is None:
                inserts.append(dict(row))
            elif any(current[c] != row[c] for c in value_cols):
                updates.append((row_key, row))
            else:
                unchanged += 1
        if inserts:
            await self.conn.execute(table.insert(), inserts)
        for row_key, row in updates:
            await self.conn.execute(
                table.update()
                .where(and_(*(col == v for col, v in zip(cols, row_key, strict=True))))
                .values({c: row[c] for c in value_cols if c not in key})
            )
        return UpsertCounts(len(inserts), len(updates), unchanged)

    async def existing_accounts(self, numbers: Iterable[str]) -> set[str]:
        wanted = list(set(numbers))
        if not wanted:
            return set()
        rows = await self.conn.execute(
            select(t.accounts.c.account).where(t.accounts.c.account.in_(wanted))
        )
        return {r[0] for r in rows}
