"""Labelled, coded and serial-number messages, commands and chatter through the intake."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.bootstrap import Gateway
from gateway.replies import SMS_LIMIT
from tests.conftest import ACCOUNTS, METERS, TARIFFS, Clock, Registry, load_registry
from tests.integration.test_intake import send

# An account with a two-rate meter and hot and cold water in kitchen and bath.
FLAT = "5550000001"
FLAT_ACCOUNT = f'{FLAT},"ул. Кирова, 1, кв. 5",b3,,0,,\n'
FLAT_METERS = "".join(
    f"{FLAT},{meter},{service},{zone},{digits},2031-12-31,{last},2026-10-20\n"
    for meter, service, zone, digits, last in [
        ("700100", "electricity", "day", "6.1", "12000"),
        ("700100", "electricity", "night", "6.1", "6500"),
        ("700201", "hot_water", "kitchen", "5.3", "100"),
        ("700202", "hot_water", "bath", "5.3", "200"),
        ("700301", "cold_water", "kitchen", "5.3", "300"),
        ("700302", "cold_water", "bath", "5.3", "400"),
    ]
)


@pytest.fixture
async def flat(gw: Gateway, tmp_path: Path) -> Gateway:
    await load_registry(gw, tmp_path, Registry(ACCOUNTS + FLAT_ACCOUNT, METERS + FLAT_METERS))
    return gw


def zones(outcome: object) -> list[tuple[str, str, Decimal]]:
    return [(r.service, r.zone, r.value) for r in outcome.readings]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{FLAT} Д 12345 Н 6789", [("electricity", "day", 12345), ("electricity", "night", 6789)]),
        (f"{FLAT} t2 6789", [("electricity", "night", 6789)]),
        (f"{FLAT} ГВС 101 201", [("hot_water", "kitchen", 101), ("hot_water", "bath", 201)]),
        (f"{FLAT} хвс кухня 301", [("cold_water", "kitchen", 301)]),
        (f"{FLAT} гвс к 101 в 202", [("hot_water", "kitchen", 101), ("hot_water", "bath", 202)]),
        (
            f"{FLAT} 2Г201 1ЭН6789 1ЭД12345",
            [
                ("electricity", "day", 12345),
                ("electricity", "night", 6789),
                ("hot_water", "bath", 201),
            ],
        ),
        (f"{FLAT}#700202#205,5", [("hot_water", "bath", Decimal("205.5"))]),
        (
            f"{FLAT}#700100#12345#6789",
            [("electricity", "day", 12345), ("electricity", "night", 6789)],
        ),
    ],
)
async def test_labelled_message_stores_only_the_named_registers(
    flat: Gateway, text: str, expected: list[tuple[str, str, Decimal]]
) -> None:
    outcome = await send(flat, text)

    assert outcome.status == "accepted", outcome.reply
    assert zones(outcome) == [(s, z, Decimal(v)) for s, z, v in expected]


@pytest.mark.parametrize(
    ("text", "code", "reply"),
    [
        (
            f"{FLAT} К 101",
            "ambiguous_label",
            # The register names in full would make 140 characters: the short ones fit.
            f"ЛС {FLAT}: неясно, к какому счётчику «к». Формат: {FLAT} 12345 6789 123 45 67 89 "
            "(Д Н ГВС К ГВС В ХВС К ХВС В)",
        ),
        (
            f"{FLAT}#999#1#2#3",
            "unknown_meter",
            f"ЛС {FLAT}: нет счётчика «999». Формат: {FLAT} 12345 6789 123 45 67 89 "
            "(день ночь ГВС кухня ГВС ванна ХВС кухня ХВС ванна)",
        ),
        (
            "1234567891 ГВС 12",
            "unknown_meter",
            "ЛС 1234567891: нет счётчика «гвс». Формат: 1234567891 12345 (ЭЭ)",
        ),
        (
            "1234567890 д 12345 т1 12346",
            "ambiguous_label",
            "ЛС 1234567890: неясно, к какому счётчику «т1». Формат: 1234567890 12345 6789 "
            "(день ночь)",
        ),
    ],
)
async def test_label_problems_name_the_label_and_show_the_accounts_format(
    flat: Gateway, text: str, code: str, reply: str
) -> None:
    outcome = await send(flat, text)

    assert (outcome.error and outcome.error.code, outcome.reply) == (code, reply)


async def test_thousands_separator_is_joined_when_the_register_count_says_so(
    gw: Gateway,
) -> None:
    one = await send(gw, "1234567891 4 600")
    two = await send(gw, "1234567890 12 345 6 789", sender="+79000000002")

    assert [r.value for r in one.readings] == [Decimal(4600)]
    assert [r.value for r in two.readings] == [Decimal(12345), Decimal(6789)]


async def test_unreadable_text_starting_with_a_known_account_gets_that_accounts_format(
    gw: Gateway,
) -> None:
    outcome = await send(gw, "1234567890 12345 абв 6789")

    assert outcome.error is not None and outcome.error.code == "unparseable"
    assert outcome.reply == (
        "ЛС 1234567890: непонятное слово «абв». Формат: 1234567890 12345 6789 (день ночь)"
    )


async def test_help_command_is_answered_with_the_formats(gw: Gateway) -> None:
    for text in ("ПОМОЩЬ", "help", "Помощь!"):
        outcome = await send(gw, text)
        assert outcome.status == "answered"
        assert outcome.reply is not None and "1234567890 12345 6789" in outcome.reply


async def test_last_readings_command_lists_values_dates_and_tariffs(
    gw: Gateway, clock: Clock
) -> None:
    await send(gw, "1234567890 12345 6789")
    clock.advance(days=1)

    for text in ("1234567890 ?", "ПОСЛЕДНИЕ 1234567890", "last 1234567890"):
        outcome = await send(gw, text)
        assert (outcome.status, outcome.reply) == (
            "answered",
            "ЛС 1234567890: день 12345 (20.11.26), ночь 6789 (20.11.26). "
            "Тарифы ₽: день 6,80, ночь 3,45.",
        )
        assert outcome.reply is not None and len(outcome.reply) <= SMS_LIMIT


async def test_last_readings_of_an_unknown_account_is_unknown_account(gw: Gateway) -> None:
    outcome = await send(gw, "ПОСЛЕДНИЕ 9999999999")

    assert outcome.error is not None and outcome.error.code == "unknown_account"


async def test_chatter_gets_the_help_once_a_day_not_an_error_storm(
    gw: Gateway, clock: Clock
) -> None:
    replies = []
    for text in ("привет", "вы тут?", "ау"):
        replies.append((await send(gw, text, sender="+79990001122")).reply)
        clock.advance(minutes=5)
    clock.advance(days=1)
    next_day = await send(gw, "привет", sender="+79990001122")

    assert replies[0] is not None and "1234567890 12345 6789" in replies[0]
    assert replies[1:] == [None, None]
    assert next_day.reply == replies[0]


async def test_last_readings_mention_the_normative_charge_without_readings(
    gw: Gateway, tmp_path: Path
) -> None:
    accounts = ACCOUNTS.replace(
        "account,address,building,phone,debt,receipt_code,last_bill_total",
        "account,address,building,phone,debt,receipt_code,last_bill_total,residents",
    ).replace("D4E5F6,812.15", "D4E5F6,812.15,3")
    tariffs = TARIFFS.replace(
        "service,zone,price,valid_from", "service,zone,price,valid_from,normative"
    )
    tariffs = tariffs.replace(
        "electricity,single,6.43,2026-07-01", "electricity,single,6.43,2026-07-01,100"
    )
    await load_registry(gw, tmp_path, Registry(accounts, METERS, tariffs))

    outcome = await send(gw, "ПОСЛЕДНИЕ 1234567891")

    # 3 residents × 100 kWh × 6.43 ₽ = 1929.00 ₽
    assert outcome.reply == (
        "ЛС 1234567891: ЭЭ 4521 (19.10.26). Тариф 6,43 ₽. Без показаний по нормативу 1929,00 ₽."
    )


# --- grammar gaps found by trying real messages (issue 9, item 8) -------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # labels after their values, in brackets
        (
            f"{FLAT} 12345 (день) 6789 (ночь)",
            [("electricity", "day", 12345), ("electricity", "night", 6789)],
        ),
        # en and em dashes as separators, positionally over the six registers
        (
            f"{FLAT} — 12345 — 6789 – 101 – 201 — 301 — 401",
            [
                ("electricity", "day", 12345),
                ("electricity", "night", 6789),
                ("hot_water", "kitchen", 101),
                ("hot_water", "bath", 201),
                ("cold_water", "kitchen", 301),
                ("cold_water", "bath", 401),
            ],
        ),
        # a unit after each value
        (
            f"{FLAT} ГВС 101 м3 201 м3",
            [("hot_water", "kitchen", 101), ("hot_water", "bath", 201)],
        ),
        (
            f"{FLAT} д 12345кВт н 6789кВт",
            [("electricity", "day", 12345), ("electricity", "night", 6789)],
        ),
    ],
)
async def test_labels_after_values_dashes_and_units_are_read_end_to_end(
    flat: Gateway, text: str, expected: list[tuple[str, str, Decimal]]
) -> None:
    outcome = await send(flat, text)

    assert outcome.status == "accepted", outcome.reply
    assert zones(outcome) == [(s, z, Decimal(v)) for s, z, v in expected]


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        (
            f"{FLAT} ЭЭ 12100",
            f"ЛС {FLAT}: «ЭЭ 12100» — день или ночь? "
            "Напишите, например: день 12100 или ночь 12100.",
        ),
        (
            f"{FLAT} 101 ГВС",
            f"ЛС {FLAT}: «ГВС 101» — кухня или ванна? "
            "Напишите, например: ГВС кухня 101 или ГВС ванна 101.",
        ),
    ],
)
async def test_a_service_word_before_one_value_of_two_registers_asks_which(
    flat: Gateway, text: str, reply: str
) -> None:
    outcome = await send(flat, text)

    assert (outcome.status, outcome.error and outcome.error.code, outcome.reply) == (
        "rejected",
        "ambiguous_label",
        reply,
    )
    assert not outcome.readings


async def test_commands_with_fillers_and_punctuation_are_answered(gw: Gateway) -> None:
    await send(gw, "1234567890 12345 6789")

    last = await send(gw, "Последние: л/с 1234567890")
    helped = await send(gw, "HELP?")

    assert (last.status, helped.status) == ("answered", "answered")
    assert last.reply is not None and last.reply.startswith("ЛС 1234567890: день 12345")
    assert helped.reply is not None and "1234567890 12345 6789" in helped.reply
