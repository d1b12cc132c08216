"""billing_bridge.charge (the preliminary charge) and the Outcome JSON contract (pure)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from billing_bridge.charge import preliminary_charge, tariff_in_force, to_kopecks
from gateway.domain.model import Service, Tariff, Zone
from gateway.domain.outcome import (
    Charge,
    ChargeLine,
    Outcome,
    OutcomeError,
    ReadingLine,
    Status,
)

D = Decimal
ON = date(2026, 3, 20)
JAN = date(2026, 1, 1)
JUL = date(2026, 7, 1)

TARIFFS = (
    Tariff(Service.ELECTRICITY, Zone.SINGLE, D("6.43"), JAN),
    Tariff(Service.ELECTRICITY, Zone.DAY, D("7.10"), JAN),
    Tariff(Service.ELECTRICITY, Zone.NIGHT, D("3.05"), JAN),
    Tariff(Service.HOT_WATER, Zone.SINGLE, D("245.10"), JAN),
    Tariff(Service.COLD_WATER, Zone.SINGLE, D("48.20"), JAN),
)


def line(
    consumption: str, service: str = "electricity", zone: str = "single", meter: str = "517480"
) -> ReadingLine:
    return ReadingLine(meter, service, zone, D("1000"), D("1000") - D(consumption), D(consumption))


# --- to_kopecks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "kopecks"),
    [
        ("183.825", "183.83"),
        ("0.005", "0.01"),
        ("0.015", "0.02"),
        ("0.025", "0.03"),  # half-up, not half-even
        ("0.0049", "0.00"),
        ("2218.35", "2218.35"),
        ("100", "100.00"),
        ("-0.005", "-0.01"),
    ],
)
def test_to_kopecks_rounds_half_up(amount: str, kopecks: str) -> None:
    result = to_kopecks(D(amount))
    assert result == D(kopecks)
    assert str(result) == kopecks


# --- lines and totals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consumption", "service", "zone", "tariff", "amount"),
    [
        ("345", "electricity", "single", "6.43", "2218.35"),
        ("345", "electricity", "day", "7.10", "2449.50"),
        ("789", "electricity", "night", "3.05", "2406.45"),
        ("0.75", "hot_water", "single", "245.10", "183.83"),  # 183.825 rounds up
        ("0.125", "cold_water", "single", "48.20", "6.03"),  # 6.025 rounds up
        ("0", "electricity", "single", "6.43", "0.00"),
        ("1000", "electricity", "single", "6.43", "6430.00"),
    ],
)
def test_line_amount_is_consumption_times_tariff_in_kopecks(
    consumption: str, service: str, zone: str, tariff: str, amount: str
) -> None:
    charge = preliminary_charge([line(consumption, service, zone)], TARIFFS, D(0), ON)
    assert charge.lines == (ChargeLine("517480", zone, D(consumption), D(tariff), D(amount)),)
    assert str(charge.lines[0].amount) == amount


def test_each_line_is_rounded_before_summing() -> None:
    """0.75 m³ × 245.10 twice = 183.83 + 183.83 = 367.66 (not 367.65 from 367.650)."""
    readings = [line("0.75", "hot_water", "kitchen"), line("0.75", "hot_water", "bath")]
    charge = preliminary_charge(readings, TARIFFS, D(0), ON)
    assert charge.total == D("367.66")


def test_total_adds_a_positive_debt() -> None:
    charge = preliminary_charge([line("345")], TARIFFS, D("100"), ON)
    assert (charge.debt, charge.total) == (D("100.00"), D("2318.35"))


def test_total_does_not_subtract_an_overpayment() -> None:
    charge = preliminary_charge([line("345")], TARIFFS, D("-500.00"), ON)
    assert charge.total == D("2218.35")
    assert charge.debt == D("-500.00")


def test_zero_debt_total_is_the_sum_of_lines() -> None:
    readings = [line("345", zone="day"), line("789", zone="night")]
    charge = preliminary_charge(readings, TARIFFS, D("0"), ON)
    assert charge.total == D("4855.95")
    assert str(charge.total) == "4855.95"


def test_total_is_in_kopecks_even_without_lines() -> None:
    charge = preliminary_charge([], TARIFFS, D("0"), ON)
    assert charge == Charge((), D("0.00"), D("0.00"))
    assert str(charge.total) == "0.00"


def test_debt_is_rounded_to_kopecks_half_up() -> None:
    charge = preliminary_charge([], TARIFFS, D("10.005"), ON)
    assert (charge.debt, charge.total) == (D("10.01"), D("10.01"))


# --- the tariff in force ------------------------------------------------------------------

CHANGING = (
    Tariff(Service.ELECTRICITY, Zone.SINGLE, D("6.43"), JAN),
    Tariff(Service.ELECTRICITY, Zone.SINGLE, D("7.01"), JUL),
    Tariff(Service.ELECTRICITY, Zone.SINGLE, D("5.90"), date(2025, 7, 1)),
)


@pytest.mark.parametrize(
    ("on", "price"),
    [
        (date(2025, 12, 31), "5.90"),
        (date(2026, 1, 1), "6.43"),
        (date(2026, 6, 30), "6.43"),
        (date(2026, 7, 1), "7.01"),
        (date(2030, 1, 1), "7.01"),
    ],
)
def test_tariff_in_force_is_the_latest_valid_from_on_or_before_the_date(
    on: date, price: str
) -> None:
    tariff = tariff_in_force(CHANGING, Service.ELECTRICITY, Zone.SINGLE, on)
    assert tariff is not None
    assert tariff.price == D(price)


def test_reading_on_june_30_is_charged_at_the_january_price() -> None:
    charge = preliminary_charge([line("100")], CHANGING, D(0), date(2026, 6, 30))
    assert charge.lines[0].tariff == D("6.43")
    assert charge.total == D("643.00")


def test_reading_on_july_1_is_charged_at_the_july_price() -> None:
    charge = preliminary_charge([line("100")], CHANGING, D(0), date(2026, 7, 1))
    assert charge.lines[0].tariff == D("7.01")
    assert charge.total == D("701.00")


def test_no_tariff_valid_yet_is_none() -> None:
    assert tariff_in_force(CHANGING, Service.ELECTRICITY, Zone.SINGLE, date(2025, 6, 30)) is None


@pytest.mark.parametrize("service", [Service.HOT_WATER, Service.COLD_WATER])
@pytest.mark.parametrize("zone", [Zone.KITCHEN, Zone.BATH])
def test_water_riser_falls_back_to_the_single_tariff(service: Service, zone: Zone) -> None:
    tariff = tariff_in_force(TARIFFS, service, zone, ON)
    price = D("245.10") if service is Service.HOT_WATER else D("48.20")
    assert tariff == Tariff(service, Zone.SINGLE, price, JAN)


def test_water_riser_uses_its_own_tariff_when_it_has_one() -> None:
    own = Tariff(Service.HOT_WATER, Zone.KITCHEN, D("250.00"), JAN)
    assert tariff_in_force((*TARIFFS, own), Service.HOT_WATER, Zone.KITCHEN, ON) == own


def test_water_fallback_takes_the_single_tariff_in_force() -> None:
    tariffs = (
        Tariff(Service.HOT_WATER, Zone.SINGLE, D("245.10"), JAN),
        Tariff(Service.HOT_WATER, Zone.SINGLE, D("260.00"), JUL),
        Tariff(Service.HOT_WATER, Zone.KITCHEN, D("999.00"), date(2027, 1, 1)),
    )
    tariff = tariff_in_force(tariffs, Service.HOT_WATER, Zone.KITCHEN, date(2026, 8, 1))
    assert tariff == Tariff(Service.HOT_WATER, Zone.SINGLE, D("260.00"), JUL)


@pytest.mark.parametrize("zone", [Zone.DAY, Zone.NIGHT])
def test_electricity_zone_does_not_fall_back_to_single(zone: Zone) -> None:
    only_single = (Tariff(Service.ELECTRICITY, Zone.SINGLE, D("6.43"), JAN),)
    assert tariff_in_force(only_single, Service.ELECTRICITY, zone, ON) is None


def test_tariff_of_another_service_is_never_used() -> None:
    only_water = (Tariff(Service.HOT_WATER, Zone.SINGLE, D("245.10"), JAN),)
    assert tariff_in_force(only_water, Service.COLD_WATER, Zone.SINGLE, ON) is None


def test_line_without_tariff_has_no_amount_and_is_left_out_of_the_total() -> None:
    only_single = (Tariff(Service.ELECTRICITY, Zone.SINGLE, D("6.43"), JAN),)
    readings = [line("345", zone="day"), line("100", "electricity", "single", meter="2")]
    charge = preliminary_charge(readings, only_single, D("50"), ON)
    assert charge == Charge(
        lines=(
            ChargeLine("517480", "day", D(345), None, None),
            ChargeLine("2", "single", D(100), D("6.43"), D("643.00")),
        ),
        debt=D("50.00"),
        total=D("693.00"),
    )


def test_no_tariff_valid_yet_leaves_only_the_debt() -> None:
    charge = preliminary_charge([line("345")], CHANGING, D("10"), date(2020, 1, 1))
    only_line = ChargeLine("517480", "single", D(345), None, None)
    assert charge == Charge((only_line,), D("10.00"), D("10.00"))


@settings(max_examples=200, deadline=None)
@given(
    consumptions=st.lists(
        st.decimals(min_value=0, max_value=1000, places=3), min_size=1, max_size=4
    ),
    debt=st.decimals(min_value=-10_000, max_value=10_000, places=2),
)
def test_total_is_sum_of_rounded_lines_plus_positive_debt(
    consumptions: list[Decimal], debt: Decimal
) -> None:
    readings = [line(str(c)) for c in consumptions]
    charge = preliminary_charge(readings, TARIFFS, debt, ON)
    amounts = [ln.amount for ln in charge.lines]
    assert all(a is not None and a == a.quantize(D("0.01")) for a in amounts)
    assert charge.total == sum((a for a in amounts if a is not None), max(debt, D(0)))
    assert charge.total.as_tuple().exponent == -2


# --- the Outcome JSON contract ------------------------------------------------------------

ACCEPTED = Outcome(
    status=Status.ACCEPTED,
    account="1234567890",
    reply="Принято",
    readings=(
        ReadingLine("517480", "electricity", "day", D("12345"), D("12000"), D("345")),
        ReadingLine("517480", "electricity", "night", D("6789.5"), None, D("0")),
    ),
    charge=Charge(
        lines=(
            ChargeLine("517480", "day", D("345"), D("6.43"), D("2218.35")),
            ChargeLine("517480", "night", D("0"), None, None),
        ),
        debt=D("100.00"),
        total=D("2318.35"),
    ),
)

REJECTED = Outcome(
    status=Status.REJECTED,
    account="1234567890",
    reply="ЛС 1234567890: ЭЭ 12340 меньше прежнего 12345.",
    error=OutcomeError("below_previous", "ЛС 1234567890: ЭЭ 12340 меньше прежнего 12345."),
)


def test_accepted_outcome_json_has_the_contract_shape() -> None:
    assert ACCEPTED.to_json() == {
        "status": "accepted",
        "account": "1234567890",
        "error": None,
        "readings": [
            {
                "meter": "517480",
                "service": "electricity",
                "zone": "day",
                "value": "12345",
                "previous": "12000",
                "consumption": "345",
            },
            {
                "meter": "517480",
                "service": "electricity",
                "zone": "night",
                "value": "6789.5",
                "previous": None,
                "consumption": "0",
            },
        ],
        "charge": {
            "lines": [
                {
                    "meter": "517480",
                    "zone": "day",
                    "consumption": "345",
                    "tariff": "6.43",
                    "amount": "2218.35",
                },
                {
                    "meter": "517480",
                    "zone": "night",
                    "consumption": "0",
                    "tariff": None,
                    "amount": None,
                },
            ],
            "debt": "100.00",
            "total": "2318.35",
        },
        "reply": "Принято",
    }


def test_rejected_outcome_json_has_the_error_and_no_charge() -> None:
    message = "ЛС 1234567890: ЭЭ 12340 меньше прежнего 12345."
    assert REJECTED.to_json() == {
        "status": "rejected",
        "account": "1234567890",
        "error": {"code": "below_previous", "message": message},
        "readings": [],
        "charge": None,
        "reply": message,
    }


def test_outcome_json_keys_are_in_contract_order() -> None:
    assert list(ACCEPTED.to_json()) == ["status", "account", "error", "readings", "charge", "reply"]


def test_outcome_json_numbers_never_use_an_exponent() -> None:
    outcome = Outcome(
        Status.ACCEPTED,
        "1",
        None,
        readings=(ReadingLine("m", "electricity", "single", D("1E+3"), D("0E-3"), D("1E+3")),),
    )
    reading = outcome.to_json()["readings"][0]
    assert (reading["value"], reading["previous"], reading["consumption"]) == (
        "1000",
        "0.000",
        "1000",
    )


@pytest.mark.parametrize(
    "outcome",
    [
        ACCEPTED,
        REJECTED,
        Outcome(
            Status.DUPLICATE,
            "1234567890",
            "Принято",
            readings=ACCEPTED.readings,
            charge=ACCEPTED.charge,
        ),
        Outcome(Status.REJECTED, None, None, OutcomeError("rate_limited", "rate_limited")),
        Outcome(Status.HELD, "0012345678", None),
    ],
    ids=["accepted", "rejected", "duplicate", "rate_limited", "held"],
)
def test_outcome_survives_a_json_round_trip(outcome: Outcome) -> None:
    text = json.dumps(outcome.to_json(), ensure_ascii=False)
    assert Outcome.from_json(json.loads(text)) == outcome


def test_round_trip_keeps_the_exact_decimal_digits() -> None:
    back = Outcome.from_json(json.loads(json.dumps(ACCEPTED.to_json())))
    assert back.charge is not None
    assert str(back.charge.debt) == "100.00"
    assert str(back.readings[1].value) == "6789.5"


def test_normative_charge_is_residents_times_normative_times_price_per_service() -> None:
    """2 residents × 100 kWh × 6.43 = 1286.00; hot water 2 × 3.5 m³ × 245.10 = 1715.70."""
    from billing_bridge.charge import normative_charge

    tariffs = [
        Tariff(Service.ELECTRICITY, Zone.SINGLE, Decimal("5.82"), date(2026, 1, 1), Decimal(90)),
        Tariff(Service.ELECTRICITY, Zone.SINGLE, Decimal("6.43"), date(2026, 7, 1), Decimal(100)),
        Tariff(Service.HOT_WATER, Zone.SINGLE, Decimal("245.10"), date(2026, 7, 1), Decimal("3.5")),
        Tariff(Service.COLD_WATER, Zone.SINGLE, Decimal("52.37"), date(2026, 7, 1)),
    ]
    services = [Service.ELECTRICITY, Service.HOT_WATER, Service.HOT_WATER, Service.COLD_WATER]

    assert normative_charge(services, 2, tariffs, date(2026, 11, 20)) == Decimal("3001.70")
    assert normative_charge(services, 2, tariffs, date(2026, 3, 1)) == Decimal("1047.60")
    assert normative_charge(services, None, tariffs, date(2026, 11, 20)) is None
    assert normative_charge([Service.COLD_WATER], 3, tariffs, date(2026, 11, 20)) is None
