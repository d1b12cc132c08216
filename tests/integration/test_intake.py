"""The intake on a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from itertools import count
from pathlib import Path

from gateway.bootstrap import Gateway
from gateway.domain.model import InboundMessage
from gateway.domain.outcome import Outcome
from gateway.storage import tables as t
from tests.conftest import METERS, Clock, Registry, load_registry, select_rows
from tests.conftest import count_rows as count_table

_ids = count()


async def send(
    gw: Gateway, text: str, sender: str = "+79120000001", external_id: str | None = None
) -> Outcome:
    message = InboundMessage("sms", sender, text, gw.clock(), external_id)
    return await gw.intake(message)


async def rows(gw: Gateway, table: t.Table) -> list[dict[str, object]]:
    return await select_rows(gw.db, table)


async def count_rows(gw: Gateway, table: t.Table) -> int:
    return await count_table(gw.db, table)


async def test_accepted_message_stores_readings_outbox_and_audit_row(gw: Gateway) -> None:
    outcome = await send(gw, "1234567890 12345 6789", external_id="SM1")

    assert outcome.status == "accepted"
    assert [(r.zone, r.value, r.previous, r.consumption) for r in outcome.readings] == [
        ("day", Decimal(12345), Decimal(12000), Decimal(345)),
        ("night", Decimal(6789), Decimal(6500), Decimal(289)),
    ]
    assert outcome.charge is not None
    # 345 × 6.80 = 2346.00; 289 × 3.45 = 997.05; + debt 100.00
    assert outcome.charge.total == Decimal("3443.05")
    readings = await rows(gw, t.readings)
    assert [r["value"] for r in readings] == [Decimal(12345), Decimal(6789)]
    outbox = await rows(gw, t.outbox)
    assert [o["reading_id"] for o in outbox] == [r["id"] for r in readings]
    assert {o["status"] for o in outbox} == {"pending"}
    assert json.loads(str(outbox[0]["payload"]))["value"] == "12345"
    (message,) = await rows(gw, t.messages)
    assert message["status"] == "accepted"
    assert message["sender"] == "+79120000001"
    assert message["text"] == "1234567890 12345 6789"
    assert message["external_id"] == "SM1"
    assert message["reply"] == outcome.reply
    assert json.loads(str(message["outcome"])) == outcome.to_json()


async def test_each_rejection_is_recorded_with_its_code_and_stores_no_reading(
    gw: Gateway,
) -> None:
    cases = {
        "абв 12": "unparseable",
        "привет": "not_readings",
        "9999999999 100": "unknown_account",
        "1234567890 12345": "value_count",
        "1234567891 123456": "too_many_digits",
        "0012345678 999990 311": "verification_expired",
        "1234567890 11999 6789": "below_previous",
        "1234567890 13001 6789": "jump_too_large",
    }
    for text, code in cases.items():
        outcome = await send(gw, text, sender=f"+7900{next(_ids):07d}")
        assert (outcome.status, outcome.error and outcome.error.code) == ("rejected", code), text
        assert outcome.reply
    messages = await rows(gw, t.messages)
    assert [(m["text"], m["error_code"]) for m in messages] == list(cases.items())
    assert await count_rows(gw, t.readings) == 0
    assert await count_rows(gw, t.outbox) == 0


async def test_same_external_id_twice_gives_the_same_reply_and_one_reading(gw: Gateway) -> None:
    first = await send(gw, "1234567891 4600", external_id="SMdup")
    again = await send(gw, "1234567891 4600", external_id="SMdup")

    assert again == first
    assert await count_rows(gw, t.readings) == 1
    assert await count_rows(gw, t.messages) == 1


async def test_same_values_again_is_a_duplicate_with_the_same_confirmation(
    gw: Gateway, clock: Clock
) -> None:
    first = await send(gw, "1234567891 4600")
    clock.advance(hours=2)
    again = await send(gw, "1234567891 4600")

    assert again.status == "duplicate"
    assert again.reply == first.reply
    assert again.readings == first.readings
    assert again.charge == first.charge
    assert await count_rows(gw, t.readings) == 1
    assert [m["status"] for m in await rows(gw, t.messages)] == ["accepted", "duplicate"]


async def test_registry_baseline_value_sent_again_is_zero_consumption_not_duplicate(
    gw: Gateway,
) -> None:
    outcome = await send(gw, "1234567891 4521")

    assert outcome.status == "accepted"
    assert outcome.readings[0].consumption == 0


async def test_next_periods_reading_is_validated_against_the_last_accepted_one(
    gw: Gateway, clock: Clock
) -> None:
    await send(gw, "1234567891 4600")
    clock.advance(days=30)  # 20 December: the next period's window
    lower = await send(gw, "1234567891 4550")
    higher = await send(gw, "1234567891 4650")

    assert lower.error is not None and lower.error.code == "below_previous"
    assert higher.readings[0].previous == Decimal(4600)
    assert higher.readings[0].consumption == Decimal(50)


async def test_rollover_past_capacity_is_accepted_with_wrapped_consumption(
    gw: Gateway, tmp_path: Path
) -> None:
    """Meter 812000 (6.1) stands at 999950; 30 after the wrap is 80 kWh consumed."""
    renewed = METERS.replace("2026-11-01,310", "2030-11-01,310")
    await load_registry(gw, tmp_path, Registry(meters=renewed))

    outcome = await send(gw, "0012345678 000030 311")

    assert outcome.status == "accepted"
    assert [(r.value, r.previous, r.consumption) for r in outcome.readings] == [
        (Decimal(30), Decimal(999950), Decimal(80)),
        (Decimal(311), Decimal(310), Decimal(1)),
    ]


async def test_wrap_beyond_the_maximum_jump_is_below_previous(gw: Gateway, tmp_path: Path) -> None:
    renewed = METERS.replace("2026-11-01,310", "2030-11-01,310")
    await load_registry(gw, tmp_path, Registry(meters=renewed))

    outcome = await send(gw, "0012345678 2000 311")

    assert outcome.error is not None and outcome.error.code == "below_previous"


async def test_rate_limit_silences_the_eleventh_message_in_a_minute(
    gw: Gateway, clock: Clock
) -> None:
    outcomes = []
    for i in range(11):
        outcomes.append(await send(gw, f"абв {i}", sender="+79991112233"))
        clock.advance(seconds=1)
    last = outcomes[-1]

    assert [o.error.code for o in outcomes[:10] if o.error] == ["unparseable"] * 10
    assert (last.status, last.reply, last.error and last.error.code) == (
        "rejected",
        None,
        "rate_limited",
    )
    assert (await rows(gw, t.messages))[-1]["error_code"] == "rate_limited"
    clock.advance(seconds=60)
    after = await send(gw, "абв", sender="+79991112233")
    assert after.error is not None and after.error.code == "not_readings"


async def test_rate_limit_counts_each_sender_separately(gw: Gateway) -> None:
    for _ in range(10):
        await send(gw, "абв 1", sender="+79991112233")

    other = await send(gw, "1234567891 4600", sender="+79990000000")

    assert other.status == "accepted"


async def test_concurrent_messages_for_one_account_are_validated_one_after_another(
    gw: Gateway,
) -> None:
    """Eight corrections at once: each replaces the one stored just before it; one survives."""
    texts = [f"1234567891 {4600 + i}" for i in range(8)]
    outcomes = await asyncio.gather(
        *(send(gw, text, sender=f"+7911000000{i}") for i, text in enumerate(texts))
    )

    assert {o.status for o in outcomes} == {"accepted"}
    readings = await rows(gw, t.readings)
    assert [r["replaces_id"] for r in readings] == [None] + [r["id"] for r in readings[:-1]]
    assert [r["status"] for r in readings] == ["replaced"] * 7 + ["accepted"]
    # Every correction is validated against the earlier period (the registry's 4521).
    assert {r["previous"] for r in readings} == {Decimal(4521)}


async def test_concurrent_deliveries_of_one_external_id_answer_alike_and_store_once(
    gw: Gateway,
) -> None:
    """Twilio retrying while the first attempt is still in flight (a race on PostgreSQL)."""
    outcomes = await asyncio.gather(
        *(send(gw, "1234567891 4600", external_id="SMrace") for _ in range(4))
    )

    assert {o.status for o in outcomes} == {"accepted"}
    assert len({o.reply for o in outcomes}) == 1
    assert await count_rows(gw, t.readings) == 1
    assert await count_rows(gw, t.messages) == 1
