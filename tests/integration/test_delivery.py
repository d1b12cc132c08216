"""The outbox relay against a loopback billing fake that fails for a while, then recovers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from billing_bridge.delivery import OutboxRelay, RelayPolicy, RelayReport
from billing_bridge.http_billing import HttpBilling
from gateway.bootstrap import Gateway, gateway
from gateway.domain.outbox import Settled, Verdict
from gateway.settings import Settings
from gateway.storage import outbox_store
from gateway.storage import tables as t
from gateway.storage.outbox_store import EmbeddedBilling, SqlOutboxStore
from tests.conftest import (
    START,
    Clock,
    explain,
    load_registry,
    loopback,
    never_analyzed,
    select_rows,
)
from tests.integration.test_intake import send


@dataclass
class FakeBilling:
    """Billing's readings API. ``script`` says how to answer the next requests:
    "500", "503", "429:<seconds>", "slow" (beyond the client timeout), "400", "hold"
    (record, then never answer); when empty: store the reading (201), or 409 for a key
    it already has (noted in ``repeats``). While ``down``, every request gets 503."""

    script: list[str] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    store: dict[str, dict[str, Any]] = field(default_factory=dict)
    repeats: list[str] = field(default_factory=list)
    down: bool = False
    url: str = ""
    # Called with each request's key before answering (a test's look at the gateway).
    on_request: Callable[[str], Awaitable[None]] | None = None

    async def readings(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        body = await request.json()
        self.requests.append((key, body))
        if self.on_request is not None:
            await self.on_request(key)
        if self.down:
            return web.json_response({"error": "maintenance"}, status=503)
        step = self.script.pop(0) if self.script else "ok"
        if step in ("500", "503", "400"):
            return web.json_response({"error": step}, status=int(step))
        if step.startswith("429"):
            return web.json_response({}, status=429, headers={"Retry-After": step[4:]})
        if step in ("slow", "hold"):
            if step == "hold":
                self.store[key] = body  # billing has it, but the answer never comes
            await asyncio.sleep(30)
        if key in self.store:
            self.repeats.append(key)
            return web.json_response({"error": "duplicate"}, status=409)
        self.store[key] = body
        return web.json_response({"id": key}, status=201)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/readings", self.readings)
        return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def billing() -> AsyncIterator[FakeBilling]:
    fake = FakeBilling()
    async with loopback(fake.app()) as fake.url:
        yield fake


def relayed(settings: Settings, url: str) -> Settings:
    return replace(settings, billing_url=url, billing_timeout=0.3, relay_backoff_cap=300.0)


@pytest.fixture
async def billed(
    settings: Settings, clock: Clock, tmp_path: Path, billing: FakeBilling
) -> AsyncIterator[Gateway]:
    """A gateway that delivers to the billing fake, with the standard registry loaded."""
    async with gateway(relayed(settings, billing.url), clock) as gw:
        await load_registry(gw, tmp_path)
        yield gw


async def fill_outbox(gw: Gateway) -> list[dict[str, Any]]:
    """Readings of three accounts, one corrected: six outbox rows, two for one register."""
    for text in (
        "1234567891 4600",
        "1234567890 12345 6789",
        "1234567891 4610",
        "1234567892 121 99",
    ):
        assert (await send(gw, text)).status == "accepted"
    return await select_rows(gw.db, t.outbox)


async def drain(gw: Gateway, clock: Clock, passes: int = 30) -> None:
    """Run relay passes, moving the clock past any back-off, until nothing is pending."""
    store = SqlOutboxStore(gw.db)
    async with gw.relay() as relay:
        for _ in range(passes):
            await relay.run_once()
            if (await store.status(clock())).pending == 0:
                return
            clock.advance(seconds=301)
    raise AssertionError("the outbox did not drain")


async def test_every_reading_arrives_exactly_once_in_order_despite_failures(
    billed: Gateway, clock: Clock, billing: FakeBilling
) -> None:
    billing.script = ["500", "503", "429:0", "slow", "500", "429:2", "503"]
    rows = await fill_outbox(billed)

    await drain(billed, clock)

    assert sorted(billing.store) == sorted(r["idempotency_key"] for r in rows)
    stored_order = [body["reading_id"] for body in billing.store.values()]
    for register in {r["register_id"] for r in rows}:
        ids = [r["reading_id"] for r in rows if r["register_id"] == register]
        assert [i for i in stored_order if i in ids] == ids
    statuses = {r["status"] for r in await select_rows(billed.db, t.outbox)}
    assert statuses == {"delivered"}


async def test_connection_refused_is_retried_until_billing_comes_up(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with gateway(relayed(settings, url), clock) as gw:
        await load_registry(gw, tmp_path)
        await send(gw, "1234567891 4600")
        async with gw.relay() as relay:
            report = await relay.run_once()
        assert (report.delivered, report.retried) == (0, 1)
        (row,) = await select_rows(gw.db, t.outbox)
        assert row["last_error"].startswith("network:")

        fake = FakeBilling()
        runner = web.AppRunner(fake.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await drain(gw, clock)
        finally:
            await runner.cleanup()
        assert list(fake.store) == [row["idempotency_key"]]


async def test_a_refused_reading_is_failed_and_shown_a_repeat_counts_as_delivered(
    billed: Gateway, clock: Clock, billing: FakeBilling
) -> None:
    await send(billed, "1234567891 4600")
    await send(billed, "1234567892 121 99")
    first, *_ = await select_rows(billed.db, t.outbox)
    billing.store[first["idempotency_key"]] = {}  # billing had the first one already
    billing.script = ["409", "400"]

    async with billed.relay() as relay:
        report = await relay.run_once()
    state = await SqlOutboxStore(billed.db).status(clock())

    assert (report.delivered, report.failed) == (2, 1)
    assert (state.pending, state.failed, state.delivered) == (0, 1, 2)
    assert state.failures[0][2].startswith("HTTP 400")


async def test_two_relays_at_once_never_send_a_row_twice(
    billed: Gateway, clock: Clock, billing: FakeBilling
) -> None:
    rows = await fill_outbox(billed)
    async with billed.relay() as one, billed.relay() as two:
        for _ in range(3):
            await asyncio.gather(one.run_once(), two.run_once())

    keys = [key for key, _ in billing.requests]
    assert sorted(keys) == sorted(r["idempotency_key"] for r in rows)


async def test_serve_delivers_in_the_background(
    settings: Settings, clock: Clock, tmp_path: Path, billing: FakeBilling
) -> None:
    configured = replace(relayed(settings, billing.url), relay_interval=0.05)
    async with gateway(configured, clock) as gw:
        await load_registry(gw, tmp_path)
        async with loopback(gw.web_app()):
            await send(gw, "1234567891 4600")
            for _ in range(100):
                if billing.store:
                    break
                await asyncio.sleep(0.05)
    assert [body["value"] for body in billing.store.values()] == ["4600"]


async def test_a_relay_killed_mid_delivery_repeats_the_same_key_not_a_new_reading(
    settings: Settings, clock: Clock, tmp_path: Path, billing: FakeBilling
) -> None:
    async with gateway(settings, clock) as gw:
        await load_registry(gw, tmp_path)
        await send(gw, "1234567891 4600")
    billing.script = ["hold"]
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": settings.database_url,
        "GATEWAY_BILLING_URL": billing.url,
        "GATEWAY_BILLING_TIMEOUT": "60",
        "GATEWAY_RELAY_BATCH": "8",
        "GATEWAY_LOG_FORMAT": "json",
    }
    relay = subprocess.Popen(
        [sys.executable, "-m", "gateway", "outbox", "relay", "--once"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):  # until billing has the request in hand
            if billing.requests:
                break
            await asyncio.sleep(0.05)
        assert billing.requests, "the relay never called billing"
        relay.send_signal(signal.SIGKILL)
    finally:
        relay.wait(timeout=10)

    # The killed relay leased the row by wall time; look again after that lease ends.
    clock.now = datetime.now(UTC) + timedelta(minutes=10)
    async with gateway(relayed(settings, billing.url), clock) as gw:
        await drain(gw, clock)
        (row,) = await select_rows(gw.db, t.outbox)

    (first_key, _), (second_key, _) = billing.requests
    assert first_key == second_key == row["idempotency_key"]
    assert len(billing.store) == 1
    assert row["status"] == "delivered"


async def test_embedded_billing_keeps_one_row_per_key(gw: Gateway, clock: Clock) -> None:
    await send(gw, "1234567891 4600")
    await send(gw, "1234567891 4610")

    await drain(gw, clock)
    await drain(gw, clock)

    held = await select_rows(gw.db, t.billing_readings)
    assert [(r["kind"], r["value"]) for r in held] == [("reading", 4600), ("correction", 4610)]
    assert json.loads((await select_rows(gw.db, t.outbox))[1]["payload"])["kind"] == "correction"


async def test_embedded_billing_holds_what_the_payloads_say(gw: Gateway, clock: Clock) -> None:
    """The relay's pass to the embedded billing is set-based (each batch claimed, stored
    and marked delivered by statements in one transaction): billing's rows are still
    exactly what each outbox row's payload says, as an HTTP billing would be sent it —
    fractions, a correction naming the key it replaces, timestamps — on each database."""
    for text in ("1234567890 12345 6789", "1234567891 4600", "1234567892 121.75 99.5"):
        assert (await send(gw, text)).status == "accepted"
    clock.advance(seconds=30)
    assert (await send(gw, "1234567891 4610")).status == "accepted"  # a correction
    clock.advance(seconds=30)
    delivered_at = clock()

    async with gw.relay() as relay:
        report = await relay.run_once()

    outbox = await select_rows(gw.db, t.outbox)
    assert report.delivered == len(outbox) == 6
    assert all(r["status"] == "delivered" for r in outbox)
    assert {r["delivered_at"] for r in outbox} == {delivered_at}
    assert all(r["lease_until"] is None and r["attempts"] == 0 for r in outbox)
    expected = []
    for row in outbox:
        payload = json.loads(row["payload"])
        replaces = payload["replaces"]
        expected.append(
            {
                "idempotency_key": row["idempotency_key"],
                "reading_id": payload["reading_id"],
                "kind": payload["kind"],
                "replaces_key": replaces and replaces["idempotency_key"],
                "account": payload["account"],
                "meter": payload["meter"],
                "zone": payload["zone"],
                "period": payload["period"],
                "value": Decimal(payload["value"]),
                "received_at": delivered_at,
            }
        )
    held = [
        {k: v for k, v in r.items() if k != "id"}
        for r in await select_rows(gw.db, t.billing_readings)
    ]
    assert sorted(held, key=lambda r: r["reading_id"]) == expected
    # Stored in the outbox's order too: a register's rows, a correction after what it replaces.
    assert held == expected
    assert [r["value"] for r in expected] == [12345, 6789, 4600, Decimal("121.75"), 99.5, 4610]
    assert expected[-1]["kind"] == "correction"
    assert expected[-1]["replaces_key"] == expected[2]["idempotency_key"]


async def test_two_relays_to_the_embedded_billing_at_once_deliver_each_row_once(
    gw: Gateway, clock: Clock
) -> None:
    """Batches of one row, two relays' passes at once, however their transactions
    interleave: every row is delivered by exactly one of them, and billing holds each key
    once. (Whether the second pass gets a row depends on how soon its connection is ready;
    the next test makes PostgreSQL's skipping certain.)"""
    rows = await fill_outbox(gw)
    relays = [
        OutboxRelay(
            SqlOutboxStore(gw.db), EmbeddedBilling(gw.db, clock), clock, RelayPolicy(batch=1)
        )
        for _ in range(2)
    ]

    reports = await asyncio.gather(*(relay.run_once() for relay in relays))

    assert sum(r.delivered for r in reports) == len(rows)
    held = await select_rows(gw.db, t.billing_readings)
    assert sorted(r["idempotency_key"] for r in held) == sorted(r["idempotency_key"] for r in rows)
    assert {r["status"] for r in await select_rows(gw.db, t.outbox)} == {"delivered"}


async def test_a_pass_to_the_embedded_billing_skips_a_row_another_relay_holds(
    gw: Gateway, clock: Clock
) -> None:
    """PostgreSQL: while another transaction holds a row (a second relay in its pass), a
    pass delivers every other row that is due without waiting for it, and leaves the
    holder's row, and its register's later row, to the next pass."""
    if gw.db.is_sqlite:
        pytest.skip("SQLite has one writer: transactions never overlap")
    rows = await fill_outbox(gw)
    held_row = rows[0]["id"]
    behind = [r["id"] for r in rows if r["register_id"] == rows[0]["register_id"]][1:]
    assert len(behind) == 1  # the correction of the held row's reading
    relay = OutboxRelay(
        SqlOutboxStore(gw.db), EmbeddedBilling(gw.db, clock), clock, RelayPolicy(batch=1)
    )
    engine = create_async_engine(gw.settings.database_url)
    try:
        async with engine.connect() as holder:
            await holder.begin()
            await holder.exec_driver_sql(
                "SELECT id FROM outbox WHERE id = $1 FOR UPDATE", (held_row,)
            )
            during = await asyncio.wait_for(relay.run_once(), timeout=10)
            await holder.commit()
    finally:
        await engine.dispose()
    delivered = {r["id"] for r in await select_rows(gw.db, t.outbox) if r["status"] == "delivered"}
    after = await relay.run_once()

    assert during.delivered == len(rows) - 2
    assert delivered == {r["id"] for r in rows} - {held_row, *behind}
    assert after.delivered == 2
    held = [r["idempotency_key"] for r in await select_rows(gw.db, t.billing_readings)]
    assert sorted(held) == sorted(r["idempotency_key"] for r in rows)


async def test_a_row_claimed_late_in_a_long_pass_is_leased_from_its_claim(
    gw: Gateway, clock: Clock
) -> None:
    """A pass that began two minutes ago still leases for the full lease from now, so
    another relay cannot take the row while this one is sending it."""
    await send(gw, "1234567891 4600")
    store = SqlOutboxStore(gw.db)
    started = clock()
    clock.advance(seconds=120)

    (item,) = await store.claim(clock(), 10, 60.0, due_by=started)
    clock.advance(seconds=1)

    assert await store.claim(clock(), 10, 60.0, due_by=clock()) == []
    (row,) = await select_rows(gw.db, t.outbox)
    assert row["lease_until"] == started + timedelta(seconds=180)
    assert item.id == row["id"]


async def test_a_row_due_after_the_pass_began_waits_for_the_next_pass(
    gw: Gateway, clock: Clock
) -> None:
    await send(gw, "1234567891 4600")
    store = SqlOutboxStore(gw.db)
    started = clock()
    (item,) = await store.claim(started, 10, 60.0, due_by=started)
    await store.settle([Settled(item, Verdict.RETRY, "HTTP 503", started + timedelta(seconds=1))])
    clock.advance(seconds=5)

    assert await store.claim(clock(), 10, 60.0, due_by=started) == []
    assert len(await store.claim(clock(), 10, 60.0, due_by=clock())) == 1


async def test_a_row_written_after_the_pass_began_waits_for_the_next_pass(
    gw: Gateway, clock: Clock
) -> None:
    """Under load a pass takes what was written before it began, in whole batches; a
    pass that chased every new row would claim a few at a time, three transactions each."""
    await send(gw, "1234567890 12345 6789")
    started = clock()
    clock.advance(seconds=1)
    await send(gw, "1234567891 4600")  # arrives while the pass runs
    store = SqlOutboxStore(gw.db)

    during = await store.claim(clock(), 10, 60.0, due_by=started)
    after = await store.claim(clock(), 10, 60.0, due_by=clock())

    assert [item.payload["account"] for item in during] == ["1234567890", "1234567890"]
    assert [item.payload["account"] for item in after] == ["1234567891"]


async def test_a_row_claimed_but_never_sent_is_given_back_untouched(
    gw: Gateway, clock: Clock
) -> None:
    """The circuit opened before its turn: no attempt charged, due time and error kept."""
    await send(gw, "1234567891 4600")
    store = SqlOutboxStore(gw.db)
    (item,) = await store.claim(clock(), 10, 60.0, due_by=clock())
    await store.settle([Settled(item, Verdict.RETRY, "HTTP 503", clock())])
    clock.advance(seconds=5)
    (item,) = await store.claim(clock(), 10, 60.0, due_by=clock())
    (before,) = await select_rows(gw.db, t.outbox)

    await store.settle([Settled(item, Verdict.RETRY, "not sent", clock(), sent=False)])

    (after,) = await select_rows(gw.db, t.outbox)
    assert before["lease_until"] is not None
    assert after == {**before, "lease_until": None}
    assert (after["attempts"], after["last_error"]) == (1, "HTTP 503")
    assert [i.id for i in await store.claim(clock(), 10, 60.0, due_by=clock())] == [item.id]


async def test_a_relay_pass_holds_a_lease_on_every_row_while_billing_has_it_in_hand(
    billed: Gateway, clock: Clock, billing: FakeBilling
) -> None:
    """Billing takes 400 s a reading, longer than the lease: the second row of a
    register, claimed late in the pass, is still leased while it is being sent."""
    leases = []

    async def slow_billing(key: str) -> None:
        (row,) = [r for r in await select_rows(billed.db, t.outbox) if r["idempotency_key"] == key]
        leases.append(row["lease_until"] - clock())
        clock.advance(seconds=400)

    billing.on_request = slow_billing
    await send(billed, "1234567891 4600")
    await send(billed, "1234567891 4610")
    async with billed.relay() as relay:
        report = await relay.run_once()

    assert report.delivered == 2
    assert leases == [timedelta(seconds=300), timedelta(seconds=300)]


async def test_retry_after_from_billing_sets_when_the_row_is_tried_again(
    billed: Gateway, clock: Clock, billing: FakeBilling
) -> None:
    billing.script = ["429:120"]
    await send(billed, "1234567891 4600")
    async with billed.relay() as relay:
        await relay.run_once()
        (row,) = await select_rows(billed.db, t.outbox)
        clock.advance(seconds=119)
        early = await relay.run_once()
        clock.advance(seconds=2)
        due = await relay.run_once()

    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["next_attempt_at"] == START + timedelta(seconds=120)
    assert row["last_error"].startswith("HTTP 429")
    assert (early.delivered, due.delivered) == (0, 1)


async def test_a_row_delivered_after_a_failure_keeps_its_attempts_and_last_error(
    billed: Gateway, clock: Clock, billing: FakeBilling
) -> None:
    billing.script = ["503"]
    await send(billed, "1234567891 4600")
    await drain(billed, clock)
    (row,) = await select_rows(billed.db, t.outbox)

    assert (row["status"], row["attempts"], row["lease_until"]) == ("delivered", 1, None)
    assert row["last_error"].startswith("HTTP 503")
    assert row["delivered_at"] == START + timedelta(seconds=301)


# Thousands of delivered rows, as a new database has after its first minutes under load:
# messages, their readings and their outbox rows, and billing's rows for them.
_GROW = (
    "INSERT INTO messages (channel, external_id, sender, text, received_at, status, outcome)"
    " SELECT 'sms', 'SMgrow' || g, '+7912' || g, 'x', now(), 'accepted', '{}'"
    " FROM generate_series(1, 3000) AS g",
    "INSERT INTO readings (register_id, message_id, value, previous, consumption, taken_at,"
    " taken_on, days, period, status)"
    " SELECT (SELECT min(id) FROM registers), m.id, 1, 0, 1, now(), current_date, 1,"
    " '2020-01', 'accepted' FROM messages AS m WHERE m.external_id LIKE 'SMgrow%'",
    "INSERT INTO outbox (reading_id, register_id, idempotency_key, payload, status, attempts,"
    " created_at, delivered_at)"
    " SELECT r.id, r.register_id, 'grow-' || r.id, '{}', 'delivered', 1, now(), now()"
    " FROM readings AS r WHERE r.period = '2020-01'",
    "INSERT INTO billing_readings (idempotency_key, reading_id, kind, account, meter, zone,"
    " period, value, received_at)"
    " SELECT 'grow-' || r.id, r.id, 'reading', '1234567890', 'M', 'day', '2020-01', 1, now()"
    " FROM readings AS r WHERE r.period = '2020-01'",
)


async def test_postgresql_passes_seek_each_claimed_row_without_statistics(
    gw: Gateway, clock: Clock
) -> None:
    """On PostgreSQL a pass to the embedded billing is one statement (claim, copy into
    billing, mark delivered) that finds each claimed row by its key, and billing's keys by
    their unique index, even on a new database: no statistics until autovacuum's first
    ANALYZE, and thousands of rows. Given the claimed ids as a list, the planner read
    the whole outbox twice and hashed the whole of billing's table for every pass."""
    if gw.db.is_sqlite:
        pytest.skip("PostgreSQL's planner")
    await fill_outbox(gw)

    def grow_and_plan(conn: Connection) -> str:
        for statement in _GROW:
            conn.exec_driver_sql(statement)
        assert never_analyzed(conn, "outbox", "billing_readings") == 2  # the case this is about
        params = {"now": clock(), "due_by": clock(), "limit": 100}
        return explain(conn, outbox_store._DELIVER_DUE_POSTGRESQL, params)

    plan = await gw.db.run(lambda uow: grow_and_plan(uow.conn))
    assert "Seq Scan on outbox" not in plan, plan
    assert "Seq Scan on billing_readings" not in plan, plan
    assert "Index Cond: (id = due" in plan, plan


async def test_embedded_billing_takes_a_batch_and_answers_a_repeat_as_had(
    gw: Gateway, clock: Clock
) -> None:
    """A relay that died before settling left a key in billing: the next pass, in one
    batch with new rows, finds it there and marks it delivered without a second copy."""
    await send(gw, "1234567890 12345 6789")
    await send(gw, "1234567891 4600")
    store = SqlOutboxStore(gw.db)
    first, *_ = await store.claim(clock(), 1, 60.0, due_by=clock())
    stored = await EmbeddedBilling(gw.db, clock).deliver(first)  # ... and the relay died here
    assert (stored.verdict, stored.detail) == (Verdict.DELIVERED, "stored")
    clock.advance(seconds=61)

    async with gw.relay() as relay:
        report = await relay.run_once()

    assert (report.delivered, report.retried, report.failed) == (3, 0, 0)
    again = await EmbeddedBilling(gw.db, clock).deliver(first)
    assert (again.verdict, again.detail) == (Verdict.DELIVERED, "already had it")
    held = await select_rows(gw.db, t.billing_readings)
    assert sorted(r["idempotency_key"] for r in held) == sorted(
        r["idempotency_key"] for r in await select_rows(gw.db, t.outbox)
    )


async def queue_readings(gw: Gateway, count: int) -> list[str]:
    """``count`` accepted readings of as many single-meter accounts, each with its outbox
    row, written in one transaction (the intake would take a reading at a time); returns
    their idempotency keys."""
    now = START

    def write(conn: Connection) -> list[str]:
        accounts = [f"{7000000000 + i}" for i in range(count)]
        conn.execute(t.accounts.insert(), [{"account": a, "debt": Decimal(0)} for a in accounts])
        registers = (
            conn.execute(
                t.registers.insert().returning(t.registers.c.id, sort_by_parameter_order=True),
                [
                    {"account": a, "meter": f"M{a}", "service": "electricity", "zone": "single"}
                    | {"digits": "6.1"}
                    for a in accounts
                ],
            )
            .scalars()
            .all()
        )
        message = conn.execute(
            t.messages.insert().returning(t.messages.c.id),
            {
                "channel": "sms",
                "sender": "bench",
                "text": "",
                "received_at": now,
                "status": "accepted",
                "outcome": "{}",
            },
        ).scalar_one()
        reading = {
            "message_id": message,
            "value": Decimal(1100),
            "previous": Decimal(1000),
            "consumption": Decimal(100),
            "taken_at": now,
            "taken_on": now.date(),
            "period": "2026-11",
            "status": "accepted",
        }
        readings = (
            conn.execute(
                t.readings.insert().returning(t.readings.c.id, sort_by_parameter_order=True),
                [{"register_id": r, **reading} for r in registers],
            )
            .scalars()
            .all()
        )
        keys = [f"reading-{r}" for r in readings]
        conn.execute(
            t.outbox.insert(),
            [
                {
                    "reading_id": r,
                    "register_id": register,
                    "idempotency_key": key,
                    "payload": json.dumps(
                        {"reading_id": r, "kind": "reading", "account": a, "value": "1100"}
                    ),
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                }
                for r, register, key, a in zip(readings, registers, keys, accounts, strict=True)
            ],
        )
        return keys

    return await gw.db.run(lambda uow: write(uow.conn))


@pytest.mark.parametrize("outage", ["503", "refused"])
async def test_after_a_billing_outage_the_whole_backlog_goes_once_the_probe_gets_through(
    settings: Settings, clock: Clock, outage: str
) -> None:
    """1,500 readings wait while billing is down for 40 s of relay passes, one every 2 s:
    the first pass whose probe gets through delivers all of them, at most one circuit
    wait plus one pass after billing is back; each reading reaches billing once, and the
    outage cost a few attempts, not one back-off per row."""
    interval, policy = 2.0, RelayPolicy()
    fake = FakeBilling(down=True)
    port = free_port()
    runner = web.AppRunner(fake.app(), shutdown_timeout=0.1)
    await runner.setup()
    if outage == "503":
        await web.TCPSite(runner, "127.0.0.1", port).start()
    client = HttpBilling(f"http://127.0.0.1:{port}", timeout=5.0)
    try:
        async with gateway(settings, clock) as gw:
            keys = await queue_readings(gw, 1_500)
            store = SqlOutboxStore(gw.db)
            relay = OutboxRelay(store, client, clock, policy)
            outage_ends = clock() + timedelta(seconds=40)
            while clock() < outage_ends:
                report = await relay.run_once()
                assert report.delivered == 0
                clock.advance(seconds=interval)
            tried = sum(r["attempts"] for r in await select_rows(gw.db, t.outbox))

            fake.down = False
            if outage == "refused":
                await web.TCPSite(runner, "127.0.0.1", port).start()
            back, sent_before = clock(), len(fake.requests)
            reports: list[RelayReport] = []
            while (await store.status(clock())).pending:
                assert len(reports) < 20, "the backlog did not drain"
                reports.append(await relay.run_once())
                clock.advance(seconds=interval)
            drained = clock() - timedelta(seconds=interval)
    finally:
        await client.close()
        await runner.cleanup()

    assert tried <= policy.concurrency + 40 / interval  # one trip, then a probe a pass
    assert [r.delivered for r in reports if r.delivered] == [1_500]
    assert drained - back <= timedelta(seconds=policy.circuit_open_cap + interval)
    assert sorted(fake.store) == sorted(keys)
    assert fake.repeats == []
    assert sorted(key for key, _ in fake.requests[sent_before:]) == sorted(keys)
