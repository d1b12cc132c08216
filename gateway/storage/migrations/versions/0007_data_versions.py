"""The tariffs' version: a counter that every change of the tariffs table moves.

Revision ID: 0007
Revises: 0006
Created: 2026-11-24

Each gateway process keeps the tariffs in memory (every accepted message is charged with
them) instead of reading them in each unit of work: on PostgreSQL one statement, and one
round trip, less per batch of messages. The copy is kept only while the tariffs' row of
``data_versions`` has the number it was read at; a trigger on ``tariffs`` adds one to it
at every insert, update or delete, whoever makes it (``gateway import``, another process,
an operator's SQL), so a change is seen by the next message in every process. The
tariffs themselves are not touched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BUMP = "UPDATE data_versions SET version = version + 1 WHERE name = 'tariffs'"
# SQLite has row triggers only: one per kind of change.
_SQLITE_EVENTS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    versions = op.create_table(
        "data_versions",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.bulk_insert(versions, [{"name": "tariffs", "version": 1}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION gateway_tariffs_changed() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN {_BUMP}; RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER tariffs_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            "ON tariffs FOR EACH STATEMENT EXECUTE FUNCTION gateway_tariffs_changed()"
        )
    else:
        for event in _SQLITE_EVENTS:
            op.execute(
                f"CREATE TRIGGER tariffs_changed_{event.lower()} AFTER {event} ON tariffs "
                f"BEGIN {_BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER tariffs_changed ON tariffs")
        op.execute("DROP FUNCTION gateway_tariffs_changed()")
    else:
        for event in _SQLITE_EVENTS:
            op.execute(f"DROP TRIGGER tariffs_changed_{event.lower()}")
    op.drop_table("data_versions")
