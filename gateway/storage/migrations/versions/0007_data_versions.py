"""The tariffs' version: a token that every change of the tariffs table replaces.

Revision ID: 0007
Revises: 0006
Created: 2026-11-24

Each gateway process keeps the tariffs in memory (every accepted message is charged with
them) instead of reading them in each unit of work: on PostgreSQL one statement, and one
round trip, less per batch of messages. The copy is kept only while the tariffs' row of
``data_versions`` has the version it was read at; a trigger on ``tariffs`` gives it a new
random one at every insert, update or delete, whoever makes it (``gateway import``,
another process, an operator's SQL), so a change is seen by the next message in every
process. Random, not a counter: a change rolled back must not leave its version to be
taken again by the next change, with other tariffs. The tariffs themselves are not
touched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 128 random bits, as 32 hexadecimal digits.
_NEW_VERSION = {
    "postgresql": "md5(random()::text || clock_timestamp()::text)",
    "sqlite": "lower(hex(randomblob(16)))",
}
_BUMP = "UPDATE data_versions SET version = {} WHERE name = 'tariffs'"
# SQLite has row triggers only: one per kind of change.
_SQLITE_EVENTS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    versions = op.create_table(
        "data_versions",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("version", sa.String(32), nullable=False),
    )
    op.bulk_insert(versions, [{"name": "tariffs", "version": "0"}])
    dialect = op.get_bind().dialect.name
    bump = _BUMP.format(_NEW_VERSION[dialect])
    if dialect == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION gateway_tariffs_changed() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN {bump}; RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER tariffs_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            "ON tariffs FOR EACH STATEMENT EXECUTE FUNCTION gateway_tariffs_changed()"
        )
    else:
        for event in _SQLITE_EVENTS:
            op.execute(
                f"CREATE TRIGGER tariffs_changed_{event.lower()} AFTER {event} ON tariffs "
                f"BEGIN {bump}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER tariffs_changed ON tariffs")
        op.execute("DROP FUNCTION gateway_tariffs_changed()")
    else:
        for event in _SQLITE_EVENTS:
            op.execute(f"DROP TRIGGER tariffs_changed_{event.lower()}")
    op.drop_table("data_versions")
