"""Schema revisions (Alembic) on SQLite and PostgreSQL: what they make, how a database of
gateway 0.1.0 is recognised and brought up with every row kept, what is refused."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    inspect,
    select,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.bootstrap import Gateway, gateway
from gateway.domain.errors import SchemaMismatch
from gateway.domain.model import InboundMessage
from gateway.domain.outcome import Outcome
from gateway.settings import Settings
from gateway.storage import Database, schema
from gateway.storage import tables as t
from tests.conftest import Clock, count_rows, select_rows
from tests.integration.test_cli import run

T = TypeVar("T")


# ----- helpers ---------------------------------------------------------------------------


def _sqlite_engine(url: str) -> Engine:
    """A synchronous engine set up as ``Database`` sets up its own: the driver's
    transaction handling off (DDL belongs to the transaction), ``BEGIN IMMEDIATE``,
    foreign keys enforced."""
    engine = create_engine(make_url(url).set(drivername="sqlite+pysqlite"))

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


async def on_connection(url: str, work: Callable[[Connection], T]) -> T:
    """``work`` on an idle connection (not in a transaction) to the database at ``url``."""
    if make_url(url).get_backend_name() == "sqlite":
        engine = _sqlite_engine(url)
        try:
            with engine.connect() as conn:
                return work(conn)
        finally:
            engine.dispose()
    async_engine = create_async_engine(url)
    try:
        async with async_engine.connect() as async_conn:
            return await async_conn.run_sync(work)
    finally:
        await async_engine.dispose()


async def upgrade(url: str, target: str = "head") -> schema.Upgraded:
    """What ``gateway db upgrade`` runs."""
    db = Database(url)
    try:
        return await db.upgrade_schema(target)
    finally:
        await db.dispose()


def gateway_command(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``gateway`` command, in a process of its own, on the database at ``url``."""
    return run(
        list(args),
        {
            **os.environ,
            "GATEWAY_DATABASE_URL": url,
            "GATEWAY_CONFIG": str(Path(__file__).parents[2] / "config" / "gateway.toml"),
            "GATEWAY_LOG_FORMAT": "json",
        },
    )


@pytest.fixture
def settings(blank_database_url: str) -> Settings:
    """As tests/conftest.py's, on a database without tables: these tests make it."""
    return Settings.from_mapping(
        {
            "database_url": blank_database_url,
            "twilio_auth_token": "test-auth-token",
            "public_url": "https://gateway.example.org",
        }
    )


async def in_transaction(url: str, work: Callable[[Connection], T]) -> T:
    db = Database(url)
    try:
        return await db.run(lambda uow: work(uow.conn))
    finally:
        await db.dispose()


async def state(url: str) -> schema.SchemaState:
    return await in_transaction(url, schema.state)


def reflect(conn: Connection) -> dict[str, Any]:
    """Everything the database says about its tables (not the version table): columns in
    order with type, nullability and default, keys, references, indexes, uniques."""
    inspector = inspect(conn)
    described: dict[str, Any] = {}
    for name in sorted(set(inspector.get_table_names()) - {schema.VERSION_TABLE}):
        described[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c["default"])
                for c in inspector.get_columns(name)
            ],
            "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
            "foreign_keys": sorted(
                (
                    str(f["name"]),
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                )
                for f in inspector.get_foreign_keys(name)
            ),
            "indexes": sorted(
                (str(i["name"]), tuple(str(c) for c in i["column_names"]), i["unique"])
                for i in inspector.get_indexes(name)
            ),
            "unique": sorted(
                (str(u["name"]), tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(name)
            ),
        }
    return described


def table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def send(gw: Gateway, text: str, sender: str, external_id: str) -> Outcome:
    return await gw.intake(InboundMessage("sms", sender, text, gw.clock(), external_id))


async def snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    return {table.name: await select_rows(db, table) for table in t.metadata.sorted_tables}


# ----- gateway 0.1.0, frozen --------------------------------------------------------------------
#
# What gateway 0.1.0 did to a database, as SQL: its tables (what its `metadata.create_all`
# ran) and the rows it left after some use. History: never derived from tables.py or
# today's intake, which have moved on since and must not change what these tests call a
# database of 0.1.0.

# The three types the back ends spell differently in 0.1.0's DDL.
RELEASE_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"serial": "INTEGER", "decimal": "VARCHAR(40)", "utc": "DATETIME"},
    "postgresql": {
        "serial": "SERIAL",
        "decimal": "NUMERIC(20, 6)",
        "utc": "TIMESTAMP WITH TIME ZONE",
    },
}

# Table by table, in an order that respects the references (dropped in reverse).
RELEASE_DDL: dict[str, str] = {
    "accounts": """
CREATE TABLE accounts (
    account VARCHAR(32) NOT NULL,
    address TEXT NOT NULL,
    building VARCHAR(64) NOT NULL,
    phone VARCHAR(32) NOT NULL,
    debt {decimal} NOT NULL,
    receipt_code VARCHAR(64) NOT NULL,
    last_bill_total {decimal},
    residents INTEGER,
    PRIMARY KEY (account)
)""",
    "registers": """
CREATE TABLE registers (
    id {serial} NOT NULL,
    account VARCHAR(32) NOT NULL,
    meter VARCHAR(64) NOT NULL,
    service VARCHAR(16) NOT NULL,
    zone VARCHAR(16) NOT NULL,
    digits VARCHAR(8) NOT NULL,
    verified_until DATE,
    last_value {decimal},
    last_date DATE,
    PRIMARY KEY (id),
    CONSTRAINT uq_register UNIQUE (account, meter, zone),
    FOREIGN KEY(account) REFERENCES accounts (account)
)""",
    "tariffs": """
CREATE TABLE tariffs (
    id {serial} NOT NULL,
    service VARCHAR(16) NOT NULL,
    zone VARCHAR(16) NOT NULL,
    price {decimal} NOT NULL,
    valid_from DATE NOT NULL,
    normative {decimal},
    PRIMARY KEY (id),
    CONSTRAINT uq_tariff UNIQUE (service, zone, valid_from)
)""",
    "elders": """
CREATE TABLE elders (
    id {serial} NOT NULL,
    email VARCHAR(254) NOT NULL,
    building VARCHAR(64) NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_elder UNIQUE (email, building)
)""",
    "messages": """
CREATE TABLE messages (
    id {serial} NOT NULL,
    channel VARCHAR(16) NOT NULL,
    external_id VARCHAR(128),
    sender VARCHAR(254) NOT NULL,
    text TEXT NOT NULL,
    received_at {utc} NOT NULL,
    status VARCHAR(16) NOT NULL,
    error_code VARCHAR(32),
    account VARCHAR(32),
    reply TEXT,
    outcome TEXT NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_message_external_id UNIQUE (channel, external_id)
);
CREATE INDEX ix_messages_sender_time ON messages (channel, sender, received_at)""",
    "readings": """
CREATE TABLE readings (
    id {serial} NOT NULL,
    register_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    value {decimal} NOT NULL,
    previous {decimal},
    consumption {decimal} NOT NULL,
    taken_at {utc} NOT NULL,
    taken_on DATE NOT NULL,
    days INTEGER,
    period VARCHAR(7) NOT NULL,
    status VARCHAR(16) NOT NULL,
    replaces_id INTEGER,
    review_note TEXT,
    PRIMARY KEY (id),
    FOREIGN KEY(register_id) REFERENCES registers (id),
    FOREIGN KEY(message_id) REFERENCES messages (id),
    FOREIGN KEY(replaces_id) REFERENCES readings (id)
);
CREATE INDEX ix_readings_register_period ON readings (register_id, period, status);
CREATE INDEX ix_readings_register ON readings (register_id, id)""",
    "outbox": """
CREATE TABLE outbox (
    id {serial} NOT NULL,
    reading_id INTEGER NOT NULL,
    register_id INTEGER NOT NULL,
    idempotency_key VARCHAR(64) NOT NULL,
    payload TEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    created_at {utc} NOT NULL,
    next_attempt_at {utc},
    lease_until {utc},
    delivered_at {utc},
    last_error TEXT,
    PRIMARY KEY (id),
    UNIQUE (reading_id),
    FOREIGN KEY(reading_id) REFERENCES readings (id),
    FOREIGN KEY(register_id) REFERENCES registers (id),
    UNIQUE (idempotency_key)
);
CREATE INDEX ix_outbox_status ON outbox (status, id);
CREATE INDEX ix_outbox_register ON outbox (register_id, status, id)""",
    "billing_readings": """
CREATE TABLE billing_readings (
    id {serial} NOT NULL,
    idempotency_key VARCHAR(64) NOT NULL,
    reading_id INTEGER NOT NULL,
    kind VARCHAR(16) NOT NULL,
    replaces_key VARCHAR(64),
    account VARCHAR(32) NOT NULL,
    meter VARCHAR(64) NOT NULL,
    zone VARCHAR(16) NOT NULL,
    period VARCHAR(7) NOT NULL,
    value {decimal} NOT NULL,
    received_at {utc} NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (idempotency_key)
)""",
}

# The rows 0.1.0 left after some use, as it stored them (on SQLite: decimals as text,
# timestamps in UTC without a zone): the registry (accounts, meters, tariffs, an elder),
# accepted and rejected messages with their audit rows, readings, outbox rows delivered
# to the embedded billing and others still pending. The last was written at RELEASE_LAST.
RELEASE_ROWS = """
INSERT INTO accounts (account, address, building, phone, debt, receipt_code, last_bill_total,
  residents)
VALUES
('1234567890', 'ул. Пушкинская, 10, кв. 1', 'b1', '+79120000001', '100.00', 'A1B2C3', '1523.40',
 NULL),
('1234567891', 'ул. Пушкинская, 10, кв. 2', 'b1', '+79120000002', '0', 'D4E5F6', '812.15', NULL),
('1234567892', 'ул. Пушкинская, 10, кв. 3', 'b1', '+79120000003', '-250.50', 'G7H8I9', '640.00',
 NULL),
('0012345678', 'ул. Ленина, 5, кв. 7', 'b2', '+79120000004', '0', 'J1K2L3', '2210.90', NULL);

INSERT INTO registers (id, account, meter, service, zone, digits, verified_until, last_value,
  last_date)
VALUES
(1, '1234567890', '517480', 'electricity', 'day', '6.1', '2031-12-31', '12000', '2026-10-20'),
(2, '1234567890', '517480', 'electricity', 'night', '6.1', '2031-12-31', '6500', '2026-10-20'),
(3, '1234567891', '611002', 'electricity', 'single', '5.1', '2030-06-30', '4521', '2026-10-19'),
(4, '1234567892', '700301', 'hot_water', 'kitchen', '5.3', '2029-03-31', '120.5', '2026-10-21'),
(5, '1234567892', '700302', 'hot_water', 'bath', '5.3', '2029-03-31', '98.25', '2026-10-21'),
(6, '0012345678', '812000', 'electricity', 'single', '6.1', '2032-01-31', '999950', '2026-10-18'),
(7, '0012345678', '812001', 'hot_water', 'single', '5.3', '2026-11-01', '310', '2026-10-18');

INSERT INTO tariffs (id, service, zone, price, valid_from, normative)
VALUES
(1, 'electricity', 'single', '5.82', '2026-01-01', NULL),
(2, 'electricity', 'single', '6.43', '2026-07-01', NULL),
(3, 'electricity', 'day', '6.12', '2026-01-01', NULL),
(4, 'electricity', 'day', '6.80', '2026-07-01', NULL),
(5, 'electricity', 'night', '3.10', '2026-01-01', NULL),
(6, 'electricity', 'night', '3.45', '2026-07-01', NULL),
(7, 'hot_water', 'single', '245.10', '2026-07-01', NULL);

INSERT INTO elders (id, email, building)
VALUES
(1, 'elder@example.org', 'b1');

INSERT INTO messages (id, channel, external_id, sender, text, received_at, status, error_code,
  account, reply, outcome)
VALUES
(1, 'sms', 'SM1', '+79120000001', '1234567890 12345 6789', '2026-11-20 09:00:00.000000',
 'accepted', NULL, '1234567890',
 'Принято, ЛС 1234567890: день 12345, ночь 6789. Предварительно к оплате 3443,05 ₽ (с '
  || 'долгом 100,00 ₽).',
 '{"status": "accepted", "account": "1234567890", "error": null, "readings": [{"meter": '
  || '"517480", "service": "electricity", "zone": "day", "value": "12345", "previous": '
  || '"12000", "consumption": "345"}, {"meter": "517480", "service": "electricity", "zone": '
  || '"night", "value": "6789", "previous": "6500", "consumption": "289"}], "charge": '
  || '{"lines": [{"meter": "517480", "zone": "day", "consumption": "345", "tariff": "6.8", '
  || '"amount": "2346.00"}, {"meter": "517480", "zone": "night", "consumption": "289", '
  || '"tariff": "3.45", "amount": "997.05"}], "debt": "100.00", "total": "3443.05"}, "reply": '
  || '"Принято, ЛС 1234567890: день 12345, ночь 6789. Предварительно к оплате 3443,05 ₽ (с '
  || 'долгом 100,00 ₽)."}'),
(2, 'sms', 'SM2', '+79120000002', '1234567891 4600', '2026-11-20 09:00:00.000000', 'accepted',
 NULL, '1234567891', 'Принято, ЛС 1234567891: ЭЭ 4600. Предварительно к оплате 507,97 ₽.',
 '{"status": "accepted", "account": "1234567891", "error": null, "readings": [{"meter": '
  || '"611002", "service": "electricity", "zone": "single", "value": "4600", "previous": '
  || '"4521", "consumption": "79"}], "charge": {"lines": [{"meter": "611002", "zone": '
  || '"single", "consumption": "79", "tariff": "6.43", "amount": "507.97"}], "debt": "0.00", '
  || '"total": "507.97"}, "reply": "Принято, ЛС 1234567891: ЭЭ 4600. Предварительно к оплате '
  || '507,97 ₽."}'),
(3, 'sms', 'SM3', '+79120000009', 'привет', '2026-11-20 09:00:00.000000', 'rejected',
 'not_readings', NULL,
 'Показания: ЛС и значения через пробел, напр. 1234567890 12345 6789 (день ночь) или '
  || 'Д12345 Н6789. Последние: 1234567890 ?',
 '{"status": "rejected", "account": null, "error": {"code": "not_readings", "message": '
  || '"Показания: ЛС и значения через пробел, напр. 1234567890 12345 6789 (день ночь) или '
  || 'Д12345 Н6789. Последние: 1234567890 ?"}, "readings": [], "charge": null, "reply": '
  || '"Показания: ЛС и значения через пробел, напр. 1234567890 12345 6789 (день ночь) или '
  || 'Д12345 Н6789. Последние: 1234567890 ?"}'),
(4, 'sms', 'SM4', '+79120000003', '1234567892 121 99', '2026-11-20 09:05:00.000000', 'accepted',
 NULL, '1234567892',
 'Принято, ЛС 1234567892: ГВС кухня 121, ГВС ванна 99. Предварительно к оплате 306,38 ₽.',
 '{"status": "accepted", "account": "1234567892", "error": null, "readings": [{"meter": '
  || '"700301", "service": "hot_water", "zone": "kitchen", "value": "121", "previous": '
  || '"120.5", "consumption": "0.5"}, {"meter": "700302", "service": "hot_water", "zone": '
  || '"bath", "value": "99", "previous": "98.25", "consumption": "0.75"}], "charge": '
  || '{"lines": [{"meter": "700301", "zone": "kitchen", "consumption": "0.5", "tariff": '
  || '"245.1", "amount": "122.55"}, {"meter": "700302", "zone": "bath", "consumption": '
  || '"0.75", "tariff": "245.1", "amount": "183.83"}], "debt": "-250.50", "total": "306.38"}, '
  || '"reply": "Принято, ЛС 1234567892: ГВС кухня 121, ГВС ванна 99. Предварительно к оплате '
  || '306,38 ₽."}');

INSERT INTO readings (id, register_id, message_id, value, previous, consumption, taken_at,
  taken_on, days, period, status, replaces_id, review_note)
VALUES
(1, 1, 1, '12345', '12000', '345', '2026-11-20 09:00:00.000000', '2026-11-20', 31, '2026-11',
 'accepted', NULL, NULL),
(2, 2, 1, '6789', '6500', '289', '2026-11-20 09:00:00.000000', '2026-11-20', 31, '2026-11',
 'accepted', NULL, NULL),
(3, 3, 2, '4600', '4521', '79', '2026-11-20 09:00:00.000000', '2026-11-20', 32, '2026-11',
 'accepted', NULL, NULL),
(4, 4, 4, '121', '120.5', '0.5', '2026-11-20 09:05:00.000000', '2026-11-20', 30, '2026-11',
 'accepted', NULL, NULL),
(5, 5, 4, '99', '98.25', '0.75', '2026-11-20 09:05:00.000000', '2026-11-20', 30, '2026-11',
 'accepted', NULL, NULL);

INSERT INTO outbox (id, reading_id, register_id, idempotency_key, payload, status, attempts,
  created_at, next_attempt_at, lease_until, delivered_at, last_error)
VALUES
(1, 1, 1, 'reading-1',
 '{"reading_id": 1, "kind": "reading", "replaces": null, "period": "2026-11", "account": '
  || '"1234567890", "meter": "517480", "service": "electricity", "zone": "day", "value": '
  || '"12345", "previous": "12000", "consumption": "345", "taken_at": '
  || '"2026-11-20T09:00:00+00:00"}',
 'delivered', 0, '2026-11-20 09:00:00.000000', NULL, NULL, '2026-11-20 09:00:00.000000', NULL),
(2, 2, 2, 'reading-2',
 '{"reading_id": 2, "kind": "reading", "replaces": null, "period": "2026-11", "account": '
  || '"1234567890", "meter": "517480", "service": "electricity", "zone": "night", "value": '
  || '"6789", "previous": "6500", "consumption": "289", "taken_at": '
  || '"2026-11-20T09:00:00+00:00"}',
 'delivered', 0, '2026-11-20 09:00:00.000000', NULL, NULL, '2026-11-20 09:00:00.000000', NULL),
(3, 3, 3, 'reading-3',
 '{"reading_id": 3, "kind": "reading", "replaces": null, "period": "2026-11", "account": '
  || '"1234567891", "meter": "611002", "service": "electricity", "zone": "single", "value": '
  || '"4600", "previous": "4521", "consumption": "79", "taken_at": '
  || '"2026-11-20T09:00:00+00:00"}',
 'delivered', 0, '2026-11-20 09:00:00.000000', NULL, NULL, '2026-11-20 09:00:00.000000', NULL),
(4, 4, 4, 'reading-4',
 '{"reading_id": 4, "kind": "reading", "replaces": null, "period": "2026-11", "account": '
  || '"1234567892", "meter": "700301", "service": "hot_water", "zone": "kitchen", "value": '
  || '"121", "previous": "120.5", "consumption": "0.5", "taken_at": '
  || '"2026-11-20T09:05:00+00:00"}',
 'pending', 0, '2026-11-20 09:05:00.000000', NULL, NULL, NULL, NULL),
(5, 5, 5, 'reading-5',
 '{"reading_id": 5, "kind": "reading", "replaces": null, "period": "2026-11", "account": '
  || '"1234567892", "meter": "700302", "service": "hot_water", "zone": "bath", "value": "99", '
  || '"previous": "98.25", "consumption": "0.75", "taken_at": "2026-11-20T09:05:00+00:00"}',
 'pending', 0, '2026-11-20 09:05:00.000000', NULL, NULL, NULL, NULL);

INSERT INTO billing_readings (id, idempotency_key, reading_id, kind, replaces_key, account, meter,
  zone, period, value, received_at)
VALUES
(1, 'reading-1', 1, 'reading', NULL, '1234567890', '517480', 'day', '2026-11', '12345',
 '2026-11-20 09:00:00.000000'),
(2, 'reading-2', 2, 'reading', NULL, '1234567890', '517480', 'night', '2026-11', '6789',
 '2026-11-20 09:00:00.000000'),
(3, 'reading-3', 3, 'reading', NULL, '1234567891', '611002', 'single', '2026-11', '4600',
 '2026-11-20 09:00:00.000000');
"""
RELEASE_LAST = datetime(2026, 11, 20, 9, 5, tzinfo=UTC)


def statements(script: str) -> list[str]:
    """The statements of a script of the frozen SQL above (no ";" inside its values)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def create_release_schema(conn: Connection, without: Collection[str] = ()) -> None:
    """What gateway 0.1.0's ``Database.create_schema`` did to an empty database: its
    ``create_all`` (no version table: 0.1.0 had no revisions). ``without``: tables left out."""
    for table, ddl in RELEASE_DDL.items():
        if table not in without:
            for statement in statements(ddl.format(**RELEASE_TYPES[conn.dialect.name])):
                conn.exec_driver_sql(statement)


def drop_release_schema(conn: Connection) -> None:
    for table in reversed(RELEASE_DDL):
        conn.exec_driver_sql(f"DROP TABLE {table}")


def insert_release_rows(conn: Connection) -> None:
    """0.1.0's rows; on PostgreSQL each id sequence past its rows, as 0.1.0 left them."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:  # the timestamps are UTC
        conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
    for statement in statements(RELEASE_ROWS):
        conn.exec_driver_sql(statement)
    if postgres:
        for table in RELEASE_DDL.keys() - {"accounts"}:
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )


def release_rows(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Every row of 0.1.0's tables, their 0.1.0 columns only, as today's gateway reads them
    (in key order)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, columns in schema.RELEASE_TABLES.items():
        table = t.metadata.tables[name]
        query = select(*(c for c in table.columns if c.name in columns))
        key = table.c.id if "id" in table.c else next(iter(table.primary_key))
        found[name] = [dict(row._mapping) for row in conn.execute(query.order_by(key))]
    return found


@pytest.fixture
def other_tables(blank_database_url: str) -> Iterator[str]:
    """The database, cleared after the test of the tables these tests make that are not
    the gateway's (conftest clears the gateway's on the shared PostgreSQL database)."""
    yield blank_database_url
    if make_url(blank_database_url).get_backend_name() == "sqlite":
        return

    async def drop() -> None:
        engine = create_async_engine(blank_database_url)
        async with engine.begin() as conn:
            for name in ("scratch", "users", "orders"):
                await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        await engine.dispose()

    asyncio.run(drop())


# ----- what the revisions make -------------------------------------------------------------


async def test_upgrade_creates_an_empty_database_at_the_newest_revision(
    blank_database_url: str,
) -> None:
    assert (await state(blank_database_url)).status is schema.Status.EMPTY

    upgraded = await upgrade(blank_database_url)

    assert upgraded.before.status is schema.Status.EMPTY
    assert upgraded.revision == schema.head()
    assert upgraded.describe() == f"created the schema at revision {schema.head()}"
    assert await in_transaction(blank_database_url, schema.current) == schema.head()
    assert await in_transaction(blank_database_url, table_names) == {
        *t.metadata.tables,
        schema.VERSION_TABLE,
    }


async def test_the_revisions_make_exactly_the_tables_of_tables_py(blank_database_url: str) -> None:
    """Fails when tables.py changes without a revision; the message lists what differs."""
    await upgrade(blank_database_url)

    differences = await in_transaction(
        blank_database_url,
        lambda conn: compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), t.metadata
        ),
    )

    assert differences == []


async def test_the_comparison_notices_a_table_change_without_a_revision(
    blank_database_url: str,
) -> None:
    """The test above is not vacuous: a column, a type, a nullability, an index the
    revisions lack are all reported."""
    await upgrade(blank_database_url)
    changed = MetaData()
    for table in t.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["accounts"].append_column(Column("email", String(254), nullable=True))
    changed.tables["registers"].c.meter.type = String(80)
    changed.tables["tariffs"].c.normative.nullable = False
    outbox = changed.tables["outbox"]
    outbox.indexes.discard(next(i for i in outbox.indexes if i.name == "ix_outbox_status"))

    differences = await in_transaction(
        blank_database_url,
        lambda conn: compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), changed
        ),
    )

    flat = [d[0] if isinstance(d, list) else d for d in differences]
    assert sorted((d[0], d[2] if d[0] != "remove_index" else d[1].name) for d in flat) == [
        ("add_column", "accounts"),
        ("modify_nullable", "tariffs"),
        ("modify_type", "registers"),
        ("remove_index", "ix_outbox_status"),
    ]


async def release_schema(url: str) -> dict[str, Any]:
    """What the database says about the tables of gateway 0.1.0 (made, described, dropped)."""

    def make_and_describe(conn: Connection) -> dict[str, Any]:
        create_release_schema(conn)
        return reflect(conn)

    described = await in_transaction(url, make_and_describe)
    await in_transaction(url, drop_release_schema)
    return described


async def test_revision_0001_is_exactly_the_schema_gateway_0_1_0_made(
    blank_database_url: str,
) -> None:
    release = await release_schema(blank_database_url)

    await upgrade(blank_database_url, schema.FIRST_REVISION)
    first = await in_transaction(blank_database_url, reflect)

    assert first == release
    assert {name: {c[0] for c in table["columns"]} for name, table in first.items()} == dict(
        schema.RELEASE_TABLES
    )


async def test_upgrading_twice_changes_nothing_the_second_time(blank_database_url: str) -> None:
    await upgrade(blank_database_url)
    before = await in_transaction(blank_database_url, reflect)

    again = await upgrade(blank_database_url)

    assert again.before.status is schema.Status.CURRENT
    assert not again.changed
    assert again.describe() == f"already at revision {schema.head()}, nothing to do"
    assert await in_transaction(blank_database_url, reflect) == before
    versions = await in_transaction(
        blank_database_url,
        lambda conn: conn.exec_driver_sql("SELECT version_num FROM alembic_version").all(),
    )
    assert [tuple(v) for v in versions] == [(schema.head(),)]


async def test_a_database_at_the_newest_revision_is_up_to_date(blank_database_url: str) -> None:
    await upgrade(blank_database_url)

    found = await state(blank_database_url)

    assert found == schema.SchemaState(schema.Status.CURRENT, schema.head(), schema.head())
    assert found.up_to_date
    assert found.describe() == f"it is at revision {schema.head()}, the one this gateway needs"


async def test_downgrading_to_base_drops_every_table(blank_database_url: str) -> None:
    await upgrade(blank_database_url)

    def downgrade(conn: Connection) -> None:
        command.downgrade(schema.config(conn), "base")
        conn.commit()

    await on_connection(blank_database_url, downgrade)

    assert await in_transaction(blank_database_url, table_names) == {schema.VERSION_TABLE}
    assert (await state(blank_database_url)).status is schema.Status.EMPTY


async def test_downgrading_to_0001_leaves_exactly_the_schema_of_0_1_0(
    blank_database_url: str,
) -> None:
    """Each revision's downgrade drops exactly what its upgrade made."""
    release = await release_schema(blank_database_url)
    await upgrade(blank_database_url)

    def downgrade(conn: Connection) -> None:
        command.downgrade(schema.config(conn), schema.FIRST_REVISION)
        conn.commit()

    await on_connection(blank_database_url, downgrade)

    assert await in_transaction(blank_database_url, reflect) == release
    assert await in_transaction(blank_database_url, schema.current) == schema.FIRST_REVISION


# ----- what is refused ----------------------------------------------------------------------


async def test_a_database_of_other_tables_is_refused_and_left_alone(
    other_tables: str,
) -> None:
    def other_application(conn: Connection) -> None:
        other = MetaData()
        Table("users", other, Column("id", Integer, primary_key=True))
        Table("orders", other, Column("id", Integer, primary_key=True))
        other.create_all(conn)

    await in_transaction(other_tables, other_application)

    found = await state(other_tables)
    with pytest.raises(SchemaMismatch) as refused:
        await upgrade(other_tables)

    assert found.status is schema.Status.FOREIGN
    assert str(refused.value).endswith(
        "its tables are not the gateway's (tables orders, users; none of the gateway's): "
        "set GATEWAY_DATABASE_URL to the gateway's database, or to a new, empty one"
    )
    assert "delete" not in str(refused.value)
    assert await in_transaction(other_tables, table_names) == {"users", "orders"}


async def test_a_schema_older_than_0_1_0_is_refused_naming_what_is_missing(
    blank_database_url: str,
) -> None:
    """Tables of a pre-release gateway: accounts without residents, no embedded billing."""

    def pre_release(conn: Connection) -> None:
        create_release_schema(conn, without={"tariffs"})
        conn.exec_driver_sql("ALTER TABLE accounts DROP COLUMN residents")

    await in_transaction(blank_database_url, pre_release)

    with pytest.raises(SchemaMismatch) as refused:
        await upgrade(blank_database_url)

    assert (await state(blank_database_url)).status is schema.Status.FOREIGN
    assert "(missing tariffs, accounts.residents)" in str(refused.value)
    assert schema.VERSION_TABLE not in await in_transaction(blank_database_url, table_names)


async def test_a_revision_this_gateway_does_not_know_is_refused(blank_database_url: str) -> None:
    """A newer gateway upgraded the database: an older one must not touch it."""
    await upgrade(blank_database_url)
    await in_transaction(
        blank_database_url,
        lambda conn: conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'"),
    )

    found = await state(blank_database_url)
    with pytest.raises(SchemaMismatch) as refused:
        await upgrade(blank_database_url)

    assert found.status is schema.Status.UNKNOWN_REVISION
    assert not found.upgradable
    assert str(refused.value).endswith(
        f"it is at revision 0099, which this gateway does not know (its newest is "
        f"{schema.head()}): a newer gateway upgraded it; run that version of the gateway"
    )
    assert await in_transaction(blank_database_url, schema.current) == "0099"


def test_every_refusal_names_the_upgrade_command_or_says_why_it_cannot_help() -> None:
    head = schema.head()
    told = {
        status: schema.SchemaState(status, "0000", head, "detail").describe()
        for status in schema.Status
    }

    for status in (schema.Status.EMPTY, schema.Status.UNSTAMPED, schema.Status.BEHIND):
        assert "run `gateway db upgrade`" in told[status]
    assert told[schema.Status.BEHIND] == (
        f"it is at revision 0000, this gateway needs {head}: run `gateway db upgrade`"
    )
    assert not any("delete" in text or "recreate" in text.lower() for text in told.values())


# ----- a database of gateway 0.1.0 ------------------------------------------------------------


async def make_release_database(settings: Settings, clock: Clock) -> None:
    """A database as gateway 0.1.0 left it after some use (see RELEASE_ROWS), the clock at
    the time of its last row."""

    def release(conn: Connection) -> None:
        create_release_schema(conn)
        insert_release_rows(conn)

    await in_transaction(settings.database_url, release)
    clock.now = RELEASE_LAST


async def test_a_0_1_0_database_is_stamped_and_keeps_every_row_usable(
    settings: Settings, clock: Clock
) -> None:
    await make_release_database(settings, clock)
    before = await in_transaction(settings.database_url, release_rows)
    assert (await state(settings.database_url)).status is schema.Status.UNSTAMPED

    upgraded = gateway_command(settings.database_url, "db", "upgrade")

    assert (upgraded.returncode, upgraded.stdout) == (
        0,
        f"stamped the gateway 0.1.0 schema as revision 0001, upgraded to revision "
        f"{schema.head()}\n",
    ), upgraded.stderr
    assert gateway_command(settings.database_url, "db", "current").stdout == (
        f"{schema.head()} (head)\n"
    )
    differences = await in_transaction(
        settings.database_url,
        lambda conn: compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), t.metadata
        ),
    )
    assert differences == []
    async with gateway(settings, clock) as gw:
        assert await gw.db.run(lambda uow: release_rows(uow.conn)) == before
        assert {name: len(rows) for name, rows in before.items()} == {
            "accounts": 4,
            "registers": 7,
            "tariffs": 7,
            "elders": 1,
            "messages": 4,
            "readings": 5,
            "outbox": 5,
            "billing_readings": 3,
        }
        assert [o["status"] for o in before["outbox"]] == ["delivered"] * 3 + ["pending"] * 2
        # What revision 0002 added: new tables, empty.
        assert await count_rows(gw.db, t.outbound) == 0
        assert await count_rows(gw.db, t.chat_links) == 0
        # What revision 0003 added: new tables, empty.
        assert await count_rows(gw.db, t.telegram_updates) == 0
        assert await count_rows(gw.db, t.chats) == 0
        assert await count_rows(gw.db, t.link_attempts) == 0
        # What revision 0004 added: new tables, empty.
        assert await count_rows(gw.db, t.opt_outs) == 0
        assert await count_rows(gw.db, t.smpp_parts) == 0
        assert await count_rows(gw.db, t.smpp_submits) == 0
        # What revision 0005 added: a new table, empty.
        assert await count_rows(gw.db, t.leases) == 0

        # The same account again in the same period: a correction of the stored reading;
        # Twilio delivering the first message again: its stored outcome, nothing stored.
        correction = await send(gw, "1234567890 12350 6790", "+79120000001", "SM5")
        repeated = await send(gw, "1234567890 12345 6789", "+79120000001", "SM1")
        async with gw.relay() as relay:
            report = await relay.run_once()
        after = await snapshot(gw.db)

    assert correction.status == "accepted"
    assert [(r.value, r.previous) for r in correction.readings] == [
        (Decimal(12350), Decimal(12000)),
        (Decimal(6790), Decimal(6500)),
    ]
    assert repeated.to_json() == json.loads(before["messages"][0]["outcome"])
    readings = {r["id"]: r for r in after["readings"]}
    assert [(readings[i]["status"], readings[i]["replaces_id"]) for i in (1, 2, 6, 7)] == [
        ("replaced", None),
        ("replaced", None),
        ("accepted", 1),
        ("accepted", 2),
    ]
    assert report.delivered == 4
    assert {o["status"] for o in after["outbox"]} == {"delivered"}
    billed = after["billing_readings"]
    assert [(b["idempotency_key"], b["kind"], b["replaces_key"]) for b in billed[-2:]] == [
        ("reading-6", "correction", "reading-1"),
        ("reading-7", "correction", "reading-2"),
    ]
    assert [m["external_id"] for m in after["messages"]] == ["SM1", "SM2", "SM3", "SM4", "SM5"]
    assert json.loads(after["messages"][4]["outcome"])["status"] == "accepted"


# ----- the next revision: a rehearsal with a test-only one after the newest -----------------

# Its id: one no real revision will take.
NEXT = "9000"

REVISION_NEXT = '''"""Test only: accounts.phone widened (on SQLite, a referenced table rebuilt)."""

import sqlalchemy as sa
from alembic import op

revision = "{next}"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column(
            "phone", existing_type=sa.String(32), type_=sa.String(40), existing_nullable=False
        )
    {more}


def downgrade() -> None:
    pass
'''


def with_next_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, more: str = "") -> None:
    """The gateway's migrations plus a test-only revision NEXT after the newest."""
    folder = tmp_path / "migrations"
    shutil.copytree(schema.migrations_folder(), folder)
    (folder / "versions" / f"{NEXT}_test.py").write_text(
        REVISION_NEXT.replace("{next}", NEXT)
        .replace("{head}", schema.head())
        .replace("{more}", more or "pass"),
        encoding="utf-8",
    )
    monkeypatch.setattr(schema, "migrations_folder", lambda: folder)
    schema._scripts.cache_clear()


@pytest.fixture(autouse=True)
def forget_scripts() -> Iterator[None]:
    yield
    schema._scripts.cache_clear()


async def test_a_database_behind_is_upgraded_keeping_rows_and_references(
    settings: Settings, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the test revision rebuilds accounts, which registers refer to: the upgrade
    switches foreign keys off around it and checks every reference before committing."""
    await make_release_database(settings, clock)
    before = await in_transaction(settings.database_url, release_rows)
    with_next_revision(tmp_path, monkeypatch)
    await upgrade(settings.database_url, "0001")

    behind = await state(settings.database_url)
    upgraded = await upgrade(settings.database_url)

    assert behind.status is schema.Status.BEHIND
    assert behind.describe() == (
        f"it is at revision 0001, this gateway needs {NEXT}: run `gateway db upgrade`"
    )
    assert upgraded.describe() == f"upgraded from revision 0001 to {NEXT}"
    phone = await in_transaction(
        settings.database_url,
        lambda conn: next(c for c in inspect(conn).get_columns("accounts") if c["name"] == "phone"),
    )
    assert str(phone["type"]) == "VARCHAR(40)"
    async with gateway(settings, clock) as gw:
        assert await gw.db.run(lambda uow: release_rows(uow.conn)) == before
        assert (await send(gw, "1234567891 4610", "+79120000002", "SM5")).status == "accepted"
    if make_url(settings.database_url).get_backend_name() == "sqlite":

        def foreign_keys_after_an_upgrade(conn: Connection) -> tuple[Any, list[Any]]:
            schema.upgrade(conn)
            return (
                conn.exec_driver_sql("PRAGMA foreign_keys").scalar(),
                list(conn.exec_driver_sql("PRAGMA foreign_key_check").all()),
            )

        assert await on_connection(settings.database_url, foreign_keys_after_an_upgrade) == (1, [])


async def test_a_failing_revision_leaves_the_database_as_it_was(
    other_tables: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await upgrade(other_tables)
    before = await in_transaction(other_tables, reflect)
    head = schema.head()
    with_next_revision(
        tmp_path,
        monkeypatch,
        more='op.create_table("scratch", sa.Column("id", sa.Integer, primary_key=True))\n'
        f'    raise RuntimeError("revision {NEXT} failed")',
    )

    with pytest.raises(RuntimeError, match=f"revision {NEXT} failed"):
        await upgrade(other_tables)

    assert await in_transaction(other_tables, reflect) == before
    assert await in_transaction(other_tables, schema.current) == head


# ----- the commands ---------------------------------------------------------------------------


def test_db_upgrade_creates_a_new_database_and_db_current_names_its_revision(
    blank_database_url: str,
) -> None:
    before = gateway_command(blank_database_url, "db", "current")
    upgraded = gateway_command(blank_database_url, "db", "upgrade")
    again = gateway_command(blank_database_url, "db", "upgrade")
    after = gateway_command(blank_database_url, "db", "current")
    as_json = gateway_command(blank_database_url, "db", "current", "--json")
    head = schema.head()

    assert (before.returncode, before.stdout) == (1, "none\n")
    assert "it has no tables yet: run `gateway db upgrade` to create them" in before.stderr
    assert (upgraded.returncode, upgraded.stdout) == (0, f"created the schema at revision {head}\n")
    assert (again.returncode, again.stdout) == (0, f"already at revision {head}, nothing to do\n")
    assert (after.returncode, after.stdout) == (0, f"{head} (head)\n")
    assert json.loads(as_json.stdout) == {
        "revision": head,
        "head": head,
        "status": "current",
        "up_to_date": True,
    }


@pytest.mark.parametrize(
    "args",
    [["import", "--accounts", "accounts.csv"], ["sms", "1234567890 12345 6789"], ["serve"]],
)
def test_every_command_refuses_a_database_not_at_the_newest_revision(
    tmp_path: Path, args: list[str]
) -> None:
    """Never creating tables nor advising to delete anything: `gateway db upgrade`."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"

    result = gateway_command(url, *args)

    assert result.returncode == 2
    assert result.stdout == ""
    assert (
        f"gateway: database {url}: it has no tables yet: run `gateway db upgrade` to create them\n"
    ) in result.stderr
    assert asyncio.run(state(url)).status is schema.Status.EMPTY


async def test_commands_refuse_a_0_1_0_database_until_it_is_upgraded(
    settings: Settings, clock: Clock
) -> None:
    await make_release_database(settings, clock)

    refused = gateway_command(settings.database_url, "readings", "1234567890")
    current = gateway_command(settings.database_url, "db", "current")

    assert refused.returncode == 2
    assert (
        "it was made by gateway 0.1.0, before schema revisions: run `gateway db upgrade` to "
        f"bring it to revision {schema.head()} (every row is kept)"
    ) in refused.stderr
    assert (current.returncode, current.stdout) == (1, "none\n")


async def test_db_upgrade_refuses_a_database_of_other_tables(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"

    def other_application(conn: Connection) -> None:
        Table("users", MetaData(), Column("id", Integer, primary_key=True)).create(conn)

    await in_transaction(url, other_application)

    upgraded = gateway_command(url, "db", "upgrade")
    current = gateway_command(url, "db", "current")

    assert upgraded.returncode == 2
    assert "its tables are not the gateway's (tables users; none of the gateway's)" in (
        upgraded.stderr
    )
    assert (current.returncode, current.stdout) == (2, "none\n")
    assert await in_transaction(url, table_names) == {"users"}
