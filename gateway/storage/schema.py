"""The database schema's revisions (Alembic): what a database is at, and bringing it up.

Every function takes a synchronous SQLAlchemy ``Connection`` of the gateway's own
``Database`` (SQLite: its writer connection, on the writer thread; PostgreSQL: through
``AsyncConnection.run_sync``): :func:`state` and :func:`current` one inside a unit of work's
transaction, :func:`upgrade` an idle one, as it runs its own transaction. Alembic never
opens an engine of its own: it is configured here in code (no ``alembic.ini``), with the
migrations folder shipped inside this package, and runs on that connection. Both back ends
have transactional DDL, so an upgrade commits whole or leaves the database as it was.

A database is in one of these states (:func:`state`):

- ``empty``: no tables. :func:`upgrade` creates every table by running the revisions from
  the first (never ``metadata.create_all``: the path users take is the one tested).
- ``unstamped``: made by gateway 0.1.0, the last release before migrations: every table
  and column of :data:`RELEASE_TABLES` is there and there is no revision.
  :func:`upgrade` stamps it :data:`FIRST_REVISION` (which is exactly that schema), then
  runs the revisions after it. Its rows are never touched by the stamp.
- ``current``: at the newest revision this gateway knows (:func:`head`).
- ``behind``: at an older revision; :func:`upgrade` runs the ones after it.
- ``unknown_revision``: at a revision this gateway does not know, made by a newer
  gateway. Refused: an older gateway cannot know what that schema means.
- ``foreign``: tables, but not the gateway's (or a 0.1.0 schema with tables or columns
  missing). Refused, never touched.

Only ``current`` may be used by the gateway's commands; ``gateway db upgrade`` turns the
first four into it and refuses the last two.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from gateway.domain.errors import SchemaMismatch

# The revision that is the schema of gateway 0.1.0 (versions/0001_initial.py).
FIRST_REVISION = "0001"
VERSION_TABLE = "alembic_version"

# Every table and column of gateway 0.1.0 (revision 0001): how a database that release
# made is recognised. History, like the revision itself: never change it when tables.py
# changes (a test checks that revision 0001 makes exactly these).
RELEASE_TABLES: Mapping[str, frozenset[str]] = {
    "accounts": frozenset(
        {
            "account",
            "address",
            "building",
            "phone",
            "debt",
            "receipt_code",
            "last_bill_total",
            "residents",
        }
    ),
    "registers": frozenset(
        {
            "id",
            "account",
            "meter",
            "service",
            "zone",
            "digits",
            "verified_until",
            "last_value",
            "last_date",
        }
    ),
    "tariffs": frozenset({"id", "service", "zone", "price", "valid_from", "normative"}),
    "elders": frozenset({"id", "email", "building"}),
    "messages": frozenset(
        {
            "id",
            "channel",
            "external_id",
            "sender",
            "text",
            "received_at",
            "status",
            "error_code",
            "account",
            "reply",
            "outcome",
        }
    ),
    "readings": frozenset(
        {
            "id",
            "register_id",
            "message_id",
            "value",
            "previous",
            "consumption",
            "taken_at",
            "taken_on",
            "days",
            "period",
            "status",
            "replaces_id",
            "review_note",
        }
    ),
    "outbox": frozenset(
        {
            "id",
            "reading_id",
            "register_id",
            "idempotency_key",
            "payload",
            "status",
            "attempts",
            "created_at",
            "next_attempt_at",
            "lease_until",
            "delivered_at",
            "last_error",
        }
    ),
    "billing_readings": frozenset(
        {
            "id",
            "idempotency_key",
            "reading_id",
            "kind",
            "replaces_key",
            "account",
            "meter",
            "zone",
            "period",
            "value",
            "received_at",
        }
    ),
}

UPGRADE_COMMAND = "gateway db upgrade"

# PostgreSQL: one upgrade at a time (two gateways starting together both run
# `gateway db upgrade`); the second waits, then finds the schema current.
_UPGRADE_LOCK = int.from_bytes(
    hashlib.sha256(b"gateway.storage.schema.upgrade").digest()[:8], "big", signed=True
)


class Status(StrEnum):
    EMPTY = "empty"
    UNSTAMPED = "unstamped"
    CURRENT = "current"
    BEHIND = "behind"
    UNKNOWN_REVISION = "unknown_revision"
    FOREIGN = "foreign"


@dataclass(frozen=True, slots=True)
class SchemaState:
    """What a database's schema is, compared with what this gateway needs."""

    status: Status
    # The revision the database is stamped with (None: empty, unstamped or foreign).
    revision: str | None
    # The newest revision this gateway knows: what it needs.
    head: str
    # For ``foreign``: what does not match.
    detail: str = ""

    @property
    def up_to_date(self) -> bool:
        return self.status is Status.CURRENT

    @property
    def upgradable(self) -> bool:
        """Whether :func:`upgrade` can bring it to :attr:`head`."""
        return self.status not in (Status.UNKNOWN_REVISION, Status.FOREIGN)

    def describe(self) -> str:
        """One sentence about the database ("it …"), with what to do when it cannot be
        used as it is. Never advice to delete it: its rows are the supplier's readings."""
        run = f"run `{UPGRADE_COMMAND}`"
        match self.status:
            case Status.CURRENT:
                return f"it is at revision {self.head}, the one this gateway needs"
            case Status.EMPTY:
                return f"it has no tables yet: {run} to create them"
            case Status.UNSTAMPED:
                return (
                    "it was made by gateway 0.1.0, before schema revisions: "
                    f"{run} to bring it to revision {self.head} (every row is kept)"
                )
            case Status.BEHIND:
                return f"it is at revision {self.revision}, this gateway needs {self.head}: {run}"
            case Status.UNKNOWN_REVISION:
                return (
                    f"it is at revision {self.revision}, which this gateway does not know "
                    f"(its newest is {self.head}): a newer gateway upgraded it; run that "
                    "version of the gateway"
                )
            case Status.FOREIGN:
                return (
                    f"its tables are not the gateway's ({self.detail}): set "
                    "GATEWAY_DATABASE_URL to the gateway's database, or to a new, empty one"
                )


@dataclass(frozen=True, slots=True)
class Upgraded:
    """What :func:`upgrade` did: the state it found, and the revision it left."""

    before: SchemaState
    revision: str

    @property
    def changed(self) -> bool:
        return not self.before.up_to_date or self.before.revision != self.revision

    def describe(self) -> str:
        match self.before.status:
            case Status.EMPTY:
                return f"created the schema at revision {self.revision}"
            case Status.UNSTAMPED:
                stamped = f"stamped the gateway 0.1.0 schema as revision {FIRST_REVISION}"
                if self.revision == FIRST_REVISION:
                    return f"{stamped}; no change to its tables"
                return f"{stamped}, upgraded to revision {self.revision}"
            case Status.BEHIND:
                return f"upgraded from revision {self.before.revision} to {self.revision}"
            case _:
                return f"already at revision {self.revision}, nothing to do"


def migrations_folder() -> Path:
    """The Alembic environment shipped in ``gateway/storage/migrations``."""
    folder = resources.files("gateway.storage.migrations")
    if not isinstance(folder, Path):  # a zipped install: Alembic needs real files
        raise RuntimeError(f"the migrations are not in a folder on disk: {folder}")
    return folder


def config(conn: Connection | None = None) -> Config:
    """Alembic's configuration in code; ``env.py`` runs the revisions on ``conn``."""
    cfg = Config()
    # ConfigParser would read a "%" in the path as interpolation.
    cfg.set_main_option("script_location", str(migrations_folder()).replace("%", "%%"))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision: the schema this gateway needs."""
    newest = _scripts().get_current_head()
    assert newest is not None, "no revisions in gateway/storage/migrations/versions"
    return newest


def revisions() -> list[str]:
    """Every revision this gateway knows, oldest first."""
    return [script.revision for script in reversed(list(_scripts().walk_revisions()))]


def current(conn: Connection) -> str | None:
    """The revision the database is stamped with, or None."""
    heads = MigrationContext.configure(conn).get_current_heads()
    return heads[0] if len(heads) == 1 else None


def state(conn: Connection) -> SchemaState:
    """Which of the states of this module's docstring the database is in."""
    newest = head()
    inspector = inspect(conn)
    tables = set(inspector.get_table_names())
    if VERSION_TABLE in tables:
        tables.discard(VERSION_TABLE)
        stamped = MigrationContext.configure(conn).get_current_heads()
        if len(stamped) > 1:
            return SchemaState(
                Status.FOREIGN, None, newest, f"several revisions at once: {', '.join(stamped)}"
            )
        if stamped:
            revision = stamped[0]
            if revision == newest:
                return SchemaState(Status.CURRENT, revision, newest)
            if revision in revisions():
                return SchemaState(Status.BEHIND, revision, newest)
            return SchemaState(Status.UNKNOWN_REVISION, revision, newest)
        # An empty version table: as if there were none.
    if not tables:
        return SchemaState(Status.EMPTY, None, newest)
    ours = sorted(tables & RELEASE_TABLES.keys())
    if not ours:
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        return SchemaState(Status.FOREIGN, None, newest, f"tables {shown}; none of the gateway's")
    missing = sorted(set(RELEASE_TABLES) - tables)
    for table in ours:
        columns = {column["name"] for column in inspector.get_columns(table)}
        missing += [f"{table}.{name}" for name in sorted(RELEASE_TABLES[table] - columns)]
    if missing:
        shown = ", ".join(missing[:8]) + (", …" if len(missing) > 8 else "")
        return SchemaState(Status.FOREIGN, None, newest, f"missing {shown}")
    return SchemaState(Status.UNSTAMPED, None, newest)


def upgrade(conn: Connection, target: str = "head") -> Upgraded:
    """Bring the database to ``target`` (the newest revision unless told): create an
    empty one, stamp one gateway 0.1.0 made, run the revisions it lacks. Raises
    :class:`SchemaMismatch` for a foreign database or one a newer gateway upgraded,
    without touching it. Running it again is a no-op.

    ``conn`` must not be in a transaction: the upgrade is one transaction of its own,
    committed when every revision has run and rolled back if one fails (both back ends
    have transactional DDL). On PostgreSQL a transaction-scoped advisory lock makes
    concurrent upgrades take turns; on SQLite ``BEGIN IMMEDIATE`` (how
    :class:`gateway.storage.Database` begins) does.

    SQLite: a revision that changes a column or a constraint rebuilds the table (Alembic's
    batch mode: a new table, the rows copied, the old one dropped, the new one renamed).
    Dropping a table other tables refer to fails while foreign keys are enforced, and they
    can only be switched off outside a transaction; so, as SQLite's documentation
    prescribes for this, they are off during the upgrade, every reference is checked with
    ``PRAGMA foreign_key_check`` before the commit (any dangling one rolls it all back), and
    they are switched back on after. The connection must be set up as ``Database`` sets up
    its own (``isolation_level=None`` in the driver, so that DDL is part of the
    transaction).
    """
    if conn.in_transaction():
        raise RuntimeError("schema.upgrade runs its own transaction: give it an idle connection")
    with _sqlite_foreign_keys_off(conn), conn.begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_UPGRADE_LOCK})")
        before = state(conn)
        if not before.upgradable:
            raise SchemaMismatch(before.describe())
        cfg = config(conn)
        try:
            if before.status is Status.UNSTAMPED:
                command.stamp(cfg, FIRST_REVISION)
            command.upgrade(cfg, target)
        except CommandError as exc:  # e.g. a target this gateway does not know
            raise SchemaMismatch(str(exc)) from exc
        if conn.dialect.name == "sqlite":
            dangling = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            if dangling:
                tables = ", ".join(sorted({str(row[0]) for row in dangling}))
                raise SchemaMismatch(
                    f"the upgrade would leave rows of {tables} referring to rows that do not "
                    "exist; nothing was changed"
                )
        revision = current(conn)
        assert revision is not None
        return Upgraded(before, revision)


@contextmanager
def _sqlite_foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite: foreign keys off while the block runs, as they were after it. A PRAGMA on
    the driver's connection: through SQLAlchemy it would begin a transaction first, and
    inside one SQLite ignores it."""
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    enforced = bool(raw.execute("PRAGMA foreign_keys").fetchone()[0])
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        if getattr(raw, "in_transaction", False):  # a failed COMMIT leaves it open
            raw.rollback()
        if enforced:
            raw.execute("PRAGMA foreign_keys = ON")
