"""Who may act on which account, through the real intake on SQLite and PostgreSQL: SMS
senders on any account (and their own without the number), elders on their buildings."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.bootstrap import Gateway
from gateway.domain.model import InboundMessage
from gateway.domain.outcome import Outcome
from gateway.registry import import_file
from gateway.storage import tables as t
from tests.conftest import ACCOUNTS, Registry, count_rows, load_registry

ELDER = "Elder@Example.org"


async def send(gw: Gateway, text: str, sender: str, channel: str = "sms") -> Outcome:
    return await gw.intake(InboundMessage(channel, sender, text, gw.clock()))


async def test_a_phones_own_account_may_be_left_out(gw: Gateway) -> None:
    outcome = await send(gw, "4600", "+79120000002")  # the registry phone of 1234567891

    assert (outcome.status.value, outcome.account) == ("accepted", "1234567891")
    assert outcome.reply == "Принято, ЛС 1234567891: ЭЭ 4600. Предварительно к оплате 507,97 ₽."


async def test_a_phone_written_another_way_is_still_the_accounts_phone(gw: Gateway) -> None:
    outcome = await send(gw, "12345 6789", "8 912 000-00-01")

    assert (outcome.status.value, outcome.account) == ("accepted", "1234567890")


async def test_a_phone_of_no_account_gets_unknown_account_as_before(gw: Gateway) -> None:
    outcome = await send(gw, "12345 6789", "+79995550000")

    assert outcome.error is not None
    assert (outcome.error.code, outcome.account) == ("unknown_account", "12345")


async def test_a_written_account_wins_over_the_phones_own(gw: Gateway) -> None:
    outcome = await send(gw, "1234567891 4600", "+79120000001")

    assert (outcome.status.value, outcome.account) == ("accepted", "1234567891")


async def test_a_phone_of_several_accounts_is_asked_which_one(gw: Gateway, tmp_path: Path) -> None:
    shared = ACCOUNTS.replace("+79120000003", "+79120000001")  # 1234567892 shares it
    await load_registry(gw, tmp_path, Registry(accounts=shared))

    outcome = await send(gw, "12345 6789", "+79120000001")

    assert outcome.error is not None and outcome.error.code == "account_required"
    assert outcome.reply == (
        "С вашего номера зарегистрированы ЛС 1234567890, 1234567892. "
        "Укажите номер ЛС перед показаниями, напр. 1234567890 12345."
    )
    assert await count_rows(gw.db, t.readings) == 0


@pytest.fixture
async def elder(gw: Gateway, tmp_path: Path) -> Gateway:
    path = tmp_path / "elders.csv"
    path.write_text("email,building\nelder@example.org,b1\n", encoding="utf-8")
    report = await import_file(gw.db, "elders", path)
    assert report.errors == []
    return gw


async def test_an_elder_acts_on_the_accounts_of_their_building(elder: Gateway) -> None:
    outcome = await send(elder, "1234567891 4600", ELDER, channel="email")

    assert (outcome.status.value, outcome.account) == ("accepted", "1234567891")


async def test_an_elder_is_refused_another_buildings_account_and_nothing_is_stored(
    elder: Gateway,
) -> None:
    outcome = await send(elder, "0012345678 999990", ELDER, channel="email")

    assert outcome.error is not None
    assert (outcome.error.code, outcome.account) == ("not_authorized", "0012345678")
    assert outcome.reply == (
        "ЛС 0012345678: нет доступа к этому ЛС. Показания по нему передаёт старший по его "
        "дому; чтобы добавить дом, обратитесь к поставщику."
    )
    assert await count_rows(elder.db, t.readings) == 0
    assert await count_rows(elder.db, t.messages) == 1


async def test_an_address_that_is_no_elder_may_act_on_nothing(elder: Gateway) -> None:
    outcome = await send(elder, "1234567891 4600", "someone@example.org", channel="email")

    assert outcome.error is not None and outcome.error.code == "not_authorized"


async def test_the_last_readings_of_another_buildings_account_are_refused(
    elder: Gateway,
) -> None:
    outcome = await send(elder, "ПОСЛЕДНИЕ 0012345678", ELDER, channel="email")

    assert outcome.error is not None and outcome.error.code == "not_authorized"


async def test_an_elder_may_not_leave_the_account_out(elder: Gateway) -> None:
    outcome = await send(elder, "4600", ELDER, channel="email")

    assert outcome.error is not None and outcome.error.code == "unparseable"
