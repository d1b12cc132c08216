"""The engine, the unit of work and every query the gateway runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    create_engine,
    event,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import greenlet_spawn

from gateway.coalesce import Coalescer
from gateway.domain.errors import SchemaMismatch, StorageUnavailable
from gateway.storage import schema
from gateway.storage.chats import SqlChats
from gateway.storage.messages import SqlMessages
from gateway.storage.outbound import SqlOutbound
from gateway.storage.readings import SqlReadings
from gateway.storage.registry import SqlRegistry, TariffCache

T = TypeVar("T")
Work = Callable[["UnitOfWork"], T]
# The most units of work one SQLite transaction takes (group commit).
GROUP_MAX = 64


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
        # Group commit (SQLite): units of work waiting for the writer thread.
        self._groups: Coalescer[Work[Any], Any] = Coalescer(self._write_group, GROUP_MAX)
        self._tariffs = TariffCache()
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
                if not transaction:
                    return await loop.run_in_executor(
                        self._thread, self._run_sqlite, work, transaction
                    )
                return await self._group_commit(work)
            assert self._async_engine is not None
            if not transaction:
                async with self._async_engine.connect() as conn:
                    return await conn.run_sync(lambda sync: work(UnitOfWork(sync, self._tariffs)))
            # The whole unit of work in one greenlet: the pool's connection, BEGIN, the work,
            # COMMIT and the connection's return, as AsyncEngine does them piece by piece
            # (a greenlet and an event-loop hop each): about 100 µs less a unit of work.
            engine = self._async_engine.sync_engine

            def unit() -> T:
                with engine.begin() as conn:
                    return work(UnitOfWork(conn, self._tariffs))

            return await greenlet_spawn(unit)
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

    async def _group_commit(self, work: Work[T]) -> T:
        """SQLite: units of work that arrive while the writer is busy wait, and the writer
        then runs them together in one transaction, each in a savepoint of its own: one
        BEGIN and one COMMIT for them all, one hop to the writer thread. Each gets its
        result only after that COMMIT, exactly as alone; one that raises is rolled back
        to its savepoint and gets its exception, the others are unaffected."""
        result: T = await self._groups.submit(work)
        return result

    async def _write_group(self, works: list[Work[Any]]) -> list[tuple[bool, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._run_group, works)

    def _run_group(self, works: list[Work[Any]]) -> list[tuple[bool, Any]]:
        """On the writer thread: ``works`` in one transaction, a savepoint each."""
        if len(works) == 1:  # alone: no savepoint needed
            try:
                return [(True, self._run_sqlite(works[0]))]
            except BaseException as exc:
                return [(False, exc)]
        if self._writer is None or self._writer.invalidated or self._writer.closed:
            assert self._sync_engine is not None
            self._writer = self._sync_engine.connect()
        results: list[tuple[bool, Any]] = []
        try:
            with self._writer.begin():
                # The savepoints are the driver's own statements: SQLAlchemy's nested
                # transactions cost more than the statements (see gateway.storage.prepared).
                raw = self._writer.connection.driver_connection
                assert raw is not None
                for work in works:
                    raw.execute("SAVEPOINT unit_of_work")
                    try:
                        value = work(UnitOfWork(self._writer, self._tariffs))
                    except BaseException as exc:
                        raw.execute("ROLLBACK TO unit_of_work")
                        raw.execute("RELEASE unit_of_work")
                        results.append((False, exc))
                    else:
                        raw.execute("RELEASE unit_of_work")
                        results.append((True, value))
        except BaseException as exc:  # BEGIN or COMMIT failed: none of them is stored
            self._discard_open_transaction()
            return [(False, exc)] * len(works)
        return results

    def _run_sqlite(self, work: Work[T], transaction: bool = True) -> T:
        """On the writer thread, which keeps one connection open (no pool round trip)."""
        if self._writer is None or self._writer.invalidated or self._writer.closed:
            assert self._sync_engine is not None
            self._writer = self._sync_engine.connect()
        if not transaction:
            try:
                return work(UnitOfWork(self._writer, self._tariffs))
            finally:
                if self._writer.in_transaction():
                    self._writer.rollback()
        try:
            with self._writer.begin():
                return work(UnitOfWork(self._writer, self._tariffs))
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

    async def analyze(self, table: str) -> None:
        """Refresh PostgreSQL's statistics of ``table`` after a bulk write (an import):
        until autovacuum gets to it, the planner would take a table of thousands of rows
        for an empty one and scan it whole for every batch of accounts. SQLite's planner
        needs none (without statistics it takes an index as selective, which it is)."""
        if self._async_engine is None:
            return
        quoted = self._async_engine.dialect.identifier_preparer.quote(table)
        await self.run(lambda uow: uow.conn.exec_driver_sql(f"ANALYZE {quoted}"))

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
    """One transaction, with a store per aggregate (see :mod:`gateway.domain.store`).
    ``tariffs``: the tariffs its database's units of work share."""

    def __init__(self, conn: Connection, tariffs: TariffCache) -> None:
        self.conn = conn
        self.messages = SqlMessages(conn)
        self.registry = SqlRegistry(conn, tariffs)
        self.readings = SqlReadings(conn)
        self.outbound = SqlOutbound(conn)
        self.chats = SqlChats(conn)
