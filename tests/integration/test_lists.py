"""An elder's group list through the real intake (``Intake.handle_list``), on SQLite and
PostgreSQL: every data line decided on its own, all stored with the one message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.bootstrap import Gateway
from gateway.domain.model import InboundMessage
from gateway.intake import LIST_BATCH
from gateway.registry import import_file
from gateway.storage import tables as t
from tests.conftest import Registry, count_rows, load_registry, select_rows

ELDER = "elder@example.org"
LIST = """Добрый день! Показания по дому 10, Пушкинская.

1. кв. 1 — 1234567890 12345 6789
2) кв 2: 1234567891 4600
№3 квартира 3, 1234567892 121 99
4. кв. 2 — 1234567891 4600
5. 0012345678 999990 311
6. кв. 1 — 1234567890 1.2.3

тел. 8 912 000 00 00
С уважением, Иванова М.И.
"""


@pytest.fixture
async def elder(gw: Gateway, tmp_path: Path) -> Gateway:
    path = tmp_path / "elders.csv"
    path.write_text(f"email,building\n{ELDER},b1\n", encoding="utf-8")
    assert (await import_file(gw.db, "elders", path)).errors == []
    return gw


def message(gw: Gateway, text: str, external_id: str | None = None) -> InboundMessage:
    return InboundMessage("email", ELDER, text, gw.clock(), external_id)


async def test_every_data_line_gets_its_own_outcome_with_its_line_number(elder: Gateway) -> None:
    result = await elder.intake.handle_list(message(elder, LIST))

    assert [
        (line.line, line.outcome.status.value, line.outcome.error and line.outcome.error.code)
        for line in result.lines
    ] == [
        (3, "accepted", None),
        (4, "accepted", None),
        (5, "accepted", None),
        (6, "duplicate", None),  # the same values again: confirmed, not an error
        (7, "rejected", "not_authorized"),  # another building's account
        (8, "rejected", "unparseable"),
    ]
    assert result.lines[0].text == "1. кв. 1 — 1234567890 12345 6789"
    assert result.lines[5].outcome.reply == (
        "ЛС 1234567890: число записано неверно. Формат: 1234567890 12345 6789 (день ночь)"
    )
    assert result.summary() == "6 lines: 3 accepted, 1 duplicates, 0 held, 2 rejected"


async def test_a_later_line_for_the_same_account_corrects_an_earlier_one(elder: Gateway) -> None:
    """Lines of one batch are stored together, yet a later line sees an earlier one's
    reading: a changed value is a correction of it, billed as one."""
    text = "1234567891 4600\n1234567892 121 99\n1234567891 4610\n"

    result = await elder.intake.handle_list(message(elder, text))

    assert [line.outcome.status.value for line in result.lines] == ["accepted"] * 3
    assert (result.lines[2].outcome.reply or "").startswith("Исправлено")
    statuses = [(r["value"], r["status"]) for r in await select_rows(elder.db, t.readings)]
    assert sorted(statuses) == sorted(
        [(4600, "replaced"), (121, "accepted"), (99, "accepted"), (4610, "accepted")]
    )
    payloads = [json.loads(r["payload"]) for r in await select_rows(elder.db, t.outbox)]
    correction = next(p for p in payloads if p["value"] == "4610")
    assert correction["kind"] == "correction"
    assert correction["replaces"]["reading_id"] == next(
        p["reading_id"] for p in payloads if p["value"] == "4600"
    )


async def test_a_list_is_one_audit_row_holding_every_line_and_owning_its_readings(
    elder: Gateway,
) -> None:
    result = await elder.intake.handle_list(message(elder, LIST))

    (row,) = await select_rows(elder.db, t.messages)
    readings = await select_rows(elder.db, t.readings)
    assert row["id"] == result.message_id and row["channel"] == "email"
    assert row["reply"] == result.summary()
    assert {r["message_id"] for r in readings} == {result.message_id}
    assert len(readings) == 5  # day+night, single, kitchen+bath
    assert await count_rows(elder.db, t.outbox) == 5


async def test_a_redelivered_list_is_answered_as_before_and_stored_once(elder: Gateway) -> None:
    first = await elder.intake.handle_list(message(elder, LIST, "<list-1@example.org>"))
    again = await elder.intake.handle_list(message(elder, LIST, "<list-1@example.org>"))

    assert [line.to_json() for line in again.lines] == [line.to_json() for line in first.lines]
    assert await count_rows(elder.db, t.messages) == 1
    assert await count_rows(elder.db, t.readings) == 5


async def test_the_rate_limit_counts_the_list_not_its_lines(elder: Gateway) -> None:
    many = "\n".join(f"{i}. 1234567891 {4600 + i}" for i in range(1, 31))
    result = await elder.intake.handle_list(message(elder, many))

    assert len(result.lines) == 30 and not result.rate_limited
    assert await count_rows(elder.db, t.messages) == 1


async def test_a_list_with_no_data_line_is_recorded_and_answers_nothing(elder: Gateway) -> None:
    result = await elder.intake.handle_list(message(elder, "Добрый день!\nСпасибо"))

    assert result.lines == ()
    (row,) = await select_rows(elder.db, t.messages)
    assert row["reply"] == "0 lines: 0 accepted, 0 duplicates, 0 held, 0 rejected"


async def test_ten_thousand_lines_are_stored_in_batches_with_their_outbox_rows(
    gw: Gateway, tmp_path: Path
) -> None:
    count = 10_000
    accounts = "account,address,building,phone,debt\n" + "".join(
        f"7{i:09d},addr,big,,0\n" for i in range(count)
    )
    meters = "account,meter,service,zone,digits\n" + "".join(
        f"7{i:09d},M{i},electricity,single,6.1\n" for i in range(count)
    )
    await load_registry(gw, tmp_path, Registry(accounts=accounts, meters=meters))
    elders = tmp_path / "elders.csv"
    elders.write_text(f"email,building\n{ELDER},big\n", encoding="utf-8")
    await import_file(gw.db, "elders", elders)
    text = "\n".join(f"кв. {i} — 7{i:09d} {100 + i % 50}" for i in range(count))

    result = await gw.intake.handle_list(message(gw, text))

    assert result.counts()["accepted"] == count
    assert count > LIST_BATCH  # several transactions
    assert await count_rows(gw.db, t.readings) == count
    assert await count_rows(gw.db, t.outbox) == count
    stored = await gw.db.run(
        lambda uow: uow.conn.scalar(select(t.messages.c.outcome).where(t.messages.c.id == 1))
    )
    assert '"complete": true' in stored
