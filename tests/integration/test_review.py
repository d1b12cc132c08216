"""Operator review of held readings, the customer told through a loopback Twilio REST fake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.bootstrap import Gateway, gateway
from gateway.domain.errors import AccountNeeded
from gateway.domain.model import InboundMessage
from gateway.registry import import_file
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import (
    ACCOUNTS,
    TARIFFS,
    TWILIO_SID,
    Clock,
    FakeTwilio,
    Registry,
    load_registry,
    select_rows,
)
from tests.integration.test_intake import send
from tests.integration.test_periods import _history, moscow_noon

SID = TWILIO_SID


@pytest.fixture
async def held(
    settings: Settings, clock: Clock, tmp_path: Path, twilio: FakeTwilio
) -> AsyncIterator[Gateway]:
    """A gateway whose account 1234567891 has one submission held for review."""
    configured = replace(
        settings, twilio_account_sid=SID, twilio_from="+79000000000", twilio_api_base=twilio.url
    )
    async with gateway(configured, clock) as gw:
        await _history(gw, clock, tmp_path)
        outcome = await send(gw, "1234567891 5530", sender="+79121234567")
        assert outcome.status == "held"
        yield gw


async def test_review_lists_the_held_submission(held: Gateway) -> None:
    (item,) = await held.review.held()

    assert (item.account, item.value, item.consumption, item.days) == ("1234567891", 5530, 930, 31)


async def test_approving_accepts_queues_for_billing_and_tells_the_customer(
    held: Gateway, twilio: FakeTwilio
) -> None:
    (item,) = await held.review.held()

    decided = await held.review.approve(item.message_id)

    assert [d.reading_id for d in decided] == [item.reading_id]
    reading = next(r for r in await select_rows(held.db, t.readings) if r["id"] == item.reading_id)
    assert reading["status"] == "accepted"
    outbox = await select_rows(held.db, t.outbox)
    assert json.loads(outbox[-1]["payload"])["reading_id"] == item.reading_id
    assert twilio.sent == [
        {
            "To": "+79121234567",
            "From": "+79000000000",
            # 930 kWh × 6.43 ₽ (the tariff in force on the reading's date).
            "Body": "Проверено и принято, ЛС 1234567891: ЭЭ 5530. "
            "Предварительно к оплате 5979,90 ₽.",
        }
    ]
    assert await held.review.held() == []


async def test_rejecting_declines_with_the_reason_and_tells_the_customer(
    held: Gateway, twilio: FakeTwilio
) -> None:
    (item,) = await held.review.held()

    await held.review.reject(item.message_id, "Проверьте показание и отправьте снова.")

    reading = next(r for r in await select_rows(held.db, t.readings) if r["id"] == item.reading_id)
    assert (reading["status"], reading["review_note"]) == (
        "declined",
        "Проверьте показание и отправьте снова.",
    )
    assert len(await select_rows(held.db, t.outbox)) == 2  # nothing new for billing
    assert twilio.sent[0]["Body"] == (
        "ЛС 1234567891: показания не приняты. Проверьте показание и отправьте снова."
    )


async def test_a_decided_submission_cannot_be_decided_again(held: Gateway) -> None:
    (item,) = await held.review.held()
    await held.review.approve(item.message_id)

    assert await held.review.reject(item.message_id, "late") == []


async def test_a_correction_replaces_a_held_reading(held: Gateway) -> None:
    """The customer fixes the typo that caused the hold: the held reading is replaced."""
    outcome = await send(held, "1234567891 4900", sender="+79121234567")

    assert outcome.status == "accepted"
    assert await held.review.held() == []


def _outbox_bodies(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [json.loads(str(row["payload"])) for row in rows]


@pytest.fixture
async def corrected_to_outlier(
    settings: Settings, clock: Clock, tmp_path: Path
) -> AsyncIterator[Gateway]:
    """Account 1234567891 has 4900 accepted for 2026-11, then a correction 5530 held."""
    async with gateway(settings, clock) as gw:
        await _history(gw, clock, tmp_path)
        assert (await send(gw, "1234567891 4900")).status == "accepted"
        assert (await send(gw, "1234567891 5530")).status == "held"
        yield gw


async def test_a_held_correction_leaves_the_accepted_reading_in_force_until_decided(
    corrected_to_outlier: Gateway,
) -> None:
    readings = await select_rows(corrected_to_outlier.db, t.readings)

    assert [(r["value"], r["status"]) for r in readings[-2:]] == [
        (4900, "accepted"),
        (5530, "held"),
    ]


async def test_rejecting_a_held_correction_keeps_the_reading_billing_has(
    corrected_to_outlier: Gateway,
) -> None:
    (item,) = await corrected_to_outlier.review.held()

    await corrected_to_outlier.review.reject(item.message_id, "Неверно.")

    readings = await select_rows(corrected_to_outlier.db, t.readings)
    assert [(r["value"], r["status"]) for r in readings[-2:]] == [
        (4900, "accepted"),
        (5530, "declined"),
    ]
    outbox = _outbox_bodies(await select_rows(corrected_to_outlier.db, t.outbox))
    assert [b["value"] for b in outbox] == ["4300", "4600", "4900"]


async def test_approving_a_held_correction_sends_billing_a_correction_of_the_accepted_one(
    corrected_to_outlier: Gateway,
) -> None:
    (item,) = await corrected_to_outlier.review.held()

    await corrected_to_outlier.review.approve(item.message_id)

    readings = await select_rows(corrected_to_outlier.db, t.readings)
    accepted, approved = readings[-2:]
    assert (accepted["status"], approved["status"], approved["replaces_id"]) == (
        "replaced",
        "accepted",
        accepted["id"],
    )
    last = _outbox_bodies(await select_rows(corrected_to_outlier.db, t.outbox))[-1]
    assert (last["value"], last["kind"], last["replaces"]) == (
        "5530",
        "correction",
        {"reading_id": accepted["id"], "idempotency_key": f"reading-{accepted['id']}"},
    )


async def test_a_correction_after_a_held_one_corrects_the_reading_billing_has(
    corrected_to_outlier: Gateway,
) -> None:
    outcome = await send(corrected_to_outlier, "1234567891 4950")

    assert outcome.status == "accepted"
    readings = await select_rows(corrected_to_outlier.db, t.readings)
    assert [r["status"] for r in readings[-3:]] == ["replaced", "replaced", "accepted"]
    last = _outbox_bodies(await select_rows(corrected_to_outlier.db, t.outbox))[-1]
    assert (last["kind"], last["replaces"]["reading_id"]) == ("correction", readings[-3]["id"])


async def test_a_correction_of_a_held_first_reading_is_a_plain_reading_for_billing(
    held: Gateway,
) -> None:
    """Billing never saw the held reading, so there is nothing for it to correct."""
    await send(held, "1234567891 4900", sender="+79121234567")

    last = _outbox_bodies(await select_rows(held.db, t.outbox))[-1]
    assert (last["value"], last["kind"], last["replaces"]) == ("4900", "reading", None)


async def test_a_long_rejection_reason_is_shortened_to_two_sms_segments(
    held: Gateway, twilio: FakeTwilio
) -> None:
    (item,) = await held.review.held()

    await held.review.reject(item.message_id, "Показание не совпадает с фото счётчика. " * 5)

    body = twilio.sent[0]["Body"]
    assert len(body) == 134
    assert body.startswith("ЛС 1234567891: показания не приняты. Показание не совпадает")
    assert body.endswith("…")


async def test_a_decision_without_twilio_configured_is_still_recorded(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    async with gateway(settings, clock) as gw:
        await _history(gw, clock, tmp_path)
        await send(gw, "1234567891 5530", sender="+79121234567")
        (item,) = await gw.review.held()

        decided = await gw.review.approve(item.message_id)

        assert [d.reading_id for d in decided] == [item.reading_id]
        assert await gw.review.held() == []


TWO_HISTORIES = """account,meter,service,zone,digits,verified_until,last_value,last_date
1234567890,517480,electricity,single,6.1,2031-12-31,4000,2026-08-20
1234567891,611002,electricity,single,5.1,2030-06-30,4000,2026-08-20
"""


@pytest.fixture
async def held_list(
    settings: Settings, clock: Clock, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, int]]:
    """One elder's list holding two accounts' outliers (ids of the list's message)."""
    async with gateway(settings, clock) as gw:
        await load_registry(gw, tmp_path, Registry(ACCOUNTS, TWO_HISTORIES, TARIFFS))
        elders = tmp_path / "elders.csv"
        elders.write_text("email,building\nelder@example.org,b1\n", encoding="utf-8")
        await import_file(gw.db, "elders", elders)
        for month, value in ((9, 4300), (10, 4600)):
            clock.now = moscow_noon(20, month)
            for account in ("1234567890", "1234567891"):
                assert (await send(gw, f"{account} {value}")).status == "accepted"
        clock.now = moscow_noon(20, 11)
        text = "кв. 1 — 1234567890 5530\nкв. 2 — 1234567891 5530\n"
        result = await gw.intake.handle_list(
            InboundMessage("email", "elder@example.org", text, clock())
        )
        assert [line.outcome.status.value for line in result.lines] == ["held", "held"]
        yield gw, result.message_id


async def test_a_list_holding_two_accounts_is_decided_per_account(
    held_list: tuple[Gateway, int],
) -> None:
    gw, message_id = held_list
    with pytest.raises(AccountNeeded) as refused:
        await gw.review.approve(message_id)
    assert refused.value.accounts == ("1234567890", "1234567891")

    approved = await gw.review.approve(message_id, "1234567890")

    assert [r.account for r in approved] == ["1234567890"]
    still_held = await gw.review.held()
    assert [(h.message_id, h.account) for h in still_held] == [(message_id, "1234567891")]
    declined = await gw.review.reject(message_id, "Проверьте показание.", "1234567891")
    assert [r.account for r in declined] == ["1234567891"]
    assert await gw.review.held() == []
