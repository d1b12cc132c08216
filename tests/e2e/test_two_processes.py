"""Two ``gateway serve`` processes on one PostgreSQL database under a load of signed SMS
webhooks, one killed with SIGKILL in the middle: nothing answered 200 is lost or doubled,
billing gets every reading once, and the survivor takes over the relay's rows and the
SMPP link (a singleton)."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import Table

from gateway.bootstrap import gateway
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, loopback, select_rows
from tests.e2e.conftest import post_sms, serve_env, start_serve
from tests.fake_smsc import FakeSmsc
from tests.integration.test_delivery import FakeBilling

pytestmark = pytest.mark.postgres

# Accounts of the standard registry with one single-rate register: one reading each.
SINGLE = "1234567891"


async def test_a_process_killed_under_load_loses_and_doubles_nothing(
    loaded_postgres: str, tmp_path: Path
) -> None:
    database = loaded_postgres
    billing = FakeBilling()
    async with (
        loopback(billing.app()) as billing.url,
        FakeSmsc(system_id="gw", password="secret") as smsc,
    ):
        env = serve_env(
            database,
            tmp_path,
            billing_url=billing.url,
            billing_timeout="1",
            relay_interval="0.2",
            relay_batch="10",
            relay_concurrency="10",
            relay_lease_seconds="3",
            smpp_host=smsc.host,
            smpp_port=str(smsc.port),
            smpp_system_id="gw",
            smpp_password="secret",
            smpp_source_addr="4444",
            rate_limit_per_minute="100000",
        )
        first = await start_serve(env, tmp_path / "first.log")
        await smsc.wait_bound()  # the first process holds the SMPP lease
        second = await start_serve(env, tmp_path / "second.log")
        answered: dict[str, int] = {}

        async def post(session: aiohttp.ClientSession, base: str, value: int) -> None:
            sid = f"SM{uuid.uuid4().hex}"
            try:
                status = await post_sms(session, base, "+79120000002", f"{SINGLE} {value}", sid=sid)
                if status == 200:
                    answered[sid] = value
            except aiohttp.ClientError:
                pass  # the killed process: no answer, so the provider would retry

        async with aiohttp.ClientSession() as session:
            values = iter(range(4600, 4600 + 10_000))
            for burst in range(12):
                if burst == 4:
                    first.process.send_signal(signal.SIGKILL)  # mid-load, no goodbye
                await asyncio.gather(
                    *(
                        post(session, p.base, next(values))
                        for p in (first, second)
                        for _ in range(8)
                    )
                )
        await first.process.wait()

        # The survivor binds to the SMSC (it takes the SMPP lease within its 10 s)…
        await smsc.wait_binds(2, timeout=30)
        await smsc.wait_until(lambda: any(s.bound for s in smsc.sessions), timeout=30)
        # …and delivers every reading to billing, the killed relay's leased rows too.
        for _ in range(300):
            outbox = await _rows(database, t.outbox)
            if outbox and all(r["status"] == "delivered" for r in outbox):
                break
            await asyncio.sleep(0.1)
        second.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.process.wait(), 30) == 0

    messages = [m for m in await _rows(database, t.messages) if m["channel"] == "sms"]
    by_sid = {m["external_id"]: m for m in messages}
    assert len(by_sid) == len(messages)  # no message twice
    assert answered and set(answered) <= set(by_sid)  # every 200 was stored
    readings = await _rows(database, t.readings)
    stored = [r for r in readings if r["message_id"] in {by_sid[s]["id"] for s in answered}]
    assert len(stored) == len(answered)  # one reading per answered message, once
    outbox = await _rows(database, t.outbox)
    assert outbox and all(r["status"] == "delivered" for r in outbox)
    keys = {r["idempotency_key"] for r in outbox}
    assert set(billing.store) == keys  # billing has every reading, each applied once
    assert len(billing.store) == len(outbox)


async def _rows(url: str, table: Table) -> list[dict[str, object]]:
    async with gateway(Settings.from_mapping({"database_url": url}), Clock()) as gw:
        return await select_rows(gw.db, table)
