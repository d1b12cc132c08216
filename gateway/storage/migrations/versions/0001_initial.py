"""The schema of gateway 0.1.0, the last release made without migrations.

Revision ID: 0001
Revises:
Created: 2026-11-24

Exactly what 0.1.0's ``metadata.create_all`` made: every table, column, type,
nullability, index, unique constraint and foreign key of ``gateway/storage/tables.py``
as 0.1.0 shipped it. A database 0.1.0 made (no ``alembic_version`` table) is recognised
by :data:`gateway.storage.schema.RELEASE_TABLES` and stamped ``0001`` instead of being
created again.

Column types are written as the database stores them, not with the TypeDecorators of
``tables.py``: a revision is history and must make the same tables forever, whatever
``tables.py`` becomes later. ``ExactDecimal`` is NUMERIC(20, 6) where the database has an
exact decimal and VARCHAR(40) on SQLite; ``UTCDateTime`` is ``DateTime(timezone=True)``
(what Python converts on the way in and out is no business of the schema). The Python
side defaults of ``tables.py`` (``default=""``, ``"pending"``, ``0``) never reached the
database, so there are no server defaults here either.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _decimal() -> sa.types.TypeEngine[Decimal]:
    """``ExactDecimal`` of 0.1.0: NUMERIC(20, 6), text of up to 40 characters on SQLite."""
    return sa.Numeric(20, 6).with_variant(sa.String(40), "sqlite")


def _utc() -> sa.DateTime:
    """``UTCDateTime`` of 0.1.0."""
    return sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account", sa.String(32), primary_key=True),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("building", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("debt", _decimal(), nullable=False),
        sa.Column("receipt_code", sa.String(64), nullable=False),
        sa.Column("last_bill_total", _decimal(), nullable=True),
        sa.Column("residents", sa.Integer, nullable=True),
    )
    op.create_table(
        "registers",
        _id(),
        sa.Column("account", sa.String(32), sa.ForeignKey("accounts.account"), nullable=False),
        sa.Column("meter", sa.String(64), nullable=False),
        sa.Column("service", sa.String(16), nullable=False),
        sa.Column("zone", sa.String(16), nullable=False),
        sa.Column("digits", sa.String(8), nullable=False),
        sa.Column("verified_until", sa.Date, nullable=True),
        sa.Column("last_value", _decimal(), nullable=True),
        sa.Column("last_date", sa.Date, nullable=True),
        sa.UniqueConstraint("account", "meter", "zone", name="uq_register"),
    )
    op.create_table(
        "tariffs",
        _id(),
        sa.Column("service", sa.String(16), nullable=False),
        sa.Column("zone", sa.String(16), nullable=False),
        sa.Column("price", _decimal(), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("normative", _decimal(), nullable=True),
        sa.UniqueConstraint("service", "zone", "valid_from", name="uq_tariff"),
    )
    op.create_table(
        "elders",
        _id(),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("building", sa.String(64), nullable=False),
        sa.UniqueConstraint("email", "building", name="uq_elder"),
    )
    op.create_table(
        "messages",
        _id(),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=True),
        sa.Column("sender", sa.String(254), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("account", sa.String(32), nullable=True),
        sa.Column("reply", sa.Text, nullable=True),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.UniqueConstraint("channel", "external_id", name="uq_message_external_id"),
    )
    op.create_index("ix_messages_sender_time", "messages", ["channel", "sender", "received_at"])
    op.create_table(
        "readings",
        _id(),
        sa.Column("register_id", sa.Integer, sa.ForeignKey("registers.id"), nullable=False),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("value", _decimal(), nullable=False),
        sa.Column("previous", _decimal(), nullable=True),
        sa.Column("consumption", _decimal(), nullable=False),
        sa.Column("taken_at", _utc(), nullable=False),
        sa.Column("taken_on", sa.Date, nullable=False),
        sa.Column("days", sa.Integer, nullable=True),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("replaces_id", sa.Integer, sa.ForeignKey("readings.id"), nullable=True),
        sa.Column("review_note", sa.Text, nullable=True),
    )
    op.create_index("ix_readings_register", "readings", ["register_id", "id"])
    op.create_index("ix_readings_register_period", "readings", ["register_id", "period", "status"])
    op.create_table(
        "outbox",
        _id(),
        sa.Column(
            "reading_id",
            sa.Integer,
            sa.ForeignKey("readings.id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("register_id", sa.Integer, sa.ForeignKey("registers.id"), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("next_attempt_at", _utc(), nullable=True),
        sa.Column("lease_until", _utc(), nullable=True),
        sa.Column("delivered_at", _utc(), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_outbox_status", "outbox", ["status", "id"])
    op.create_index("ix_outbox_register", "outbox", ["register_id", "status", "id"])
    op.create_table(
        "billing_readings",
        _id(),
        sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
        sa.Column("reading_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("replaces_key", sa.String(64), nullable=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("meter", sa.String(64), nullable=False),
        sa.Column("zone", sa.String(16), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("value", _decimal(), nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "billing_readings",
        "outbox",
        "readings",
        "messages",
        "elders",
        "tariffs",
        "registers",
        "accounts",
    ):
        op.drop_table(table)
