"""Billing periods, the acceptance window, corrections and readings held for review."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.bootstrap import Gateway, gateway
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, load_registry, select_rows
from tests.integration.test_intake import send


def moscow_noon(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, 9, 0, tzinfo=UTC)


@pytest.fixture
async def rejecting(settings: Settings, clock: Clock, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with gateway(replace(settings, window_policy="reject"), clock) as gw:
        await load_registry(gw, tmp_path)
        yield gw


async def test_reading_inside_the_window_counts_for_this_month(gw: Gateway) -> None:
    await send(gw, "1234567891 4600")

    (reading,) = await select_rows(gw.db, t.readings)
    assert reading["period"] == "2026-11"


async def test_after_the_window_next_period_policy_accepts_for_next_month(
    gw: Gateway, clock: Clock
) -> None:
    clock.now = moscow_noon(27)

    outcome = await send(gw, "1234567891 4600")

    assert outcome.status == "accepted"
    assert outcome.reply is not None and outcome.reply.startswith("Принято за 12.2026, ЛС")
    (reading,) = await select_rows(gw.db, t.readings)
    assert reading["period"] == "2026-12"


async def test_before_the_window_counts_for_this_months_coming_window(
    gw: Gateway, clock: Clock
) -> None:
    clock.now = moscow_noon(3)

    outcome = await send(gw, "1234567891 4600")

    assert outcome.reply is not None and outcome.reply.startswith("Принято за 11.2026, ЛС")
    (reading,) = await select_rows(gw.db, t.readings)
    assert reading["period"] == "2026-11"


async def test_reject_policy_refuses_outside_the_window_and_says_when(
    rejecting: Gateway, clock: Clock
) -> None:
    clock.now = moscow_noon(26)

    outcome = await send(rejecting, "1234567891 4600")

    assert outcome.error is not None and outcome.error.code == "outside_window"
    assert outcome.reply == (
        "ЛС 1234567891: показания принимаются с 15 по 25 число. Отправьте их с 15.12.2026."
    )
    assert await select_rows(rejecting.db, t.readings) == []


async def test_a_second_reading_in_the_period_replaces_the_first_and_billing_is_told(
    gw: Gateway, clock: Clock
) -> None:
    await send(gw, "1234567891 4700")
    clock.advance(hours=3)

    outcome = await send(gw, "1234567891 4600")

    assert outcome.reply is not None and outcome.reply.startswith("Исправлено, ЛС 1234567891")
    # Validated against the previous period (registry 4521), not the replaced 4700.
    assert [(r.previous, r.consumption) for r in outcome.readings] == [(Decimal(4521), Decimal(79))]
    first, second = await select_rows(gw.db, t.readings)
    assert (first["status"], second["status"], second["replaces_id"]) == (
        "replaced",
        "accepted",
        first["id"],
    )
    outbox = [json.loads(row["payload"]) for row in await select_rows(gw.db, t.outbox)]
    assert [(p["kind"], p["replaces"]) for p in outbox] == [
        ("reading", None),
        ("correction", {"reading_id": first["id"], "idempotency_key": f"reading-{first['id']}"}),
    ]


async def test_a_correction_below_the_replaced_reading_is_accepted(
    gw: Gateway, clock: Clock
) -> None:
    """The replaced reading is not the previous one: 4600 after a mistyped 46000."""
    await send(gw, "1234567891 5000")
    outcome = await send(gw, "1234567891 4600")

    assert outcome.status == "accepted"


HISTORY = """account,meter,service,zone,digits,verified_until,last_value,last_date
1234567891,611002,electricity,single,5.1,2030-06-30,4000,2026-08-20
"""


async def _history(gw: Gateway, clock: Clock, tmp_path: Path) -> None:
    """Two months of about 10 kWh a day: 4000 (20 Aug) → 4300 (20 Sep) → 4600 (20 Oct)."""
    from tests.conftest import ACCOUNTS, TARIFFS, Registry

    await load_registry(gw, tmp_path, Registry(ACCOUNTS, HISTORY, TARIFFS))
    for month, value in ((9, 4300), (10, 4600)):
        clock.now = moscow_noon(20, month)
        assert (await send(gw, f"1234567891 {value}")).status == "accepted"
    clock.now = moscow_noon(20, 11)


# SMS can tell the customer the decision later only with Twilio's REST API configured.
TWILIO_REST = {"twilio_account_sid": "AC" + "1" * 32, "twilio_from": "+79000000000"}


async def test_an_outlier_is_held_for_review_not_charged_and_not_forwarded(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    async with gateway(replace(settings, **TWILIO_REST), clock) as gw:
        await _history(gw, clock, tmp_path)

        # 31 days at 30 kWh a day: 930 > 3 × 10.
        outcome = await send(gw, "1234567891 5530")

        assert outcome.status == "held"
        assert outcome.charge is None
        assert outcome.reply == (
            "ЛС 1234567891: показания приняты на проверку — расход намного выше обычного. "
            "Сообщим о решении."
        )
        readings = await select_rows(gw.db, t.readings)
        assert readings[-1]["status"] == "held"
        assert len(await select_rows(gw.db, t.outbox)) == 2  # the two earlier months only


async def test_a_held_reply_promises_no_decision_no_channel_can_send(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    """Without Twilio's REST API the operator's decision cannot reach an SMS sender."""
    async with gateway(settings, clock) as gw:
        await _history(gw, clock, tmp_path)

        outcome = await send(gw, "1234567891 5530")

        assert outcome.status == "held"
        assert outcome.reply == (
            "ЛС 1234567891: показания приняты на проверку — расход намного выше обычного."
        )


async def test_usual_consumption_after_history_is_accepted(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    async with gateway(settings, clock) as gw:
        await _history(gw, clock, tmp_path)

        outcome = await send(gw, "1234567891 4900")

        assert outcome.status == "accepted"
