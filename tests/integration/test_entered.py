"""Readings entered register by register (`Intake.submit`, a guided chat dialog): decided,
stored and answered exactly as the same values written as text."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from gateway.bootstrap import Gateway
from gateway.domain.model import Entered, EnteredValue, InboundMessage, Zone
from gateway.domain.outcome import Outcome
from gateway.storage import tables as t
from tests.integration.test_intake import count_rows, rows, send

DAY, NIGHT = Zone.DAY, Zone.NIGHT


def entered(*values: tuple[str, Zone, str], account: str = "1234567890") -> Entered:
    return Entered(account, tuple(EnteredValue(m, z, Decimal(v)) for m, z, v in values))


async def submit(
    gw: Gateway, readings: Entered, channel: str = "sms", sender: str = "+79120000001"
) -> Outcome:
    return await gw.intake.submit(InboundMessage(channel, sender, "", gw.clock()), readings)


async def test_entered_values_are_answered_as_the_same_text_would_be(gw: Gateway) -> None:
    by_register = await submit(gw, entered(("517480", DAY, "12345"), ("517480", NIGHT, "6789")))
    again_as_text = await send(gw, "1234567890 12345 6789")

    assert by_register.status == "accepted"
    assert by_register.charge is not None and by_register.charge.total > 0
    # The text repeats the values: a duplicate, with the very same reply and charge.
    assert again_as_text.status == "duplicate"
    assert (again_as_text.reply, again_as_text.charge) == (by_register.reply, by_register.charge)
    (message, _) = await rows(gw, t.messages)
    assert message["text"] == "1234567890 517480/day=12345 517480/night=6789"
    assert await count_rows(gw, t.outbox) == 2


async def test_the_order_of_entry_does_not_matter(gw: Gateway) -> None:
    outcome = await submit(gw, entered(("517480", NIGHT, "6789"), ("517480", DAY, "12345")))

    assert outcome.status == "accepted"
    assert [(r.zone, r.value) for r in outcome.readings] == [("day", 12345), ("night", 6789)]


async def test_one_register_of_two_may_be_entered(gw: Gateway) -> None:
    outcome = await submit(gw, entered(("517480", NIGHT, "6789")))

    assert outcome.status == "accepted"
    assert [(r.zone, r.value) for r in outcome.readings] == [("night", 6789)]


async def test_a_register_the_account_does_not_have_is_an_unknown_meter(gw: Gateway) -> None:
    outcome = await submit(gw, entered(("999999", DAY, "12345")))

    assert outcome.error is not None and outcome.error.code == "unknown_meter"
    assert "999999" in (outcome.reply or "")
    assert await count_rows(gw, t.readings) == 0


async def test_a_register_entered_twice_is_ambiguous(gw: Gateway) -> None:
    outcome = await submit(gw, entered(("517480", DAY, "12345"), ("517480", DAY, "12346")))

    assert outcome.error is not None and outcome.error.code == "ambiguous_label"
    assert await count_rows(gw, t.readings) == 0


async def test_nothing_entered_asks_for_the_values(gw: Gateway) -> None:
    outcome = await submit(gw, entered())

    assert outcome.error is not None and outcome.error.code == "value_count"


async def test_entered_values_go_through_the_rules(gw: Gateway) -> None:
    """Lower than the registry's 12000 on the day register: refused, as text would be."""
    outcome = await submit(gw, entered(("517480", DAY, "11000"), ("517480", NIGHT, "6789")))

    assert outcome.error is not None and outcome.error.code == "below_previous"
    assert await count_rows(gw, t.readings) == 0


async def test_a_chat_submits_for_its_linked_account_only(gw: Gateway) -> None:
    await gw.db.run(
        lambda uow: uow.conn.execute(
            t.chat_links.insert(),
            {"chat": "42", "account": "1234567891", "linked_at": datetime(2026, 11, 1, tzinfo=UTC)},
        )
    )

    linked = await submit(
        gw, entered(("611002", Zone.SINGLE, "4600"), account="1234567891"), "telegram", "42"
    )
    other = await submit(
        gw, entered(("517480", DAY, "12345"), ("517480", NIGHT, "6789")), "telegram", "42"
    )

    assert linked.status == "accepted"
    assert other.error is not None and other.error.code == "not_authorized"
    assert (
        other.reply == "ЛС 1234567890: нет доступа к этому ЛС. Сначала привяжите его командой /add."
    )
    assert [r["status"] for r in await rows(gw, t.messages)] == ["accepted", "rejected"]
    assert await count_rows(gw, t.readings) == 1
