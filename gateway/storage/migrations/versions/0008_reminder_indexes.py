"""Indexes for the reminders' check: the outbound queue by channel and kind, the readings
by the message they came in.

Revision ID: 0008
Revises: 0007
Created: 2026-11-24

On the first day of each window the reminders' check runs every minute until its hour
is over. It asks two things, and no index answered either:

- who was already reminded this period: the recipients of the channel's messages of kind
  ``reminder:PERIOD``. Each check read the whole outbound queue, which keeps every message
  ever queued (every chat reply, every reminder, every notice): about 100 ms at a million
  rows on SQLite. ``ix_outbound_kind`` (channel, kind, recipient) answers it from the
  period's reminders alone.
- which chats sent no reading this period: for each linked chat, its messages, and for
  each message whether a reading of the period came in it. Readings had no index by
  message, so SQLite built a temporary one from every reading of the period at each
  check (350–380 ms at a million readings and 5,000 chats). ``ix_readings_message``
  (message_id, period) answers it by seeks: about 10 ms. (PostgreSQL plans it by its
  statistics; for thousands of chats it hashes the period's readings, and in a backend
  of its own that holds up no other work.)

On SQLite both ran on the writer thread, which every webhook waits for, on the busiest
day of the month. No row is touched.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbound_kind", "outbound", ["channel", "kind", "recipient"])
    op.create_index("ix_readings_message", "readings", ["message_id", "period"])


def downgrade() -> None:
    op.drop_index("ix_readings_message", table_name="readings")
    op.drop_index("ix_outbound_kind", table_name="outbound")
