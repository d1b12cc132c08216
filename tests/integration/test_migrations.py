"""Schema revisions (Alembic) on SQLite and PostgreSQL: what they make, how a database of
gateway 0.1.0 is recognised and brought up with every row kept, what is refused."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from unittest.mock import patch

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.bootstrap import Gateway, gateway
from gateway.domain.errors import SchemaMismatch
from gateway.domain.model import InboundMessage
from gateway.domain.outcome import Outcome
from gateway.registry import import_file
from gateway.settings import Settings
from gateway.storage import Database, schema
from gateway.storage import tables as t
from tests.conftest import Clock, load_registry, select_rows
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


TABLES_MOVED_ON = (
    "tables.py has moved past gateway 0.1.0: build 0.1.0's tables and rows in these tests "
    "from a frozen copy (its DDL and rows as SQL) instead of tables.py and today's intake"
)


def create_release_schema(conn: Connection) -> None:
    """What gateway 0.1.0's ``Database.create_schema`` did to a database: ``create_all``
    of its tables (and a check that no column was missing). 0.1.0's tables are
    ``tables.py`` while revision 0001 is the newest."""
    assert schema.head() == schema.FIRST_REVISION, TABLES_MOVED_ON
    t.metadata.create_all(conn)


async def _release_create_schema(db: Database) -> None:
    """Gateway 0.1.0's ``Database.create_schema``: ``create_all`` (and a check for missing
    columns, which tables it has just made always pass)."""
    await db.run(lambda uow: create_release_schema(uow.conn))


@asynccontextmanager
async def release_gateway(settings: Settings, clock: Clock) -> AsyncIterator[Gateway]:
    """The gateway as release 0.1.0 opened a database: ``bootstrap.gateway`` with 0.1.0's
    ``create_schema`` where this version checks the revision."""
    with patch.object(Database, "check_schema", _release_create_schema):
        async with gateway(settings, clock) as gw:
            yield gw


async def send(gw: Gateway, text: str, sender: str, external_id: str) -> Outcome:
    return await gw.intake(InboundMessage("sms", sender, text, gw.clock(), external_id))


async def snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    return {table.name: await select_rows(db, table) for table in t.metadata.sorted_tables}


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


async def test_revision_0001_is_exactly_the_schema_gateway_0_1_0_made(
    blank_database_url: str,
) -> None:
    def release_schema(conn: Connection) -> dict[str, Any]:
        create_release_schema(conn)
        return reflect(conn)

    release = await in_transaction(blank_database_url, release_schema)
    await in_transaction(blank_database_url, t.metadata.drop_all)

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
        t.metadata.create_all(conn, [x for x in t.metadata.sorted_tables if x.name != "tariffs"])
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

ELDERS = "email,building\nelder@example.org,b1\n"


async def make_release_database(settings: Settings, clock: Clock, folder: Path) -> None:
    """A database as gateway 0.1.0 leaves it after some use: the registry (accounts,
    meters, tariffs, elders), accepted and rejected messages with their audit rows,
    readings, outbox rows delivered to the embedded billing and others still pending."""
    async with release_gateway(settings, clock) as gw:
        await load_registry(gw, folder)
        (folder / "elders.csv").write_text(ELDERS, encoding="utf-8")
        assert (await import_file(gw.db, "elders", folder / "elders.csv")).errors == []
        assert (await send(gw, "1234567890 12345 6789", "+79120000001", "SM1")).status == (
            "accepted"
        )
        assert (await send(gw, "1234567891 4600", "+79120000002", "SM2")).status == "accepted"
        assert (await send(gw, "привет", "+79120000009", "SM3")).status == "rejected"
        async with gw.relay() as relay:
            assert (await relay.run_once()).delivered == 3
        clock.advance(minutes=5)
        assert (await send(gw, "1234567892 121 99", "+79120000003", "SM4")).status == ("accepted")


async def test_a_0_1_0_database_is_stamped_and_keeps_every_row_usable(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    await make_release_database(settings, clock, tmp_path)
    async with release_gateway(settings, clock) as old:
        before = await snapshot(old.db)
    assert (await state(settings.database_url)).status is schema.Status.UNSTAMPED

    upgraded = gateway_command(settings.database_url, "db", "upgrade")

    assert (upgraded.returncode, upgraded.stdout) == (
        0,
        "stamped the gateway 0.1.0 schema as revision 0001; no change to its tables\n",
    ), upgraded.stderr
    assert gateway_command(settings.database_url, "db", "current").stdout == "0001 (head)\n"
    async with gateway(settings, clock) as gw:
        assert await snapshot(gw.db) == before
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


# ----- the next revision: a rehearsal with a test-only 0002 ---------------------------------

REVISION_0002 = '''"""Test only: accounts.phone widened (on SQLite, a referenced table rebuilt)."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
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


def with_revision_0002(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, more: str = "") -> None:
    """The gateway's migrations plus a test-only revision 0002 after 0001."""
    folder = tmp_path / "migrations"
    shutil.copytree(schema.migrations_folder(), folder)
    (folder / "versions" / "0002_test.py").write_text(
        REVISION_0002.replace("{more}", more or "pass"), encoding="utf-8"
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
    """On SQLite 0002 rebuilds accounts, which registers refer to: the upgrade switches
    foreign keys off around it and checks every reference before committing."""
    await make_release_database(settings, clock, tmp_path)
    async with release_gateway(settings, clock) as old:
        before = await snapshot(old.db)
    with_revision_0002(tmp_path, monkeypatch)
    await upgrade(settings.database_url, "0001")

    behind = await state(settings.database_url)
    upgraded = await upgrade(settings.database_url)

    assert behind.status is schema.Status.BEHIND
    assert behind.describe() == (
        "it is at revision 0001, this gateway needs 0002: run `gateway db upgrade`"
    )
    assert upgraded.describe() == "upgraded from revision 0001 to 0002"
    phone = await in_transaction(
        settings.database_url,
        lambda conn: next(c for c in inspect(conn).get_columns("accounts") if c["name"] == "phone"),
    )
    assert str(phone["type"]) == "VARCHAR(40)"
    async with gateway(settings, clock) as gw:
        assert await snapshot(gw.db) == before
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
    with_revision_0002(
        tmp_path,
        monkeypatch,
        more='op.create_table("scratch", sa.Column("id", sa.Integer, primary_key=True))\n'
        '    raise RuntimeError("revision 0002 failed")',
    )

    with pytest.raises(RuntimeError, match="revision 0002 failed"):
        await upgrade(other_tables)

    assert await in_transaction(other_tables, reflect) == before
    assert await in_transaction(other_tables, schema.current) == "0001"


# ----- the commands ---------------------------------------------------------------------------


def test_db_upgrade_creates_a_new_database_and_db_current_names_its_revision(
    blank_database_url: str,
) -> None:
    before = gateway_command(blank_database_url, "db", "current")
    upgraded = gateway_command(blank_database_url, "db", "upgrade")
    again = gateway_command(blank_database_url, "db", "upgrade")
    after = gateway_command(blank_database_url, "db", "current")
    as_json = gateway_command(blank_database_url, "db", "current", "--json")

    assert (before.returncode, before.stdout) == (1, "none\n")
    assert "it has no tables yet: run `gateway db upgrade` to create them" in before.stderr
    assert (upgraded.returncode, upgraded.stdout) == (0, "created the schema at revision 0001\n")
    assert (again.returncode, again.stdout) == (0, "already at revision 0001, nothing to do\n")
    assert (after.returncode, after.stdout) == (0, "0001 (head)\n")
    assert json.loads(as_json.stdout) == {
        "revision": "0001",
        "head": "0001",
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
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    await make_release_database(settings, clock, tmp_path)

    refused = gateway_command(settings.database_url, "readings", "1234567890")
    current = gateway_command(settings.database_url, "db", "current")

    assert refused.returncode == 2
    assert (
        "it was made by gateway 0.1.0, before schema revisions: run `gateway db upgrade` to "
        "bring it to revision 0001 (every row is kept)"
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
