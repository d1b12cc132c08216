"""Billing's own preliminary charge, with the local one as the fallback (loopback fake)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.bootstrap import Gateway, gateway
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, load_registry, loopback, select_rows
from tests.integration.test_delivery import free_port
from tests.integration.test_intake import send


@dataclass
class FakeCharge:
    """A billing charge endpoint whose behaviour each test sets."""

    mode: str = "answer"  # answer | slow | error | garbage | partial
    requests: list[dict[str, Any]] = field(default_factory=list)
    peers: set[tuple[str, int]] = field(default_factory=set)  # client addresses seen
    url: str = ""

    async def charge(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        assert request.transport is not None
        self.peers.add(request.transport.get_extra_info("peername"))
        if self.mode == "slow":
            await asyncio.sleep(5)
        if self.mode == "error":
            return web.json_response({"error": "down"}, status=503)
        if self.mode == "garbage":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        if self.mode == "partial":
            return web.json_response({"lines": [], "debt": "0.00"})
        return web.json_response(
            {
                "lines": [
                    {
                        "meter": "611002",
                        "zone": "single",
                        "consumption": "79",
                        "tariff": "6.50",
                        "amount": "513.50",
                    }
                ],
                "debt": "0.00",
                "total": "513.50",
            }
        )


@pytest.fixture
async def billing() -> AsyncIterator[FakeCharge]:
    fake = FakeCharge()
    app = web.Application()
    app.router.add_post("/charge", fake.charge)
    async with loopback(app) as base:
        fake.url = f"{base}/charge"
        yield fake


@pytest.fixture
async def gw_quoting(
    settings: Settings, clock: Clock, tmp_path: Path, billing: FakeCharge
) -> AsyncIterator[Gateway]:
    configured = replace(settings, billing_charge_url=billing.url, billing_charge_timeout=0.5)
    async with gateway(configured, clock) as gw:
        await load_registry(gw, tmp_path)
        yield gw


async def test_billings_charge_is_used_and_stored_when_it_answers(
    gw_quoting: Gateway, billing: FakeCharge
) -> None:
    outcome = await send(gw_quoting, "1234567891 4600")

    assert outcome.charge is not None and outcome.charge.total == Decimal("513.50")
    assert outcome.reply == "Принято, ЛС 1234567891: ЭЭ 4600. Предварительно к оплате 513,50 ₽."
    assert billing.requests[0]["account"] == "1234567891"
    assert billing.requests[0]["readings"][0]["consumption"] == "79"
    (message,) = await select_rows(gw_quoting.db, t.messages)
    assert message["reply"] == outcome.reply
    assert json.loads(message["outcome"])["charge"]["total"] == "513.50"


@pytest.mark.parametrize("mode", ["slow", "error", "garbage", "partial"])
async def test_the_local_charge_is_used_when_billing_is_late_fails_or_garbles(
    gw_quoting: Gateway, billing: FakeCharge, mode: str
) -> None:
    billing.mode = mode
    started = time.monotonic()

    outcome = await send(gw_quoting, "1234567891 4600")

    # 79 × 6.43 = 507.97, computed locally; the 0.5 s limit bounds the wait.
    assert outcome.charge is not None and outcome.charge.total == Decimal("507.97")
    assert time.monotonic() - started < 3
    assert len(billing.requests) == 1


async def test_the_local_charge_is_used_when_billing_cannot_be_reached(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    configured = replace(settings, billing_charge_url=f"http://127.0.0.1:{free_port()}/charge")
    async with gateway(configured, clock) as gw:
        await load_registry(gw, tmp_path)

        outcome = await send(gw, "1234567891 4600")

    assert outcome.status == "accepted"
    assert outcome.charge is not None and outcome.charge.total == Decimal("507.97")


async def test_quotes_reuse_one_connection_to_billing(
    gw_quoting: Gateway, billing: FakeCharge
) -> None:
    await send(gw_quoting, "1234567891 4600")
    await send(gw_quoting, "1234567892 121 99")

    assert len(billing.requests) == 2
    assert len(billing.peers) == 1
