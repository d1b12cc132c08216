"""Property: whatever readings and corrections arrive, once the relay has run, billing holds
exactly the latest accepted reading of each register for each period."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.bootstrap import gateway
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, load_registry, select_rows
from tests.integration.test_delivery import drain
from tests.integration.test_intake import send

# (account, day offset from 20 Oct, kWh added to the last value sent)
Step = tuple[str, int, int]
steps = st.lists(
    st.tuples(
        st.sampled_from(["1234567891", "0012345678"]), st.integers(0, 70), st.integers(0, 300)
    ),
    min_size=1,
    max_size=12,
)


async def _run(sequence: list[Step]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/p.db"
        clock = Clock(datetime(2026, 10, 20, 9, 0, tzinfo=UTC))
        async with gateway(Settings.from_mapping({"database_url": url}), clock) as gw:
            await load_registry(gw, Path(folder))
            last = {"1234567891": 4521, "0012345678": 999950}
            start = clock.now
            for account, day, added in sorted(sequence, key=lambda s: s[1]):
                clock.now = start + timedelta(days=day)
                value = (
                    (last[account] + added) % 1_000_000
                    if account == "0012345678"
                    else (last[account] + added)
                )
                text = (
                    f"{account} {value:06d} 311"
                    if account == "0012345678"
                    else f"{account} {value}"
                )
                outcome = await send(gw, text)
                if outcome.status in ("accepted", "duplicate"):
                    last[account] = value
            await drain(gw, clock)

            readings = await select_rows(gw.db, t.readings)
            registers = {r["id"]: r for r in await select_rows(gw.db, t.registers)}
            expected = {
                (
                    registers[r["register_id"]]["meter"],
                    registers[r["register_id"]]["zone"],
                    r["period"],
                ): r["value"]
                for r in readings
                if r["status"] == "accepted"
            }
            latest: dict[tuple[str, str, str], tuple[int, object]] = {}
            for row in await select_rows(gw.db, t.billing_readings):
                key = (row["meter"], row["zone"], row["period"])
                if key not in latest or row["reading_id"] > latest[key][0]:
                    latest[key] = (row["reading_id"], row["value"])
            assert {k: v for k, (_, v) in latest.items()} == expected


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_billing_holds_the_latest_accepted_reading_per_meter_and_period(
    sequence: list[Step],
) -> None:
    asyncio.run(_run(sequence))
