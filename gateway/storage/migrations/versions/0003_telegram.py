"""The Telegram channel's own tables: updates, chat preferences, link attempts.

Revision ID: 0003
Revises: 0002
Created: 2026-11-25

- ``telegram_updates``: Telegram's updates as received, kept before they are
  acknowledged; a repeated delivery is recognised by its id, one left unprocessed is
  processed at the next start (``ix_telegram_updates_pending``).
- ``chats``: each chat's preferences (reminders on or off, blocked); a chat without a row
  has the defaults.
- ``link_attempts``: every attempt to prove a chat may link an account; wrong answers
  are counted per account (``ix_link_attempts_account``).

Only new tables: no row is touched, and on SQLite no table is rebuilt. As in 0001, column
types are written as the database stores them (``UTCDateTime`` is
``DateTime(timezone=True)``) and the Python side default of ``tables.py``
(``reminders``: true) is not a server default.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    """``UTCDateTime``."""
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "telegram_updates",
        sa.Column("update_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("processed_at", _utc(), nullable=True),
    )
    op.create_index(
        "ix_telegram_updates_pending", "telegram_updates", ["processed_at", "update_id"]
    )
    op.create_table(
        "chats",
        sa.Column("chat", sa.String(64), primary_key=True),
        sa.Column("reminders", sa.Boolean, nullable=False),
        sa.Column("blocked_at", _utc(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
    )
    op.create_table(
        "link_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("chat", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("at", _utc(), nullable=False),
    )
    op.create_index("ix_link_attempts_account", "link_attempts", ["account", "at"])


def downgrade() -> None:
    op.drop_index("ix_link_attempts_account", table_name="link_attempts")
    op.drop_table("link_attempts")
    op.drop_table("chats")
    op.drop_index("ix_telegram_updates_pending", table_name="telegram_updates")
    op.drop_table("telegram_updates")
