"""The messages' sender index leads with the sender: (sender, channel, received_at).

Revision ID: 0006
Revises: 0005
Created: 2026-11-24

Led by the channel, the index matched ``channel = …`` alone. On PostgreSQL without
statistics (a new database, until autovacuum's first ANALYZE) the planner then looked
a batch's delivery ids up through it, the channel as its only condition: every message
of the channel, read for each batch. Led by the sender, it still answers every query by
sender (with or without the channel), and only the unique (channel, external_id) index
matches a lookup by delivery id. The index is rebuilt; no row is touched.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_messages_sender_time", table_name="messages")
    op.create_index("ix_messages_sender_time", "messages", ["sender", "channel", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_sender_time", table_name="messages")
    op.create_index("ix_messages_sender_time", "messages", ["channel", "sender", "received_at"])
