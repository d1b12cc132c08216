"""Property: whatever readings, corrections and review decisions arrive, and however billing
stumbles on the way, once the relay has run billing holds exactly the latest accepted
reading of each register for each period, and every correction corrects what it holds."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from gateway.bootstrap import gateway
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, load_registry, loopback, select_rows
from tests.integration.test_delivery import drain
from tests.integration.test_intake import send

Slot = tuple[str, str, str, str]  # account, meter, zone, period
Step = tuple[str, str, int, int]  # what, account, days since the step before, kWh added


@dataclass
class LedgerBilling:
    """A billing system that keeps one reading per register and period: a reading fills
    an empty slot, a correction replaces the reading it names. What does not fit is noted
    in ``conflicts``. Before answering it may fail as ``script`` says (500, 503, 429)."""

    script: list[str] = field(default_factory=list)
    ledger: dict[Slot, tuple[str, str]] = field(default_factory=dict)  # slot → (key, value)
    keys: set[str] = field(default_factory=set)
    kinds: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    async def readings(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        body: dict[str, Any] = await request.json()
        step = self.script.pop(0) if self.script else "ok"
        if step == "429":
            return web.json_response({}, status=429, headers={"Retry-After": "0"})
        if step != "ok":
            return web.json_response({}, status=int(step))
        if key in self.keys:
            return web.json_response({"error": "duplicate"}, status=409)
        self.keys.add(key)
        self.kinds.append(body["kind"])
        slot = (body["account"], body["meter"], body["zone"], body["period"])
        held = self.ledger.get(slot)
        if body["kind"] == "reading" and held is not None:
            self.conflicts.append(f"{key}: a plain reading for {slot}, which has {held[0]}")
        if body["kind"] == "correction":
            named = body["replaces"]["idempotency_key"]
            if held is None or held[0] != named:
                self.conflicts.append(f"{key} corrects {named}; billing has {held}")
        self.ledger[slot] = (key, body["value"])
        return web.json_response({"id": key}, status=201)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/readings", self.readings)
        return app


ACCOUNTS = ["1234567891", "0012345678"]
send_step = st.tuples(
    st.just("send"),
    st.sampled_from(ACCOUNTS),
    st.sampled_from([0, 0, 1, 3, 12, 31]),
    st.sampled_from([-40, 0, 8, 40, 300, 900]),
)
review_step = st.tuples(st.sampled_from(["approve", "reject"]), st.just(""), st.just(0), st.just(0))
steps = st.lists(st.one_of(send_step, send_step, review_step), min_size=2, max_size=14)
failures = st.lists(st.sampled_from(["ok", "500", "503", "429"]), max_size=8)


async def _run(sequence: list[Step], script: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        billing = LedgerBilling(script=list(script))
        async with loopback(billing.app()) as url:
            configured = Settings.from_mapping(
                {
                    "database_url": f"sqlite+aiosqlite:///{folder}/p.db",
                    "billing_url": url,
                    "outlier_min_days": 1,
                }
            )
            clock = Clock(datetime(2026, 10, 20, 9, 0, tzinfo=UTC))
            async with gateway(configured, clock, upgrade=True) as gw:
                await load_registry(gw, Path(folder))
                last = {"1234567891": 4521, "0012345678": 999950}
                for kind, account, days, added in sequence:
                    clock.advance(days=days, minutes=1)
                    held = await gw.review.held()
                    if kind == "approve" and held:
                        event("an operator approved a held reading")
                        await gw.review.approve(held[0].message_id)
                    if kind == "reject" and held:
                        event("an operator rejected a held reading")
                        await gw.review.reject(held[0].message_id, "нет")
                    if kind != "send":
                        continue
                    value = max(0, last[account] + added)
                    if account == "0012345678":
                        text = f"{account} {value % 1_000_000:06d} 311"
                    else:
                        text = f"{account} {value}"
                    outcome = await send(gw, text)
                    event(f"a message is {outcome.status}")
                    if outcome.status in ("accepted", "duplicate", "held"):
                        last[account] = value
                await drain(gw, clock)

                readings = await select_rows(gw.db, t.readings)
                registers = {r["id"]: r for r in await select_rows(gw.db, t.registers)}

        expected: dict[Slot, str] = {}
        for r in readings:
            if r["status"] == "accepted":
                reg = registers[r["register_id"]]
                slot = (reg["account"], reg["meter"], reg["zone"], r["period"])
                assert slot not in expected, f"two accepted readings for {slot}"
                expected[slot] = format(r["value"], "f")
        if "correction" in billing.kinds:
            event("billing received a correction")
        assert billing.conflicts == []
        assert {slot: value for slot, (_, value) in billing.ledger.items()} == expected


# An accepted reading, then a correction held as an outlier, then a decision or another
# correction: random sequences seldom line these up, so they are always tried.
HELD_CORRECTION: list[Step] = [
    ("send", "1234567891", 0, 8),
    ("send", "1234567891", 31, 40),
    ("send", "1234567891", 0, 900),
]


@example([*HELD_CORRECTION, ("reject", "", 0, 0)], [])
@example([*HELD_CORRECTION, ("send", "1234567891", 0, -300)], ["503"])
@example([*HELD_CORRECTION, ("approve", "", 0, 0)], ["429", "500"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, failures)
def test_billing_holds_the_latest_accepted_reading_per_meter_and_period(
    sequence: list[Step], script: list[str]
) -> None:
    asyncio.run(_run(sequence, script))
