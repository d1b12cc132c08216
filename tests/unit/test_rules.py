"""gateway.domain.rules and Capacity: the checks a submission must pass (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from gateway.domain.errors import ErrorCode
from gateway.domain.model import (
    Account,
    Capacity,
    PreviousReading,
    Register,
    Service,
    Zone,
    digit_counts,
)
from gateway.domain.rules import (
    Checked,
    Rejection,
    check,
    days_since_previous,
    is_duplicate,
    outliers,
    repeat_of_current,
)

TODAY = date(2026, 3, 20)
MAX_JUMP = {
    Service.ELECTRICITY: Decimal(1000),
    Service.HOT_WATER: Decimal(30),
    Service.COLD_WATER: Decimal(30),
}
D = Decimal


def reg(
    *,
    id: int = 1,
    meter: str = "517480",
    service: Service = Service.ELECTRICITY,
    zone: Zone = Zone.SINGLE,
    capacity: str = "6.3",
    verified_until: date | None = None,
    previous: str | None = None,
    previous_is_ours: bool = False,
    compared_with: str | None = None,
    consumption: str | None = None,
    current: str | None = None,
    previous_on: date = date(2026, 2, 20),
) -> Register:
    prev = None
    if previous is not None:
        prev = PreviousReading(value=D(previous), taken_on=previous_on)
    this_period = None
    if current is not None:
        this_period = PreviousReading(
            value=D(current),
            taken_on=date(2026, 3, 20),
            compared_with=None if compared_with is None else D(compared_with),
            consumption=None if consumption is None else D(consumption),
            reading_id=99,
        )
    return Register(
        id=id,
        account="1234567890",
        meter=meter,
        service=service,
        zone=zone,
        capacity=Capacity.parse(capacity),
        verified_until=verified_until,
        previous=prev,
        previous_is_ours=previous_is_ours,
        current=this_period,
    )


def run(*pairs: tuple[Register, str]) -> list[Checked] | Rejection:
    return check([(r, D(v)) for r, v in pairs], today=TODAY, max_jump=MAX_JUMP)


# --- Capacity -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "integer_digits", "fraction_digits"),
    [
        ("6.3", 6, 3),
        ("5.3", 5, 3),
        ("6", 6, 0),
        ("6.0", 6, 0),
        (" 6.3 ", 6, 3),
        ("1.0", 1, 0),
        ("12.6", 12, 6),
        ("8.1", 8, 1),
        ("006.03", 6, 3),
    ],
)
def test_capacity_parse_reads_integer_and_fraction_digits(
    text: str, integer_digits: int, fraction_digits: int
) -> None:
    assert Capacity.parse(text) == Capacity(integer_digits, fraction_digits)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "6,3",
        ".3",
        "0.3",
        "0",
        "13",
        "13.0",
        "6.7",
        "6.3.1",
        "a",
        "a.3",
        "6.x",
        "-6.3",
        "6.-3",
        "6 .3",
        "six",
        "9" * 5000 + ".3",
        "6." + "9" * 5000,
    ],
)
def test_capacity_parse_rejects_invalid_text_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        Capacity.parse(text)


def test_capacity_str_is_the_printed_form() -> None:
    assert str(Capacity.parse("6.3")) == "6.3"
    assert str(Capacity.parse("5")) == "5.0"


@pytest.mark.parametrize(
    ("capacity", "rollover"),
    [("6.3", D(1_000_000)), ("5.3", D(100_000)), ("1.0", D(10)), ("12.6", D(10**12))],
)
def test_capacity_rollover_is_ten_to_the_integer_digits(capacity: str, rollover: Decimal) -> None:
    assert Capacity.parse(capacity).rollover == rollover


@pytest.mark.parametrize(
    ("capacity", "value", "fits"),
    [
        ("6.3", "05778", True),
        ("6.3", "0", True),
        ("6.3", "999999.999", True),
        ("6.3", "999999", True),
        ("6.3", "1000000", False),  # 7 integer digits
        ("6.3", "1234567", False),
        ("6.3", "1.2345", False),  # 4 fraction digits
        ("6.3", "0.0001", False),
        ("6.3", "123.4500", True),  # trailing zeros are not digits of the value
        ("6.3", "5778.000000", True),
        ("6.3", "1E+6", False),
        ("6.3", "-1", False),
        ("6.0", "5778.0", True),
        ("6.0", "5778.5", False),
        ("5.3", "99999.999", True),
        ("5.3", "100000", False),
        ("1.0", "9", True),
        ("1.0", "10", False),
        ("6.3", "0.000", True),
        ("6.3", "-0", True),
        ("6.3", "0E+7", True),
        ("6.3", "0.5", True),
        ("6.1", "0.05", False),
        # More digits than a Decimal context holds (28): counted exactly, not rounded away.
        ("6.1", "123456." + "0" * 30 + "1", False),
        ("6.1", "123456." + "0" * 40, True),
        ("12.6", "9" * 5000, False),
        ("12.6", "0" * 5000 + "1", True),
        ("12.6", "1." + "1" * 5000, False),
        ("6.3", "Infinity", False),
        ("6.3", "NaN", False),
    ],
)
def test_capacity_fits(capacity: str, value: str, fits: bool) -> None:
    assert Capacity.parse(capacity).fits(D(value)) is fits


@pytest.mark.parametrize(
    ("value", "counts"),
    [
        ("0012.500", (2, 1)),
        ("0.0", (1, 0)),
        ("0", (1, 0)),
        ("0.05", (1, 2)),
        ("1E+3", (4, 0)),
        ("100", (3, 0)),
        ("9" * 5000, (5000, 0)),
        ("1." + "2" * 5000 + "000", (1, 5000)),
    ],
)
def test_digit_counts_are_integer_digits_without_leading_zeros_and_fraction_without_trailing(
    value: str, counts: tuple[int, int]
) -> None:
    assert digit_counts(D(value)) == counts


@settings(max_examples=300, deadline=None)
@given(st.decimals(min_value=0, allow_nan=False, allow_infinity=False))
def test_digit_counts_agree_with_the_written_digits(value: Decimal) -> None:
    # copy_abs, not abs(): abs() rounds to the context precision (28 digits).
    whole, _, fraction = format(value.copy_abs(), "f").partition(".")
    assert digit_counts(value) == (len(whole.lstrip("0")) or 1, len(fraction.rstrip("0")))


# --- check: each rule ----------------------------------------------------------------------


def test_value_with_seven_integer_digits_is_too_many_digits() -> None:
    r = reg(capacity="6.3")
    assert run((r, "1234567")) == Rejection(ErrorCode.TOO_MANY_DIGITS, r, D(1234567))


def test_value_with_four_fraction_digits_is_too_many_digits() -> None:
    r = reg(capacity="6.3")
    assert run((r, "1.2345")) == Rejection(ErrorCode.TOO_MANY_DIGITS, r, D("1.2345"))


def test_value_of_5000_digits_is_too_many_digits() -> None:
    """Beyond Python's 4,300-digit int/str limit: an ordinary rejection, not an error."""
    r = reg(capacity="12.6")
    assert run((r, "9" * 5000)) == Rejection(ErrorCode.TOO_MANY_DIGITS, r, D("9" * 5000))


def test_value_with_5000_fraction_digits_is_too_many_digits() -> None:
    r = reg(capacity="6.3")
    value = "1." + "5" * 5000
    assert run((r, value)) == Rejection(ErrorCode.TOO_MANY_DIGITS, r, D(value))


def test_5000_digit_value_on_a_later_register_is_too_many_digits() -> None:
    day, night = reg(id=1, zone=Zone.DAY), reg(id=2, zone=Zone.NIGHT)
    assert run((day, "12345"), (night, "7" * 5000)) == Rejection(
        ErrorCode.TOO_MANY_DIGITS, night, D("7" * 5000)
    )


def test_value_with_leading_zero_fits_the_capacity() -> None:
    r = reg(capacity="5.0")
    assert run((r, "05778")) == [Checked(r, D(5778), None, D(0))]


def test_verification_expired_before_today_rejects() -> None:
    r = reg(verified_until=date(2026, 3, 19), previous="100")
    assert run((r, "150")) == Rejection(ErrorCode.VERIFICATION_EXPIRED, r, D(150))


def test_verification_until_today_still_passes() -> None:
    r = reg(verified_until=TODAY, previous="100")
    assert run((r, "150")) == [Checked(r, D(150), D(100), D(50))]


def test_no_verification_date_passes() -> None:
    r = reg(verified_until=None, previous="100")
    assert run((r, "150")) == [Checked(r, D(150), D(100), D(50))]


def test_first_reading_without_previous_consumes_zero() -> None:
    r = reg(previous=None)
    assert run((r, "12345")) == [Checked(r, D(12345), None, D(0), rolled_over=False)]


def test_value_equal_to_previous_consumes_zero() -> None:
    r = reg(previous="12345")
    assert run((r, "12345")) == [Checked(r, D(12345), D(12345), D(0))]


def test_value_above_previous_consumes_the_difference() -> None:
    r = reg(previous="12000")
    assert run((r, "12345.5")) == [Checked(r, D("12345.5"), D(12000), D("345.5"))]


def test_value_below_previous_rejects_with_the_previous_as_limit() -> None:
    r = reg(previous="12345")
    assert run((r, "12340")) == Rejection(ErrorCode.BELOW_PREVIOUS, r, D(12340), D(12345))


def test_six_digit_meter_rolls_over_past_999999() -> None:
    """Previous 999950, value 30: the counter wrapped, consumption 80."""
    r = reg(capacity="6.3", previous="999950")
    assert run((r, "30")) == [Checked(r, D(30), D(999950), D(80), rolled_over=True)]


def test_rollover_with_fractions_counts_exactly() -> None:
    r = reg(capacity="6.3", previous="999999.9")
    assert run((r, "0.1")) == [Checked(r, D("0.1"), D("999999.9"), D("0.2"), rolled_over=True)]


def test_rollover_of_a_five_digit_water_meter() -> None:
    r = reg(service=Service.HOT_WATER, capacity="5.3", previous="99990")
    assert run((r, "5")) == [Checked(r, D(5), D(99990), D(15), rolled_over=True)]


def test_wrapped_consumption_above_max_jump_is_below_previous() -> None:
    """Previous 500000, value 10: wrapping would mean 500010 kWh, so it is a lower value."""
    r = reg(capacity="6.3", previous="500000")
    assert run((r, "10")) == Rejection(ErrorCode.BELOW_PREVIOUS, r, D(10), D(500000))


def test_wrapped_consumption_equal_to_max_jump_is_a_rollover() -> None:
    r = reg(capacity="6.3", previous="999000")
    assert run((r, "0")) == [Checked(r, D(0), D(999000), D(1000), rolled_over=True)]


def test_wrapped_consumption_just_above_max_jump_is_below_previous() -> None:
    r = reg(capacity="6.3", previous="999000")
    assert run((r, "0.1")) == Rejection(ErrorCode.BELOW_PREVIOUS, r, D("0.1"), D(999000))


def test_electricity_jump_of_exactly_1000_is_accepted() -> None:
    r = reg(previous="12000")
    assert run((r, "13000")) == [Checked(r, D(13000), D(12000), D(1000))]


def test_electricity_jump_of_1000_1_is_too_large() -> None:
    r = reg(previous="12000")
    assert run((r, "13000.1")) == Rejection(ErrorCode.JUMP_TOO_LARGE, r, D("13000.1"), D(1000))


@pytest.mark.parametrize("service", [Service.HOT_WATER, Service.COLD_WATER])
def test_water_jump_of_30_is_accepted(service: Service) -> None:
    r = reg(service=service, capacity="5.3", previous="100")
    assert run((r, "130")) == [Checked(r, D(130), D(100), D(30))]


@pytest.mark.parametrize("service", [Service.HOT_WATER, Service.COLD_WATER])
def test_water_jump_above_30_is_too_large(service: Service) -> None:
    r = reg(service=service, capacity="5.3", previous="100")
    assert run((r, "130.001")) == Rejection(ErrorCode.JUMP_TOO_LARGE, r, D("130.001"), D(30))


def test_jump_limit_comes_from_max_jump_argument() -> None:
    r = reg(previous="100")
    result = check([(r, D(160))], today=TODAY, max_jump={**MAX_JUMP, Service.ELECTRICITY: D(50)})
    assert result == Rejection(ErrorCode.JUMP_TOO_LARGE, r, D(160), D(50))


def test_first_reading_is_never_a_jump() -> None:
    r = reg(previous=None)
    assert run((r, "999999")) == [Checked(r, D(999999), None, D(0))]


# --- check: rule order and all-or-nothing --------------------------------------------------


def test_too_many_digits_beats_verification_expired_on_one_register() -> None:
    r = reg(verified_until=date(2020, 1, 1), previous="100")
    assert run((r, "1234567")).code is ErrorCode.TOO_MANY_DIGITS  # type: ignore[union-attr]


def test_too_many_digits_on_a_later_register_beats_expiry_on_an_earlier_one() -> None:
    expired = reg(id=1, zone=Zone.DAY, verified_until=date(2020, 1, 1), previous="100")
    big = reg(id=2, zone=Zone.NIGHT, previous="100")
    result = run((expired, "150"), (big, "1234567"))
    assert result == Rejection(ErrorCode.TOO_MANY_DIGITS, big, D(1234567))


def test_verification_expired_beats_below_previous() -> None:
    lower = reg(id=1, zone=Zone.DAY, previous="500")
    expired = reg(id=2, zone=Zone.NIGHT, verified_until=date(2026, 3, 1), previous="100")
    result = run((lower, "400"), (expired, "150"))
    assert result == Rejection(ErrorCode.VERIFICATION_EXPIRED, expired, D(150))


def test_below_previous_beats_jump_too_large() -> None:
    jump = reg(id=1, zone=Zone.DAY, previous="100")
    lower = reg(id=2, zone=Zone.NIGHT, previous="500")
    result = run((jump, "5000"), (lower, "400"))
    assert result == Rejection(ErrorCode.BELOW_PREVIOUS, lower, D(400), D(500))


def test_message_failing_every_rule_reports_too_many_digits() -> None:
    jump = reg(id=1, zone=Zone.DAY, previous="100")
    lower = reg(id=2, zone=Zone.NIGHT, previous="500")
    expired = reg(id=3, service=Service.HOT_WATER, verified_until=date(2020, 1, 1))
    big = reg(id=4, service=Service.COLD_WATER, capacity="5.3", previous="1")
    result = run((jump, "5000"), (lower, "400"), (expired, "1"), (big, "100000"))
    assert result == Rejection(ErrorCode.TOO_MANY_DIGITS, big, D(100000))


def test_first_failing_register_is_reported_for_the_same_rule() -> None:
    a = reg(id=1, zone=Zone.DAY, previous="500")
    b = reg(id=2, zone=Zone.NIGHT, previous="600")
    assert run((a, "400"), (b, "500")) == Rejection(ErrorCode.BELOW_PREVIOUS, a, D(400), D(500))


def test_one_bad_register_rejects_the_whole_message() -> None:
    good = reg(id=1, zone=Zone.DAY, previous="12000")
    bad = reg(id=2, zone=Zone.NIGHT, previous="6789")
    result = run((good, "12345"), (bad, "6000"))
    assert isinstance(result, Rejection)
    assert result.register == bad


def test_all_registers_pass_together_in_order() -> None:
    day = reg(id=1, zone=Zone.DAY, previous="12000")
    night = reg(id=2, zone=Zone.NIGHT, previous="6000")
    assert run((day, "12345"), (night, "6789")) == [
        Checked(day, D(12345), D(12000), D(345)),
        Checked(night, D(6789), D(6000), D(789)),
    ]


@settings(max_examples=200, deadline=None)
@given(
    previous=st.integers(min_value=0, max_value=999_999),
    value=st.integers(min_value=0, max_value=999_999),
)
def test_accepted_consumption_never_exceeds_max_jump(previous: int, value: int) -> None:
    """Whatever the values, an accepted 6-digit electricity reading consumed 0..1000."""
    r = reg(capacity="6.0", previous=str(previous))
    result = run((r, str(value)))
    if isinstance(result, Rejection):
        assert result.code in (ErrorCode.BELOW_PREVIOUS, ErrorCode.JUMP_TOO_LARGE)
    else:
        (item,) = result
        assert D(0) <= item.consumption <= D(1000)
        assert (previous + item.consumption) % 1_000_000 == value
        assert item.rolled_over is (value < previous)


# --- duplicates -----------------------------------------------------------------------------


def test_same_values_as_this_periods_readings_are_a_duplicate() -> None:
    day = reg(id=1, zone=Zone.DAY, previous="12000", current="12345")
    night = reg(id=2, zone=Zone.NIGHT, previous="6500", current="6789")
    assert is_duplicate([(day, D(12345)), (night, D("6789.0"))]) is True


def test_same_value_as_an_earlier_periods_reading_is_not_a_duplicate() -> None:
    """Zero consumption since last month is a new reading, not a repeat."""
    r = reg(previous="12345", previous_is_ours=True)
    assert is_duplicate([(r, D(12345))]) is False


def test_one_changed_value_is_not_a_duplicate() -> None:
    day = reg(id=1, zone=Zone.DAY, current="12345")
    night = reg(id=2, zone=Zone.NIGHT, current="6789")
    assert is_duplicate([(day, D(12345)), (night, D(6790))]) is False


def test_one_register_without_a_reading_this_period_is_not_a_duplicate() -> None:
    day = reg(id=1, zone=Zone.DAY, current="12345")
    night = reg(id=2, zone=Zone.NIGHT, previous="6789")
    assert is_duplicate([(day, D(12345)), (night, D(6789))]) is False


def test_repeat_of_current_presents_this_periods_reading_again() -> None:
    r = reg(previous="12000", current="12345", compared_with="12000", consumption="345")
    assert repeat_of_current(r) == Checked(r, D(12345), D(12000), D(345), rolled_over=False)


def test_repeat_of_a_first_reading_consumed_zero() -> None:
    r = reg(current="12345")
    assert repeat_of_current(r) == Checked(r, D(12345), None, D(0))


# --- outliers -----------------------------------------------------------------------------

TODAY_OUTLIER = date(2026, 3, 22)  # 30 days after the previous reading (2026-02-20)


def outlier_ids(consumption: str, history: tuple[str, int] | None) -> list[int]:
    r = reg(id=7, previous="1000")
    if history is not None:
        r = replace(r, history=(D(history[0]), history[1]))
    item = Checked(r, D(1000) + D(consumption), D(1000), D(consumption))
    found = outliers([item], today=TODAY_OUTLIER, factor=D(3), min_days=60)
    return [c.register.id for c in found]


def test_consumption_per_day_above_three_times_the_average_is_an_outlier() -> None:
    """History 900 kWh over 90 days = 10/day; 30 days at 31/day = 930 > 3 × 10."""
    assert outlier_ids("930", ("900", 90)) == [7]


def test_consumption_at_exactly_three_times_the_average_is_not_an_outlier() -> None:
    assert outlier_ids("900", ("900", 90)) == []


def test_history_shorter_than_the_minimum_is_never_an_outlier() -> None:
    assert outlier_ids("5000", ("100", 59)) == []


def test_no_history_or_no_use_is_never_an_outlier() -> None:
    assert outlier_ids("5000", None) == []
    assert outlier_ids("5000", ("0", 365)) == []


def test_days_since_previous_is_at_least_one_and_none_without_a_dated_previous() -> None:
    assert days_since_previous(reg(previous="1"), date(2026, 2, 20)) == 1
    assert days_since_previous(reg(previous="1"), date(2026, 3, 22)) == 30
    assert days_since_previous(reg(previous="1", previous_on=date.min), date(2026, 3, 22)) is None
    assert days_since_previous(reg(), date(2026, 3, 22)) is None


def test_ordered_registers_put_electricity_day_night_then_water_kitchen_bath() -> None:
    registers = [
        reg(id=1, service=Service.COLD_WATER, zone=Zone.BATH),
        reg(id=2, service=Service.HOT_WATER, zone=Zone.BATH),
        reg(id=3, service=Service.ELECTRICITY, zone=Zone.NIGHT),
        reg(id=4, service=Service.COLD_WATER, zone=Zone.KITCHEN),
        reg(id=5, service=Service.HOT_WATER, zone=Zone.KITCHEN),
        reg(id=6, service=Service.ELECTRICITY, zone=Zone.DAY),
    ]
    account = Account("1234567890", D(0), tuple(registers))
    assert [r.id for r in account.ordered_registers] == [6, 3, 5, 2, 4, 1]


def test_sort_key_breaks_ties_by_meter() -> None:
    a = reg(id=1, meter="B")
    b = replace(a, id=2, meter="A")
    assert sorted([a, b], key=lambda r: r.sort_key) == [b, a]
