"""What ``/metrics`` reports of a queue (billing's outbox, the outbound messages), read so
that a scrape costs the same whatever the queue has done before.

A queue's rows stay after they are done (delivered, sent): the record of every reading
forwarded and every message sent, which grows for as long as the gateway runs. The
gauges read only the rows still waiting and those that failed, from the entries of the
queue's status index for those two statuses: a scrape of a queue holding a million
delivered rows no longer counts them (about 65 ms a scrape on SQLite, on the one writer
thread every webhook waits for). ``gateway outbox`` and ``gateway outbound`` still count
every status: an operator asks for that now and then, not every few seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, Table, func, select
from sqlalchemy.engine import Connection

FAILED = "failed"


class QueueGauge(NamedTuple):
    waiting: int
    failed: int
    oldest_waiting_seconds: float | None


def gauge_statements(table: Table, waiting: str) -> tuple[Select[Any], Select[Any]]:
    """The counts of the ``waiting`` and failed rows by status, and the oldest waiting
    row's time: both read the status index for those statuses only."""
    status = table.c.status
    counts = select(status, func.count()).where(status.in_((waiting, FAILED))).group_by(status)
    oldest = select(func.min(table.c.created_at)).where(status == waiting)
    return counts, oldest


def queue_gauge(conn: Connection, table: Table, waiting: str, now: datetime) -> QueueGauge:
    counts_statement, oldest_statement = gauge_statements(table, waiting)
    counts = {str(s): int(n) for s, n in conn.execute(counts_statement)}
    oldest = conn.scalar(oldest_statement)
    return QueueGauge(
        counts.get(waiting, 0),
        counts.get(FAILED, 0),
        None if oldest is None else (now - oldest).total_seconds(),
    )
