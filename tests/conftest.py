"""Shared fixtures: a real database per test (SQLite file, and PostgreSQL when
``GATEWAY_TEST_POSTGRES_URL`` is set), a registry written as CSV and imported the way
``gateway import`` does it, a settable clock, and a wired gateway."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from sqlalchemy import Table, select
from sqlalchemy.engine import Connection, make_url

from gateway.bootstrap import Gateway, gateway
from gateway.registry import import_file
from gateway.settings import Settings
from gateway.storage import Database, schema, tables
from tests.tls import Certificate, self_signed

POSTGRES_ENV = "GATEWAY_TEST_POSTGRES_URL"

ACCOUNTS = """account,address,building,phone,debt,receipt_code,last_bill_total
1234567890,"ул. Пушкинская, 10, кв. 1",b1,+79120000001,100.00,A1B2C3,1523.40
1234567891,"ул. Пушкинская, 10, кв. 2",b1,+79120000002,0,D4E5F6,812.15
1234567892,"ул. Пушкинская, 10, кв. 3",b1,+79120000003,-250.50,G7H8I9,640.00
0012345678,"ул. Ленина, 5, кв. 7",b2,+79120000004,0,J1K2L3,2210.90
"""
METERS = """account,meter,service,zone,digits,verified_until,last_value,last_date
1234567890,517480,electricity,day,6.1,2031-12-31,12000,2026-10-20
1234567890,517480,electricity,night,6.1,2031-12-31,6500,2026-10-20
1234567891,611002,electricity,single,5.1,2030-06-30,4521,2026-10-19
1234567892,700301,hot_water,kitchen,5.3,2029-03-31,120.5,2026-10-21
1234567892,700302,hot_water,bath,5.3,2029-03-31,98.25,2026-10-21
0012345678,812000,electricity,single,6.1,2032-01-31,999950,2026-10-18
0012345678,812001,hot_water,single,5.3,2026-11-01,310,2026-10-18
"""
TARIFFS = """service,zone,price,valid_from
electricity,single,5.82,2026-01-01
electricity,single,6.43,2026-07-01
electricity,day,6.12,2026-01-01
electricity,day,6.80,2026-07-01
electricity,night,3.10,2026-01-01
electricity,night,3.45,2026-07-01
hot_water,single,245.10,2026-07-01
"""
# 2026-11-20 12:00 Moscow time.
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def _backends() -> list[object]:
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | None]:
    """A throw-away PostgreSQL database for this test run, dropped at the end."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        yield None
        return
    import asyncpg

    url = make_url(base)
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_at_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database at the newest revision, made once a run as `gateway db upgrade`
    makes it: each test's database is a copy."""
    path = tmp_path_factory.mktemp("head") / "gateway.db"
    asyncio.run(upgrade_database(f"sqlite+aiosqlite:///{path}"))
    return path


def drop_schema(conn: Connection) -> None:
    """Every table of the gateway, the revision it was at, and its trigger's function."""
    tables.metadata.drop_all(conn)
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {schema.VERSION_TABLE}")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS gateway_tariffs_changed()")


async def empty_database(url: str) -> None:
    """Drop every table of the gateway from the database at ``url`` (a PostgreSQL test
    database is shared by the run's tests: each leaves it empty)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(drop_schema)
    finally:
        await engine.dispose()


async def upgrade_database(url: str) -> None:
    """What `gateway db upgrade` does: create the schema or bring it to the newest revision."""
    db = Database(url)
    try:
        await db.upgrade_schema()
    finally:
        await db.dispose()


@pytest.fixture(params=_backends())
def blank_database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: str | None
) -> Iterator[str]:
    """A database without tables (SQLite: a file not created yet)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
        return
    if postgres_database is None:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    yield postgres_database
    # Each test starts from an empty run's database.
    asyncio.run(empty_database(postgres_database))


@pytest.fixture
def database_url(blank_database_url: str, request: pytest.FixtureRequest) -> str:
    """A database at the newest revision, made as `gateway db upgrade` makes it. On
    SQLite a copy of one upgraded once a run (3 ms, where upgrading took 65). On
    PostgreSQL the run's database, upgraded here: a database of its own per test, made
    from a template, took longer in all (its first connections were slower than the
    upgrade saved)."""
    url = make_url(blank_database_url)
    if url.get_backend_name() != "sqlite":
        asyncio.run(upgrade_database(blank_database_url))
        return blank_database_url
    source = sqlite3.connect(request.getfixturevalue("sqlite_at_head"))
    copy = sqlite3.connect(url.database or "")
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    return blank_database_url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings.from_mapping(
        {
            "database_url": database_url,
            "twilio_auth_token": "test-auth-token",
            "public_url": "https://gateway.example.org",
        }
    )


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structlog event at any level, whatever level an earlier test configured."""
    saved = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as entries:
            yield entries
    finally:
        structlog.configure(wrapper_class=saved)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for localhost and 127.0.0.1 (tests/tls.py)."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class Registry:
    accounts: str = ACCOUNTS
    meters: str = METERS
    tariffs: str = TARIFFS


async def load_registry(gw: Gateway, folder: Path, registry: Registry | None = None) -> None:
    registry = registry or Registry()
    for kind in ("accounts", "meters", "tariffs"):
        path = folder / f"{kind}.csv"
        path.write_text(getattr(registry, kind), encoding="utf-8")
        report = await import_file(gw.db, kind, path)
        assert report.errors == []


@pytest.fixture
async def gw(settings: Settings, clock: Clock, tmp_path: Path) -> AsyncIterator[Gateway]:
    """A wired gateway on the test database, with the standard registry loaded."""
    async with gateway(settings, clock) as wired:
        await load_registry(wired, tmp_path)
        yield wired


def explain(conn: Connection, statement: Any, params: dict[str, Any]) -> str:
    """PostgreSQL's plan of ``statement`` with ``params``, as EXPLAIN prints it (the
    statement is not run)."""
    compiled = statement.compile(dialect=conn.dialect)
    values = compiled.construct_params(params)
    ordered = tuple(values[name] for name in compiled.positiontup or ())
    return "\n".join(conn.exec_driver_sql("EXPLAIN " + compiled.string, ordered).scalars())


def never_analyzed(conn: Connection, *tables: str) -> int:
    """How many of ``tables`` PostgreSQL has no statistics for yet (no ANALYZE, by hand or
    by autovacuum): a new database's planner case."""
    count = conn.exec_driver_sql(
        "SELECT count(*) FROM pg_stat_user_tables WHERE relname = ANY($1::text[])"
        " AND last_analyze IS NULL AND last_autoanalyze IS NULL",
        (list(tables),),
    ).scalar()
    return int(count or 0)


async def select_rows(db: Database, table: Table) -> list[dict[str, Any]]:
    """Every row of ``table`` in id order (or key order), as plain dicts."""
    order = table.c.id if "id" in table.c else next(iter(table.primary_key))
    return await db.run(
        lambda uow: [dict(r._mapping) for r in uow.conn.execute(select(table).order_by(order))]
    )


async def count_rows(db: Database, table: Table) -> int:
    return len(await select_rows(db, table))


@asynccontextmanager
async def loopback(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` over real HTTP on 127.0.0.1 (a free port); yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


# Twilio's REST API as a loopback fake (the review notices, the outbound queue).
TWILIO_SID = "AC" + "1" * 32


@dataclass(frozen=True)
class Answer:
    """One answer of the fake: an HTTP status, Twilio's JSON error, a Retry-After."""

    status: int
    code: int | None = None
    message: str = ""
    retry_after: str | None = None


@dataclass
class FakeTwilio:
    """Twilio's "create a Message" endpoint: answers ``answers`` in turn, then 201."""

    answers: list[Answer] = field(default_factory=list)
    posts: list[dict[str, str]] = field(default_factory=list)  # every request's form
    sent: list[dict[str, str]] = field(default_factory=list)  # those answered 201
    sids: list[str] = field(default_factory=list)
    url: str = ""

    async def create_message(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:test-auth-token".encode()).decode()
        if (
            request.match_info["sid"] != TWILIO_SID
            or request.headers.get("Authorization") != expected
        ):
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        form = await request.post()
        self.posts.append({k: str(v) for k, v in form.items()})
        if self.answers:
            answer = self.answers.pop(0)
            headers = {"Retry-After": answer.retry_after} if answer.retry_after else None
            body: dict[str, Any] = {"status": answer.status}
            if answer.code is not None:
                body |= {"code": answer.code, "message": answer.message}
            return web.json_response(body, status=answer.status, headers=headers)
        sid = f"SM{len(self.posts):032x}"
        self.sids.append(sid)
        self.sent.append(self.posts[-1])
        return web.json_response({"sid": sid, "status": "queued"}, status=201)


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", fake.create_message)
    async with loopback(app) as fake.url:
        yield fake
