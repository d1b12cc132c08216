"""Outbound messages, chat links, accounts looked up by phone.

Revision ID: 0002
Revises: 0001
Created: 2026-11-24

- ``outbound``: messages sent later than the synchronous reply (review decisions,
  reminders, list reports), drained channel by channel by a background sender.
- ``chat_links``: which accounts a chat (Telegram) may act on.
- ``ix_accounts_phone``: the intake finds the accounts of a message by its sender's phone.

Only new tables and an index: no row of a 0.1.0 database is touched, and on SQLite no
table is rebuilt. As in 0001, column types are written as the database stores them
(``UTCDateTime`` is ``DateTime(timezone=True)``) and the Python side defaults of
``tables.py`` (``"queued"``, ``0``) are not server defaults.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    """``UTCDateTime``."""
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_index("ix_accounts_phone", "accounts", ["phone"])
    op.create_table(
        "chat_links",
        sa.Column("chat", sa.String(64), primary_key=True),
        sa.Column("account", sa.String(32), sa.ForeignKey("accounts.account"), primary_key=True),
        sa.Column("linked_at", _utc(), nullable=False),
    )
    op.create_index("ix_chat_links_account", "chat_links", ["account"])
    op.create_table(
        "outbound",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("next_attempt_at", _utc(), nullable=True),
        sa.Column("lease_until", _utc(), nullable=True),
        sa.Column("sent_at", _utc(), nullable=True),
        sa.Column("provider_id", sa.String(128), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_outbound_due", "outbound", ["status", "channel", "id"])
    op.create_index("ix_outbound_message", "outbound", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_outbound_message", table_name="outbound")
    op.drop_index("ix_outbound_due", table_name="outbound")
    op.drop_table("outbound")
    op.drop_index("ix_chat_links_account", table_name="chat_links")
    op.drop_table("chat_links")
    op.drop_index("ix_accounts_phone", table_name="accounts")
