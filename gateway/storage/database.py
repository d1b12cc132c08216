"""The engine, the unit of work and every query the gateway runs."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    select,
    tuple_,
)
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.domain.errors import AccountNeeded, SchemaMismatch, StorageUnavailable
from gateway.domain.model import (
    Account,
    Capacity,
    InboundMessage,
    PreviousReading,
    Register,
    Service,
    Tariff,
    Zone,
)
from gateway.domain.outcome import Outcome
from gateway.storage import schema
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
    # Days since the previous reading (None for a first reading).
    days: int | None = None


@dataclass(frozen=True, slots=True)
class StoredReading:
    reading_id: int
    message_id: int
    account: str
    meter: str
    service: str
    zone: str
    value: Decimal
    previous: Decimal | None
    consumption: Decimal
    days: int | None
    taken_at: datetime
    taken_on: date  # the local date: the tariff date
    period: str
    channel: str
    sender: str
    status: str


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


T = TypeVar("T")
Work = Callable[["UnitOfWork"], T]


# The statements of the intake's hot path, built once: constructing a SQLAlchemy
# statement per call cost more than SQLite executing it.
_m, _r, _reg = t.messages.c, t.readings.c, t.registers.c
_INSERT_MESSAGE = t.messages.insert()
_FIND_MESSAGE = select(_m.id, _m.status, _m.outcome).where(
    _m.channel == bindparam("channel"), _m.external_id == bindparam("external_id")
)
_COUNT_RECENT = select(func.count()).where(
    _m.channel == bindparam("channel"),
    _m.sender == bindparam("sender"),
    _m.received_at > bindparam("since"),
)
_COUNT_RECENT_WITH_CODE = _COUNT_RECENT.where(_m.error_code == bindparam("error_code"))
# Each register with (a) the last accepted reading of an earlier period and (b) the
# reading already stored for the current period; each an index seek on (register_id, id).
_e1, _e2 = t.readings.alias("e1"), t.readings.alias("e2")
_prev, _cur = t.readings.alias("prev"), t.readings.alias("cur")
_previous_id = (
    select(func.max(_e1.c.id))
    .where(
        _e1.c.register_id == _reg.id,
        _e1.c.status == "accepted",
        _e1.c.period < bindparam("period"),
    )
    .correlate(t.registers)
    .scalar_subquery()
)
_current_id = (
    select(func.max(_e2.c.id))
    .where(
        _e2.c.register_id == _reg.id,
        _e2.c.status.in_(("accepted", "held")),
        _e2.c.period == bindparam("period"),
    )
    .correlate(t.registers)
    .scalar_subquery()
)
_ACCOUNT_WITH_REGISTERS = (
    select(
        t.accounts.c.account.label("number"),
        t.accounts.c.debt,
        t.accounts.c.residents,
        t.accounts.c.building,
        t.accounts.c.phone,
        _reg.id,
        _reg.meter,
        _reg.service,
        _reg.zone,
        _reg.digits,
        _reg.verified_until,
        _reg.last_value,
        _reg.last_date,
        _prev.c.id.label("prev_id"),
        _prev.c.value.label("prev_value"),
        _prev.c.taken_on.label("prev_on"),
        _prev.c.previous.label("prev_previous"),
        _prev.c.consumption.label("prev_consumption"),
        _cur.c.id.label("cur_id"),
        _cur.c.value.label("cur_value"),
        _cur.c.taken_on.label("cur_on"),
        _cur.c.previous.label("cur_previous"),
        _cur.c.consumption.label("cur_consumption"),
        _cur.c.status.label("cur_status"),
    )
    .outerjoin(t.registers, _reg.account == t.accounts.c.account)
    .outerjoin(_prev, _prev.c.id == _previous_id)
    .outerjoin(_cur, _cur.c.id == _current_id)
    .where(t.accounts.c.account == bindparam("account"))
)
_HISTORY = select(_r.register_id, _r.consumption, _r.days).where(
    _r.register_id.in_(bindparam("ids", expanding=True)),
    _r.status == "accepted",
    _r.period < bindparam("period"),
    _r.days > 0,
)
# The readings of a period a newer one supersedes.
_IN_FORCE = select(_r.id, _r.register_id, _r.status).where(
    _r.register_id.in_(bindparam("registers", expanding=True)),
    _r.period == bindparam("period"),
    _r.status.in_(bindparam("statuses", expanding=True)),
)
_REPLACE = (
    t.readings.update().where(_r.id.in_(bindparam("ids", expanding=True))).values(status="replaced")
)
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
# Any period sorts before this one: "the latest accepted reading of all".
LATEST = "9999-12"
# A statement of its own: in READ COMMITTED a locking read that had to wait re-checks
# only the locked row, so the account's readings are read after it, with a fresh snapshot.
_LOCK_ACCOUNT = (
    select(t.accounts.c.account)
    .where(t.accounts.c.account == bindparam("account"))
    .with_for_update()
)
_TARIFFS = select(
    t.tariffs.c.service,
    t.tariffs.c.zone,
    t.tariffs.c.price,
    t.tariffs.c.valid_from,
    t.tariffs.c.normative,
)
_ACCOUNTS_BY_PHONE = (
    select(t.accounts.c.account)
    .where(t.accounts.c.phone == bindparam("phone"), t.accounts.c.phone != "")
    .order_by(t.accounts.c.account)
)
_ELDER_BUILDINGS = select(t.elders.c.building).where(t.elders.c.email == bindparam("email"))
_LOCK_SENDER = select(func.pg_advisory_xact_lock(bindparam("key")))
_INSERT_READINGS = t.readings.insert().returning(_r.id, sort_by_parameter_order=True)
_INSERT_OUTBOX = t.outbox.insert()


class Database:
    """Owns the engine and runs units of work: each one a transaction, written as plain
    synchronous SQLAlchemy code so both back ends share every query.

    - SQLite: a synchronous engine driven by one dedicated thread. A whole unit of work is
      one hop to that thread (not one per statement), and the single thread is the
      writer lock; ``BEGIN IMMEDIATE`` and ``busy_timeout`` make other processes wait.
    - PostgreSQL: the asyncpg engine; the unit of work runs through ``run_sync`` on the
      event loop, and concurrent work on one account is ordered by row locks.
    """

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        """``timeout`` bounds each wait on the database, in seconds: connecting, a pool
        connection, a statement (PostgreSQL), a lock held by another process (SQLite)."""
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._sync_engine: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._writer: Connection | None = None
        if self.is_sqlite:
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            # Bound parameters are never part of an error's text: they are what senders
            # wrote, and errors reach logs.
            self._sync_engine = create_engine(
                parsed.set(drivername="sqlite+pysqlite"), hide_parameters=True
            )
            _sqlite_tuning(self._sync_engine, timeout)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        else:
            self._async_engine = create_async_engine(
                url,
                pool_size=10,
                max_overflow=10,
                pool_timeout=timeout,
                hide_parameters=True,
                connect_args={
                    "timeout": timeout,
                    "command_timeout": timeout,
                    "server_settings": {"statement_timeout": str(int(timeout * 1000))},
                },
            )

    async def run(self, work: Work[T], *, transaction: bool = True) -> T:
        """Run ``work`` in one transaction: committed when it returns, rolled back if it
        raises. Database outages surface as :class:`StorageUnavailable` (retryable).

        ``transaction=False`` hands ``work`` an idle connection whose transactions it
        manages itself (a schema upgrade: on SQLite it must act before ``BEGIN``)."""
        try:
            if self._thread is not None:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._thread, self._run_sqlite, work, transaction)
            assert self._async_engine is not None
            if not transaction:
                async with self._async_engine.connect() as conn:
                    return await conn.run_sync(lambda sync: work(UnitOfWork(sync)))
            async with self._async_engine.begin() as conn:
                return await conn.run_sync(lambda sync: work(UnitOfWork(sync)))
        except (DBAPIError, OSError, PoolTimeout) as exc:
            if isinstance(exc, DBAPIError) and not _is_outage(exc):
                raise
            raise StorageUnavailable(_reason(exc)) from exc

    async def ping(self) -> bool:
        """Whether the database answers a trivial query now (the readiness check)."""
        try:
            await self.run(lambda uow: uow.conn.exec_driver_sql("SELECT 1").scalar())
        except StorageUnavailable:
            return False
        return True

    def _run_sqlite(self, work: Work[T], transaction: bool = True) -> T:
        """On the writer thread, which keeps one connection open (no pool round trip)."""
        if self._writer is None or self._writer.invalidated or self._writer.closed:
            assert self._sync_engine is not None
            self._writer = self._sync_engine.connect()
        if not transaction:
            try:
                return work(UnitOfWork(self._writer))
            finally:
                if self._writer.in_transaction():
                    self._writer.rollback()
        try:
            with self._writer.begin():
                return work(UnitOfWork(self._writer))
        except BaseException:
            self._discard_open_transaction()
            raise

    def _discard_open_transaction(self) -> None:
        """After a failed unit of work: when SQLite still holds its transaction (a COMMIT
        that failed, e.g. on a deferred constraint or a full disk, leaves it open), the
        connection is dropped, which rolls it back; the next unit of work opens a new one.
        Otherwise every later BEGIN would fail."""
        writer = self._writer
        if writer is None or writer.invalidated or writer.closed:
            return
        raw = writer.connection.dbapi_connection
        if raw is not None and getattr(raw, "in_transaction", False):
            writer.invalidate()

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        assert self._sync_engine is not None
        self._sync_engine.dispose()

    async def schema_state(self) -> schema.SchemaState:
        """Which revision the database is at, against the one this gateway needs."""
        return await self.run(lambda uow: schema.state(uow.conn))

    async def check_schema(self) -> None:
        """Refuse a database that is not at the newest revision (empty, made by gateway
        0.1.0, behind, upgraded by a newer gateway, or not the gateway's), saying what to
        do: every command but ``gateway db upgrade`` and ``gateway db current`` runs this."""
        found = await self.schema_state()
        if not found.up_to_date:
            raise SchemaMismatch(f"database {self.safe_url}: {found.describe()}")

    async def upgrade_schema(self, target: str = "head") -> schema.Upgraded:
        """``gateway db upgrade``: create the schema, stamp a gateway 0.1.0 database, run
        the revisions it lacks; one transaction (see :func:`schema.upgrade`)."""
        try:
            return await self.run(lambda uow: schema.upgrade(uow.conn, target), transaction=False)
        except SchemaMismatch as exc:
            raise SchemaMismatch(f"database {self.safe_url}: {exc}") from exc

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    async def dispose(self) -> None:
        if self._thread is not None:
            assert self._sync_engine is not None
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_writer)
            self._thread.shutdown(wait=True)
        if self._async_engine is not None:
            await self._async_engine.dispose()


def _outbox_payload(
    reading_id: int, reading: Mapping[Any, Any], replaces: int | None
) -> dict[str, Any]:
    """What billing receives for a reading (documented in the README), from its row with
    the register's columns. A correction names the reading billing was sent for the same
    register and period."""
    previous = reading["previous"]
    return {
        "reading_id": reading_id,
        "register_id": reading["register_id"],
        "kind": "correction" if replaces is not None else "reading",
        "replaces": (
            None
            if replaces is None
            else {"reading_id": replaces, "idempotency_key": idempotency_key(replaces)}
        ),
        "period": reading["period"],
        "account": reading["account"],
        "meter": reading["meter"],
        "service": reading["service"],
        "zone": reading["zone"],
        "value": format(reading["value"], "f"),
        "previous": None if previous is None else format(previous, "f"),
        "consumption": format(reading["consumption"], "f"),
        "taken_at": reading["taken_at"].isoformat(),
    }


def _register_columns(register: Register) -> dict[str, str]:
    return {
        "account": register.account,
        "meter": register.meter,
        "service": register.service.value,
        "zone": register.zone.value,
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


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


# SQLite's errors that are about the database file, not the statement: it is locked by
# another process, or cannot be opened, read or written now.
_SQLITE_OUTAGES = (
    "database is locked",
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
    "readonly database",
)
# PostgreSQL's SQLSTATE classes of an outage: connection exceptions, insufficient
# resources, operator intervention (shutdown, statement timeout), system errors.
_PG_OUTAGE_CLASSES = ("08", "53", "57", "58")


def _is_outage(exc: DBAPIError) -> bool:
    """Whether trying again later can help: the database was unreachable, busy or timed
    out, as opposed to a statement it refused."""
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    sqlstate = _sqlstate(exc)
    if sqlstate is not None:
        return sqlstate[:2] in _PG_OUTAGE_CLASSES
    if isinstance(orig, OSError | TimeoutError):
        return True
    message = str(orig).lower()
    return any(part in message for part in _SQLITE_OUTAGES)


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def _reason(exc: Exception) -> str:
    """A short description of an outage for logs: the error's class and SQLSTATE, never
    its statement or parameters."""
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        name = type(orig).__name__ if orig is not None else type(exc).__name__
        sqlstate = _sqlstate(exc)
        return f"{name} ({sqlstate})" if sqlstate else name
    return type(exc).__name__


def fit(value: str, length: int | None) -> str:
    """``value`` cut to ``length`` characters when longer, ending in ``…`` and a digest
    of the whole, so two different long values stay different and one long value is
    always cut the same way (it is a key: a sender, an external id)."""
    if length is None or len(value) <= length:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return value[: length - len(digest) - 1] + "…" + digest


def _column_length(column: Any) -> int | None:
    length = getattr(column.type, "length", None)
    return length if isinstance(length, int) else None


_SENDER_LENGTH = _column_length(_m.sender)
_EXTERNAL_ID_LENGTH = _column_length(_m.external_id)
_ACCOUNT_LENGTH = _column_length(_m.account)


def _sqlite_tuning(engine: Engine, timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            f"busy_timeout={int(timeout * 1000)}",
            "foreign_keys=ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class UnitOfWork:
    """The queries of one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._tariffs: list[Tariff] | None = None

    # ----- messages -------------------------------------------------------------------

    def find_message(self, channel: str, external_id: str) -> StoredMessage | None:
        params = {"channel": channel, "external_id": fit(external_id, _EXTERNAL_ID_LENGTH)}
        row = self.conn.execute(_FIND_MESSAGE, params).first()
        if row is None:
            return None
        return StoredMessage(row.id, row.status, json.loads(row.outcome))

    def count_recent(
        self, channel: str, sender: str, since: datetime, error_code: str | None = None
    ) -> int:
        """Messages from ``sender`` after ``since`` (with that error code, when given)."""
        params = {"channel": channel, "sender": fit(sender, _SENDER_LENGTH), "since": since}
        if error_code is None:
            return int(self.conn.scalar(_COUNT_RECENT, params) or 0)
        params["error_code"] = error_code
        return int(self.conn.scalar(_COUNT_RECENT_WITH_CODE, params) or 0)

    def lock_sender(self, channel: str, sender: str) -> None:
        """Serialise this transaction with others for the same sender until it ends, so a
        count of the sender's recent messages cannot miss one committed meanwhile
        (PostgreSQL: a transaction-scoped advisory lock; SQLite has one writer already)."""
        if self.conn.dialect.name == "sqlite":
            return
        digest = hashlib.sha256(f"{channel}\0{sender}".encode("utf-8", "surrogatepass")).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        self.conn.execute(_LOCK_SENDER, {"key": key})

    def record_message(self, message: InboundMessage, outcome: Outcome) -> int:
        """The audit row: the message as received and what became of it. A sender, id or
        account longer than its column is stored cut (see :func:`fit`); the outcome
        object keeps it whole."""
        result = self.conn.execute(
            _INSERT_MESSAGE,
            {
                "channel": message.channel,
                "external_id": (
                    None
                    if message.external_id is None
                    else fit(message.external_id, _EXTERNAL_ID_LENGTH)
                ),
                "sender": fit(message.sender, _SENDER_LENGTH),
                "text": message.text,
                "received_at": message.received_at,
                "status": outcome.status.value,
                "error_code": outcome.error.code if outcome.error else None,
                "account": None
                if outcome.account is None
                else fit(outcome.account, _ACCOUNT_LENGTH),
                "reply": outcome.reply,
                "outcome": json.dumps(outcome.to_json(), ensure_ascii=False),
            },
        )
        return _new_id(result)

    def update_outcome(self, message_id: int, outcome: Outcome) -> None:
        """Replace a recorded outcome (billing's own charge arrived after the commit)."""
        self.conn.execute(
            t.messages.update()
            .where(_m.id == message_id)
            .values(
                reply=outcome.reply,
                outcome=json.dumps(outcome.to_json(), ensure_ascii=False),
            )
        )

    # ----- registry reads ---------------------------------------------------------------

    def load_account(
        self, number: str, period: str = LATEST, *, lock: bool = False
    ) -> Account | None:
        """The account with its registers: for each, the last accepted reading of a period
        before ``period`` (or the registry's newer baseline) and the reading already stored
        for ``period``. Without a period: the latest accepted reading of all.

        ``lock`` takes a row lock on the account (PostgreSQL) so concurrent messages for
        one account are validated one after the other.
        """
        if lock and self.conn.dialect.name != "sqlite":  # SQLite: one writer thread already
            self.conn.execute(_LOCK_ACCOUNT, {"account": number})
        params = {"account": number, "period": period}
        rows = self.conn.execute(_ACCOUNT_WITH_REGISTERS, params).all()
        if not rows:
            return None
        registers = []
        for row in rows:
            if row.id is None:  # an account without meters
                continue
            ours = (
                PreviousReading(
                    row.prev_value,
                    row.prev_on,
                    row.prev_previous,
                    row.prev_consumption,
                    row.prev_id,
                )
                if row.prev_id is not None
                else None
            )
            baseline = (
                PreviousReading(row.last_value, row.last_date or date.min)
                if row.last_value is not None
                else None
            )
            previous, is_ours = ours, ours is not None
            if baseline is not None and (ours is None or baseline.taken_on > ours.taken_on):
                previous, is_ours = baseline, False
            current = (
                PreviousReading(
                    row.cur_value,
                    row.cur_on,
                    row.cur_previous,
                    row.cur_consumption,
                    row.cur_id,
                    held=row.cur_status == "held",
                )
                if row.cur_id is not None
                else None
            )
            registers.append(
                Register(
                    id=row.id,
                    account=row.number,
                    meter=row.meter,
                    service=Service(row.service),
                    zone=Zone(row.zone),
                    capacity=Capacity.parse(row.digits),
                    verified_until=row.verified_until,
                    previous=previous,
                    previous_is_ours=is_ours,
                    current=current,
                )
            )
        first = rows[0]
        return Account(
            first.number,
            first.debt,
            tuple(registers),
            first.residents,
            building=first.building,
            phone=first.phone,
        )

    def accounts_by_phone(self, phone: str) -> list[str]:
        """The accounts whose registry phone is ``phone`` (E.164), in number order."""
        return list(self.conn.scalars(_ACCOUNTS_BY_PHONE, {"phone": phone}))

    def elder_buildings(self, email: str) -> frozenset[str]:
        """The buildings assigned to the elder with this email address."""
        return frozenset(self.conn.scalars(_ELDER_BUILDINGS, {"email": email.lower()}))

    def history_totals(
        self, register_ids: Sequence[int], period: str
    ) -> dict[int, tuple[Decimal, int]]:
        """Per register: accepted consumption and the days it covered, before ``period``."""
        totals: dict[int, tuple[Decimal, int]] = {}
        params = {"ids": list(register_ids), "period": period}
        for row in self.conn.execute(_HISTORY, params):
            consumption, days = totals.get(row.register_id, (Decimal(0), 0))
            totals[row.register_id] = (consumption + row.consumption, days + row.days)
        return totals

    def load_tariffs(self) -> list[Tariff]:
        """Every tariff, read once per unit of work (a list charges many lines)."""
        if self._tariffs is None:
            self._tariffs = [
                Tariff(Service(r.service), Zone(r.zone), r.price, r.valid_from, r.normative)
                for r in self.conn.execute(_TARIFFS)
            ]
        return list(self._tariffs)

    # ----- readings and the outbox ------------------------------------------------------

    def add_readings(
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
        if not items:
            return []
        corrected = [item.register.id for item in items if item.register.current is not None]
        statuses = ("held",) if held else ("accepted", "held")
        replaced = self._supersede(corrected, period, statuses)
        rows = [
            {
                "register_id": item.register.id,
                "message_id": message_id,
                "value": item.value,
                "previous": item.previous,
                "consumption": item.consumption,
                "taken_at": taken_at,
                "taken_on": taken_on,
                "days": item.days,
                "period": period,
                "status": "held" if held else "accepted",
                "replaces_id": replaced.get(item.register.id),
            }
            for item in items
        ]
        ids = [int(row[0]) for row in self.conn.execute(_INSERT_READINGS, rows)]
        if not held:
            self._enqueue(
                [
                    _outbox_payload(
                        reading_id,
                        {**row, **_register_columns(item.register)},
                        replaced.get(item.register.id),
                    )
                    for reading_id, row, item in zip(ids, rows, items, strict=True)
                ],
                taken_at,
            )
        return ids

    def _supersede(
        self, register_ids: Sequence[int], period: str, statuses: Sequence[str]
    ) -> dict[int, int]:
        """Mark the readings of ``period`` in one of ``statuses`` replaced; return, per
        register, the accepted one among them: the reading billing was sent."""
        if not register_ids:
            return {}
        params = {"registers": list(register_ids), "period": period, "statuses": list(statuses)}
        rows = self.conn.execute(_IN_FORCE, params).all()
        if rows:
            self.conn.execute(_REPLACE, {"ids": [row.id for row in rows]})
        return {row.register_id: row.id for row in rows if row.status == "accepted"}

    def _enqueue(self, payloads: Sequence[dict[str, Any]], now: datetime) -> None:
        """One outbox row per payload, keyed by the reading (never random)."""
        self.conn.execute(
            _INSERT_OUTBOX,
            [
                {
                    "reading_id": payload["reading_id"],
                    "register_id": payload["register_id"],
                    "idempotency_key": idempotency_key(payload["reading_id"]),
                    "payload": json.dumps(
                        {k: v for k, v in payload.items() if k != "register_id"},
                        ensure_ascii=False,
                    ),
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                }
                for payload in payloads
            ],
        )

    # ----- review of held readings -------------------------------------------------------

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
            [_outbox_payload(row.id, row._mapping, replaced.get(row.register_id)) for row in rows],
            now,
        )
        return [_stored_reading(row) for row in rows]

    def history(self, account: str) -> list[StoredReading]:
        """Every reading received for the account, oldest first, whatever its status."""
        rows = self.conn.execute(_STORED.where(_reg.account == account).order_by(_r.id))
        return [_stored_reading(row) for row in rows]

    # ----- registry writes ----------------------------------------------------------------

    def upsert(
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
            for r in self.conn.execute(select(*[table.c[c] for c in value_cols]).where(condition))
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
            self.conn.execute(table.insert(), inserts)
        for row_key, row in updates:
            self.conn.execute(
                table.update()
                .where(and_(*(col == v for col, v in zip(cols, row_key, strict=True))))
                .values({c: row[c] for c in value_cols if c not in key})
            )
        return UpsertCounts(len(inserts), len(updates), unchanged)

    def existing_accounts(self, numbers: Iterable[str]) -> set[str]:
        wanted = list(set(numbers))
        if not wanted:
            return set()
        rows = self.conn.execute(
            select(t.accounts.c.account).where(t.accounts.c.account.in_(wanted))
        )
        return {r[0] for r in rows}
