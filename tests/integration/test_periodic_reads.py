"""What runs over and over — ``/metrics`` at every scrape (the queues' gauges of
gateway.storage.gauges), the reminders' check every minute of a window's first day —
reads the rows it needs, not every row the tables ever held: on SQLite it runs on the
writer thread every webhook waits for."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import Select, Table, update

from gateway.bootstrap import Gateway
from gateway.domain.store import Outbound
from gateway.storage import UnitOfWork
from gateway.storage import tables as t
from gateway.storage.chats import _TO_REMIND
from gateway.storage.gauges import QueueGauge, gauge_statements
from gateway.storage.outbound import RECIPIENTS, SqlOutboundQueue
from gateway.storage.outbox_store import SqlOutboxStore
from tests.conftest import Clock
from tests.integration.test_intake import send


async def _mark(gw: Gateway, table: Table, ids: list[int], status: str) -> None:
    def work(uow: UnitOfWork) -> None:
        uow.conn.execute(update(table).where(table.c.id.in_(ids)).values(status=status))

    await gw.db.run(work)


async def test_the_outboxs_gauge_counts_pending_and_failed_rows_as_its_status_does(
    gw: Gateway, clock: Clock
) -> None:
    for text in ("1234567890 12100 6550", "1234567891 4600", "1234567892 121 99"):
        assert (await send(gw, text)).status == "accepted"
        clock.advance(minutes=3)
    ids = [row.id for row in await gw.db.run(lambda uow: uow.conn.execute(t.outbox.select()))]
    assert len(ids) == 5
    await _mark(gw, t.outbox, ids[:2], "delivered")
    await _mark(gw, t.outbox, ids[2:3], "failed")
    store = SqlOutboxStore(gw.db)
    now = gw.clock()

    gauge = await store.gauge(now)
    status = await store.status(now)

    assert gauge == QueueGauge(2, 1, status.oldest_pending_seconds)
    assert (status.pending, status.failed, status.delivered) == (2, 1, 2)
    # The oldest pending row is the second message's (the first's rows are delivered).
    assert gauge.oldest_waiting_seconds == 3 * 60


async def test_the_outbound_queues_gauge_counts_queued_and_failed_messages(gw: Gateway) -> None:
    def queue(uow: UnitOfWork) -> list[int]:
        return [
            uow.outbound.queue(Outbound("sms", f"+7912000000{i}", "Решение", "reminder"), at)
            for i, at in enumerate(gw.clock() - timedelta(minutes=m) for m in (9, 5, 1))
        ]

    ids = await gw.db.run(queue)
    await _mark(gw, t.outbound, ids[:1], "sent")
    await _mark(gw, t.outbound, ids[2:], "failed")
    queue_store = SqlOutboundQueue(gw.db)

    gauge = await queue_store.gauge(gw.clock())
    status = await queue_store.status(gw.clock())

    assert gauge == QueueGauge(1, 1, 5 * 60)
    assert (status.queued, status.sent, status.failed) == (1, 1, 1)
    assert gauge.oldest_waiting_seconds == status.oldest_queued_seconds


def _plan(uow: UnitOfWork, statement: Select[Any], params: dict[str, Any]) -> str:
    """SQLite's plan of ``statement`` with ``params``, one line per step."""
    compiled = statement.compile(
        dialect=uow.conn.dialect, compile_kwargs={"render_postcompile": True}
    )
    values = compiled.construct_params(params)
    given = tuple(values[name] for name in compiled.positiontup or ())
    rows = uow.conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, given)
    return "\n".join(str(row[-1]) for row in rows)


async def test_the_gauges_read_the_status_index_not_every_row_done(gw: Gateway) -> None:
    """SQLite's plan (PostgreSQL's depends on its statistics): each statement seeks the
    waiting and failed entries of the status index; counting every status read every
    delivered row, about 65 ms a scrape at a million of them."""
    if not gw.db.is_sqlite:
        return
    for table, waiting in ((t.outbox, "pending"), (t.outbound, "queued")):
        for statement in gauge_statements(table, waiting):
            found = await gw.db.run(partial(_plan, statement=statement, params={}))
            assert "SEARCH" in found and "SCAN" not in found, (table.name, found)


async def test_the_reminders_check_reads_the_periods_reminders_not_the_whole_queue(
    gw: Gateway,
) -> None:
    """SQLite's plan: the channel's and kind's entries of ix_outbound_kind, which hold
    the recipients (revision 0008); before it, a scan of every message ever queued."""
    if not gw.db.is_sqlite:
        return
    params = {"channel": "telegram", "kind": "reminder:2026-11"}
    found = await gw.db.run(partial(_plan, statement=RECIPIENTS, params=params))
    assert "COVERING INDEX ix_outbound_kind" in found and "SCAN" not in found, found


async def test_the_reminders_check_seeks_a_chats_readings_of_the_period(gw: Gateway) -> None:
    """SQLite's plan: each linked chat's messages, then their readings of the period by
    ix_readings_message (revision 0008); before it, SQLite built a temporary index from
    every reading of the period at each check."""
    if not gw.db.is_sqlite:
        return
    params = {"channel": "telegram", "period": "2026-11"}
    found = await gw.db.run(partial(_plan, statement=_TO_REMIND, params=params))
    assert "ix_readings_message (message_id=? AND period=?)" in found, found
    assert "AUTOMATIC" not in found, found
