"""The SMPP channel and opt-outs: concatenated parts, submitted ids, receipts, СТОП.

Revision ID: 0004
Revises: 0003
Created: 2026-11-24

- ``smpp_parts``: parts of concatenated SMS kept before each is acknowledged to the
  operator; ``handled_at`` once the whole message was handled.
- ``smpp_submits``: the SMSC's id of each submitted segment and its outbound row, so a
  delivery receipt finds the row.
- ``outbound.receipt``, ``outbound.receipt_at``: what the delivery receipt said, when.
- ``opt_outs``: phones that sent СТОП/STOP.

New tables and two nullable columns: no row is touched (on SQLite ``outbound`` gains its
columns with ``ALTER TABLE … ADD COLUMN``, no rebuild).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    """``UTCDateTime``."""
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("outbound", sa.Column("receipt", sa.String(16), nullable=True))
    op.add_column("outbound", sa.Column("receipt_at", _utc(), nullable=True))
    op.create_table(
        "opt_outs",
        sa.Column("phone", sa.String(32), primary_key=True),
        sa.Column("since", _utc(), nullable=False),
    )
    op.create_table(
        "smpp_parts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("reference", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("handled_at", _utc(), nullable=True),
    )
    op.create_index("ix_smpp_parts_set", "smpp_parts", ["source", "reference", "total"])
    op.create_index("ix_smpp_parts_received", "smpp_parts", ["received_at"])
    op.create_table(
        "smpp_submits",
        sa.Column("smsc_id", sa.String(64), primary_key=True),
        sa.Column("outbound_id", sa.Integer, sa.ForeignKey("outbound.id"), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("smpp_submits")
    op.drop_index("ix_smpp_parts_received", table_name="smpp_parts")
    op.drop_index("ix_smpp_parts_set", table_name="smpp_parts")
    op.drop_table("smpp_parts")
    op.drop_table("opt_outs")
    with op.batch_alter_table("outbound") as batch:
        batch.drop_column("receipt_at")
        batch.drop_column("receipt")
