"""gateway.domain.matching.assign: which register each value of a message is for (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from itertools import combinations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from gateway.domain.errors import ErrorCode
from gateway.domain.matching import ItemLike, assign, join_thousands
from gateway.domain.model import Account, Capacity, Register, Service, Zone
from gateway.domain.rules import Rejection
from parsers import Label, Submission, Value, parse_submission

D = Decimal
ACC = "1234567890"
E, HW, CW = Service.ELECTRICITY, Service.HOT_WATER, Service.COLD_WATER


def reg(id: int, service: Service, zone: Zone, meter: str) -> Register:
    return Register(
        id=id,
        account=ACC,
        meter=meter,
        service=service,
        zone=zone,
        capacity=Capacity.parse("6.1"),
        verified_until=None,
        previous=None,
    )


def account(*registers: Register) -> Account:
    return Account(ACC, D(0), registers)


# Register ids follow the positional order; accounts list them shuffled on purpose.
SINGLE = account(reg(1, E, Zone.SINGLE, "517480"))
DAY_NIGHT = account(reg(2, E, Zone.NIGHT, "517480"), reg(1, E, Zone.DAY, "517480"))
HOT_TWO = account(reg(2, HW, Zone.BATH, "700302"), reg(1, HW, Zone.KITCHEN, "700301"))
COLD_TWO = account(reg(2, CW, Zone.BATH, "800302"), reg(1, CW, Zone.KITCHEN, "800301"))
THREE_SERVICES = account(
    reg(3, CW, Zone.SINGLE, "800300"),
    reg(1, E, Zone.SINGLE, "517480"),
    reg(2, HW, Zone.SINGLE, "700300"),
)
FULL = account(
    reg(6, CW, Zone.BATH, "800302"),
    reg(5, CW, Zone.KITCHEN, "800301"),
    reg(4, HW, Zone.BATH, "700302"),
    reg(3, HW, Zone.KITCHEN, "700301"),
    reg(2, E, Zone.NIGHT, "517480"),
    reg(1, E, Zone.DAY, "517480"),
)
# The serial form's example from DOMAIN.md: meter 12345678, day and night.
SERIAL_DAY_NIGHT = account(reg(1, E, Zone.DAY, "12345678"), reg(2, E, Zone.NIGHT, "12345678"))


def assigned(acc: Account, text: str) -> list[tuple[int, Decimal]] | Rejection:
    """assign() on the parsed ``text``, pairs shown as (register id, value)."""
    result = assign(acc, parse_submission(text).items)
    if isinstance(result, Rejection):
        return result
    return [(register.id, value) for register, value in result]


def register(acc: Account, id: int) -> Register:
    (found,) = [r for r in acc.registers if r.id == id]
    return found


def value_count(limit: int) -> Rejection:
    return Rejection(ErrorCode.VALUE_COUNT, limit=D(limit))


def unknown_meter(detail: str) -> Rejection:
    return Rejection(ErrorCode.UNKNOWN_METER, detail=detail)


def ambiguous(detail: str, reg: Register | None = None) -> Rejection:
    return Rejection(ErrorCode.AMBIGUOUS_LABEL, reg, detail=detail)


# --- positional ----------------------------------------------------------------------------


def test_single_value_goes_to_the_single_electricity_register() -> None:
    assert assigned(SINGLE, "1234567890 12345") == [(1, D(12345))]


def test_two_values_are_day_then_night() -> None:
    assert assigned(DAY_NIGHT, "1234567890 12345 6789") == [(1, D(12345)), (2, D(6789))]


def test_two_hot_water_values_are_kitchen_then_bath() -> None:
    assert assigned(HOT_TWO, "1234567890 12,5 7,25") == [(1, D("12.5")), (2, D("7.25"))]


def test_two_cold_water_values_are_kitchen_then_bath() -> None:
    assert assigned(COLD_TWO, "1234567890 5 3") == [(1, D(5)), (2, D(3))]


def test_services_are_ordered_electricity_hot_then_cold_water() -> None:
    assert assigned(THREE_SERVICES, "1234567890 100 20 30") == [
        (1, D(100)),
        (2, D(20)),
        (3, D(30)),
    ]


def test_six_values_fill_day_night_hot_kitchen_bath_cold_kitchen_bath() -> None:
    assert assigned(FULL, "1234567890 1 2 3 4 5 6") == [(i, D(i)) for i in range(1, 7)]


def test_pairs_hold_the_register_objects_themselves() -> None:
    result = assign(DAY_NIGHT, Submission.of(ACC, "12345", "6789").items)
    assert result == [(register(DAY_NIGHT, 1), D(12345)), (register(DAY_NIGHT, 2), D(6789))]


def test_comma_separated_values_map_positionally() -> None:
    assert assigned(DAY_NIGHT, "1234567890,12345,6789") == [(1, D(12345)), (2, D(6789))]


def test_too_few_values_is_value_count_with_the_register_count() -> None:
    assert assigned(DAY_NIGHT, "1234567890 12345") == value_count(2)


def test_too_many_values_is_value_count_with_the_register_count() -> None:
    assert assigned(SINGLE, "1234567890 12345 6789") == value_count(1)


# --- the thousands rule ----------------------------------------------------------------------


def test_thousands_group_is_joined_for_a_one_register_account() -> None:
    assert assigned(SINGLE, "1234567890 12 345") == [(1, D(12345))]


def test_several_thousands_groups_join_into_one_number() -> None:
    assert assigned(SINGLE, "1234567890 1 234 567") == [(1, D(1234567))]


def test_two_values_written_with_thousands_groups_are_joined_each() -> None:
    assert assigned(DAY_NIGHT, "1234567890 12 345 6 789") == [(1, D(12345)), (2, D(6789))]


def test_only_the_value_written_with_a_group_is_joined() -> None:
    assert assigned(DAY_NIGHT, "1234567890 12345 6 789") == [(1, D(12345)), (2, D(6789))]


def test_non_breaking_space_as_thousands_separator_is_joined() -> None:
    assert assigned(SINGLE, "1234567890 12\u00a0345") == [(1, D(12345))]


def test_ambiguous_joining_is_value_count() -> None:
    """``12 345 678`` for two registers: 12345|678 or 12|345678 — no guess."""
    assert assigned(DAY_NIGHT, "1234567890 12 345 678") == value_count(2)


def test_thousands_rule_is_not_applied_when_the_count_already_matches() -> None:
    assert assigned(DAY_NIGHT, "1234567890 12 345") == [(1, D(12)), (2, D(345))]


@pytest.mark.parametrize(
    "text",
    [
        "1234567890 12#345",
        "1234567890 12;345",
        "1234567890 12, 345",
        "1234567890,12,345",
        "1234567890 12:345",
        "1234567890 12-345",
    ],
)
def test_thousands_rule_never_joins_across_a_written_separator(text: str) -> None:
    assert assigned(SINGLE, text) == value_count(1)


def test_thousands_rule_does_not_join_a_head_longer_than_3_digits() -> None:
    assert assigned(SINGLE, "1234567890 1234 567") == value_count(1)


@pytest.mark.parametrize("text", ["1234567890 12 34", "1234567890 12 3456"])
def test_thousands_rule_needs_a_group_of_exactly_3_digits(text: str) -> None:
    assert assigned(SINGLE, text) == value_count(1)


@pytest.mark.parametrize("text", ["1234567890 12 345,5", "1234567890 12,5 345"])
def test_thousands_rule_does_not_join_decimals(text: str) -> None:
    assert assigned(SINGLE, text) == value_count(1)


def test_join_thousands_gives_none_when_no_joining_fits() -> None:
    assert join_thousands(parse_submission("1234567890 1 2 3").items, 1) is None


def test_join_thousands_keeps_a_leading_zero_head_as_its_value() -> None:
    assert join_thousands(parse_submission("1234567890 05 778").items, 1) == [D(5778)]


# --- the thousands rule: the counting algorithm against the brute force it replaced -------

_DIGITS = re.compile(r"[0-9]+")
_GROUP = re.compile(r"[0-9]{3}")
_HEAD = re.compile(r"[0-9]{1,3}")


def brute_force_join_thousands(items: Sequence[ItemLike], wanted: int) -> list[Decimal] | None:
    """The old ``join_thousands`` (commit dddd6e9), verbatim: it tries every combination of
    joins, which takes days on a long message; the reference for small inputs."""
    extra = len(items) - wanted
    joinable = [
        i
        for i in range(1, len(items))
        if items[i].separator == " "
        and _GROUP.fullmatch(items[i].raw)
        and _DIGITS.fullmatch(items[i - 1].raw)
    ]
    found: list[list[Decimal]] = []
    for joins in combinations(joinable, extra):
        values = _brute_force_joined(items, set(joins))
        if values is not None:
            found.append(values)
        if len(found) > 1:
            return None
    return found[0] if found else None


def _brute_force_joined(items: Sequence[ItemLike], joins: set[int]) -> list[Decimal] | None:
    values: list[Decimal] = []
    i = 0
    while i < len(items):
        digits = items[i].raw
        j = i + 1
        while j in joins:
            digits += items[j].raw
            j += 1
        if j > i + 1:
            if not _HEAD.fullmatch(items[i].raw):
                return None
            values.append(Decimal(digits))
        else:
            values.append(items[i].value)
        i = j
    return values


_RAWS = ["1", "12", "123", "1234", "012", "000", "345", "678", "12,5", "1.5", "05778"]
_SEPARATORS = [" ", " ", " ", "#", ";", ",", "\n", ""]


@st.composite
def _items_and_wanted(draw: st.DrawFn) -> tuple[list[Value], int]:
    raws = draw(st.lists(st.sampled_from(_RAWS), max_size=11))
    items = [
        Value(D(raw.replace(",", ".")), raw, None, draw(st.sampled_from(_SEPARATORS)))
        for raw in raws
    ]
    return items, draw(st.integers(min_value=0, max_value=len(items)))


@settings(max_examples=500, deadline=None)
@given(_items_and_wanted())
def test_join_thousands_gives_what_the_brute_force_gave(case: tuple[list[Value], int]) -> None:
    items, wanted = case
    expected = brute_force_join_thousands(items, wanted)
    found = join_thousands(items, wanted)
    assert found == expected
    if found is not None and expected is not None:  # the same digits, not only equal values
        assert [v.as_tuple() for v in found] == [v.as_tuple() for v in expected]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["1", "12", "123", "1234", "345", "678"]), min_size=1, max_size=12),
    st.integers(min_value=1, max_value=6),
)
def test_join_thousands_gives_what_the_brute_force_gave_on_plain_spaces(
    raws: list[str], wanted: int
) -> None:
    """Only digits and spaces: the inputs where many joinings compete."""
    items = [Value(D(raw), raw) for raw in raws]
    wanted = min(wanted, len(items))
    assert join_thousands(items, wanted) == brute_force_join_thousands(items, wanted)


def test_join_thousands_with_more_wanted_than_items_is_none() -> None:
    assert join_thousands(Submission.of(ACC, "12", "345").items, 3) is None


def test_join_thousands_of_nothing_for_nothing_is_an_empty_list() -> None:
    assert join_thousands((), 0) == []


def _grouped(value_runs: Sequence[Sequence[str]], between: str) -> list[Value]:
    """Values written in groups (``1 234 567``), runs separated by ``between``."""
    items = []
    for run in value_runs:
        for k, raw in enumerate(run):
            separator = " " if k else between
            items.append(Value(D(raw), raw, None, separator))
    return items


def test_the_account_repeated_before_400_groups_is_value_count_at_once() -> None:
    """``ЛС ЛС 123 123 …``: the brute force tried C(395, 5) joinings that all start with
    the 10-digit account as a head, days of CPU; the count is immediate."""
    text = f"{ACC} {ACC}" + " 123" * 397
    assert assigned(FULL, text) == value_count(6)


def test_one_joining_among_hundreds_of_groups_is_found() -> None:
    """Six values of 100 groups each, split by ``;``: exactly one joining gives six values."""
    runs = [[str(k + 1)] + ["234"] * 99 for k in range(6)]
    items = _grouped(runs, ";")
    assert join_thousands(items, 6) == [D(str(k + 1) + "234" * 99) for k in range(6)]


def test_a_long_run_that_could_split_anywhere_is_none() -> None:
    """One run of 101 groups for two values: it could split before any of its groups, so
    nothing is guessed (the count stops at two ways)."""
    runs = [["1", *["234"] * 99, "567"]] + [[str(k + 2)] + ["234"] * 99 for k in range(5)]
    items = _grouped(runs, ";")
    assert join_thousands(items, 7) is None
    assert join_thousands(items, 6) == [D("1" + "234" * 99 + "567")] + [
        D(str(k + 2) + "234" * 99) for k in range(5)
    ]


def test_a_run_of_800_short_numbers_is_value_count_at_once() -> None:
    assert assigned(FULL, f"{ACC} " + "1 " * 795 + "1") == value_count(6)


# --- meter serial form ------------------------------------------------------------------


def test_serial_form_example_of_domain_md_maps_to_that_meter() -> None:
    assert assigned(SERIAL_DAY_NIGHT, "123456789#12345678#05778#02542") == [
        (1, D(5778)),
        (2, D(2542)),
    ]


def test_serial_form_for_a_single_register_meter() -> None:
    assert assigned(SINGLE, "1234567890#517480#12345") == [(1, D(12345))]


@pytest.mark.parametrize(
    ("meter", "written"), [("0012345678", "12345678"), ("12345678", "0012345678")]
)
def test_serial_matches_when_only_leading_zeros_differ(meter: str, written: str) -> None:
    acc = account(reg(1, E, Zone.DAY, meter), reg(2, E, Zone.NIGHT, meter))
    assert assigned(acc, f"1234567890#{written}#5778#2542") == [(1, D(5778)), (2, D(2542))]


def test_serial_of_one_meter_gives_only_that_meters_registers() -> None:
    assert assigned(FULL, "1234567890#700302#7") == [(4, D(7))]


def test_serial_with_spaces_around_the_hashes_is_the_serial_form() -> None:
    assert assigned(FULL, "1234567890 # 700301 # 12") == [(3, D(12))]


def test_serial_with_the_wrong_number_of_values_is_value_count_of_that_meter() -> None:
    assert assigned(FULL, "1234567890#517480#12345") == value_count(2)


def test_unknown_serial_with_a_count_mismatch_is_unknown_meter_naming_it() -> None:
    assert assigned(DAY_NIGHT, "1234567890#999#5778#2542") == unknown_meter("999")


def test_unknown_serial_as_written_is_the_detail() -> None:
    assert assigned(SINGLE, "1234567890#00999#5778") == unknown_meter("00999")


def test_hash_values_that_are_no_serial_but_fit_the_count_map_positionally() -> None:
    assert assigned(DAY_NIGHT, "1234567890#999#5778") == [(1, D(999)), (2, D(5778))]


def test_a_single_hash_value_is_positional() -> None:
    assert assigned(SINGLE, "1234567890#12345") == [(1, D(12345))]


def test_serial_written_with_spaces_is_not_the_serial_form() -> None:
    assert assigned(SINGLE, "1234567890 517480 12345") == value_count(1)


def test_serial_form_needs_every_separator_to_be_a_hash() -> None:
    assert assigned(DAY_NIGHT, "1234567890#517480 5778 2542") == value_count(2)


# --- labels: zones -------------------------------------------------------------------------


def test_day_and_night_labels_name_their_registers() -> None:
    assert assigned(DAY_NIGHT, "1234567890 д12345 н6789") == [(1, D(12345)), (2, D(6789))]


def test_labelled_pairs_come_back_in_register_order() -> None:
    assert assigned(DAY_NIGHT, "1234567890 Т2 6789 Т1 12345") == [(1, D(12345)), (2, D(6789))]


def test_kitchen_and_bath_labels_name_the_hot_water_risers() -> None:
    assert assigned(HOT_TWO, "1234567890 ванна 7 кухня 12") == [(1, D(12)), (2, D(7))]


def test_zone_label_alone_is_enough_when_only_one_service_has_that_zone() -> None:
    assert assigned(COLD_TWO, "1234567890 К 5 В 3") == [(1, D(5)), (2, D(3))]


def test_labels_built_directly_as_values_are_matched() -> None:
    items = [
        Value(D(7), "7", Label("hot_water", "bath", None, "гвс ванна")),
        Value(D(12), "12", Label(None, "kitchen", None, "кухня")),
    ]
    assert assign(FULL, items) == [(register(FULL, 3), D(12)), (register(FULL, 4), D(7))]


# --- labels: services and their scope ------------------------------------------------------


def test_service_word_takes_the_first_register_of_its_service() -> None:
    assert assigned(SINGLE, "1234567890 ЭЭ 12345") == [(1, D(12345))]


def test_service_word_scopes_the_unlabelled_values_after_it() -> None:
    assert assigned(FULL, "1234567890 ГВС 12 7") == [(3, D(12)), (4, D(7))]


def test_a_second_service_word_moves_the_scope() -> None:
    assert assigned(FULL, "1234567890 ГВС 12 7 ХВС 5 3") == [
        (3, D(12)),
        (4, D(7)),
        (5, D(5)),
        (6, D(3)),
    ]


def test_electricity_word_then_two_values_is_day_then_night() -> None:
    assert assigned(FULL, "1234567890 свет 12345 6789") == [(1, D(12345)), (2, D(6789))]


def test_service_and_zone_name_one_register() -> None:
    assert assigned(FULL, "1234567890 ХВС ванна 3") == [(6, D(3))]


def test_zone_after_a_service_and_zone_stays_in_that_service() -> None:
    assert assigned(FULL, "1234567890 ГВС кухня 12 ванна 7 ХВС кухня 5 ванна 3") == [
        (3, D(12)),
        (4, D(7)),
        (5, D(5)),
        (6, D(3)),
    ]


def test_short_zones_after_a_service_word_stay_in_that_service() -> None:
    assert assigned(FULL, "1234567890 ГВС К 12 В 7") == [(3, D(12)), (4, D(7))]


def test_more_unlabelled_values_than_the_scope_has_is_value_count_of_the_scope() -> None:
    assert assigned(HOT_TWO, "1234567890 ГВС 12 7 5") == value_count(2)


def test_service_word_repeated_past_its_registers_is_ambiguous() -> None:
    assert assigned(HOT_TWO, "1234567890 ГВС 12 ГВС 7 ГВС 5") == ambiguous("гвс")


# --- labels: a service word before fewer values than its registers -----------------------


@pytest.mark.parametrize(
    ("acc", "text", "detail", "value", "choices"),
    [
        (DAY_NIGHT, "1234567890 ЭЭ 12100", "ээ", "12100", [1, 2]),
        (DAY_NIGHT, "1234567890 свет 12100", "свет", "12100", [1, 2]),
        (DAY_NIGHT, "1234567890 э/э 12100,5", "э/э", "12100.5", [1, 2]),
        (HOT_TWO, "1234567890 ГВС 12", "гвс", "12", [1, 2]),
        (COLD_TWO, "1234567890 ХВС 5", "хвс", "5", [1, 2]),
        (FULL, "1234567890 ХВС 5", "хвс", "5", [5, 6]),
        (FULL, "1234567890 ЭЭ 12345 ГВС 12 7", "ээ", "12345", [1, 2]),
        (HOT_TWO, "1234567890 ГВС 12 ГВС 7", "гвс", "12", [1, 2]),
        (HOT_TWO, "1234567890 ГВС 12 ванна 7", "гвс", "12", [1, 2]),
        (DAY_NIGHT, "1234567890 12100 ЭЭ", "ээ", "12100", [1, 2]),  # written after its value
        (DAY_NIGHT, "1234567890 12100 (ЭЭ)", "ээ", "12100", [1, 2]),
    ],
)
def test_service_word_before_one_value_of_two_registers_is_ambiguous_with_the_choices(
    acc: Account, text: str, detail: str, value: str, choices: list[int]
) -> None:
    """``ЭЭ 12100`` on a day/night meter may be either register (or the display's total):
    never the first register by default; the rejection names both, and the value."""
    result = assigned(acc, text)
    assert result == ambiguous(detail)
    assert isinstance(result, Rejection)
    assert [r.id for r in result.choices] == choices
    assert result.choice_value == D(value)


def test_service_word_before_as_many_values_as_its_registers_takes_them_in_order() -> None:
    assert assigned(DAY_NIGHT, "1234567890 ЭЭ 12345 6789") == [(1, D(12345)), (2, D(6789))]


def test_service_word_with_a_zone_is_not_ambiguous() -> None:
    assert assigned(DAY_NIGHT, "1234567890 ЭЭ день 12100") == [(1, D(12100))]


def test_service_word_of_a_one_register_service_is_that_register() -> None:
    assert assigned(THREE_SERVICES, "1234567890 ГВС 20") == [(2, D(20))]


def test_service_word_on_a_full_account_takes_its_two_values_not_the_next_service() -> None:
    assert assigned(FULL, "1234567890 ЭЭ 12345 6789 ГВС 12 7") == [
        (1, D(12345)),
        (2, D(6789)),
        (3, D(12)),
        (4, D(7)),
    ]


def test_the_choices_of_a_rejection_take_no_part_in_its_equality() -> None:
    """Two rejections for the same label are equal whichever registers they list."""
    with_choices = Rejection(
        ErrorCode.AMBIGUOUS_LABEL,
        detail="ээ",
        choices=DAY_NIGHT.ordered_registers,
        choice_value=D(1),
    )
    assert with_choices == ambiguous("ээ")


# --- labels written after their values ---------------------------------------------------


@pytest.mark.parametrize(
    ("acc", "text", "expected"),
    [
        (DAY_NIGHT, "1234567890 12345 день 6789 ночь", [(1, D(12345)), (2, D(6789))]),
        (DAY_NIGHT, "1234567890 6789 (ночь) 12345 (день)", [(1, D(12345)), (2, D(6789))]),
        (DAY_NIGHT, "1234567890 12345(Т1) 6789(Т2)", [(1, D(12345)), (2, D(6789))]),
        (DAY_NIGHT, "1234567890 6789 ночь", [(2, D(6789))]),
        (HOT_TWO, "1234567890 7 (ванна) 12 (кухня)", [(1, D(12)), (2, D(7))]),
        (FULL, "1234567890 12 (ГВС кухня) 5 (ХВС ванна)", [(3, D(12)), (6, D(5))]),
    ],
)
def test_labels_after_their_values_name_their_registers(
    acc: Account, text: str, expected: list[tuple[int, Decimal]]
) -> None:
    assert assigned(acc, text) == expected


def test_label_before_the_second_value_keeps_meaning_the_second_value() -> None:
    """No label after the last value: ``12345 н 6789`` is day 12345, night 6789."""
    assert assigned(DAY_NIGHT, "1234567890 12345 н 6789") == [(1, D(12345)), (2, D(6789))]


# --- labels: coded forms ----------------------------------------------------------------


def test_coded_form_of_domain_md_names_four_registers() -> None:
    assert assigned(FULL, "1234567890 1ЭД123 1ЭН45 1Г12 2Г7") == [
        (1, D(123)),
        (2, D(45)),
        (3, D(12)),
        (4, D(7)),
    ]


def test_coded_index_counts_the_services_registers() -> None:
    """1Г is the first hot water register (kitchen), 2Г the second (bath), in any order."""
    assert assigned(HOT_TWO, "1234567890 2Г7 1Г12") == [(1, D(12)), (2, D(7))]


def test_coded_cold_water_indexes() -> None:
    assert assigned(FULL, "1234567890 2Х3 1Х5") == [(5, D(5)), (6, D(3))]


def test_coded_electricity_without_a_zone_is_its_first_register() -> None:
    assert assigned(SINGLE, "1234567890 1Э12345") == [(1, D(12345))]


def test_coded_index_beyond_the_services_registers_is_unknown_meter() -> None:
    assert assigned(HOT_TWO, "1234567890 1Г12 3Г7") == unknown_meter("3г")


def test_coded_zone_the_meter_does_not_have_is_unknown_meter() -> None:
    assert assigned(SINGLE, "1234567890 1ЭД123") == unknown_meter("1эд")


def test_unlabelled_value_after_a_code_takes_the_free_register() -> None:
    assert assigned(HOT_TWO, "1234567890 1Г12 7") == [(1, D(12)), (2, D(7))]


# --- labels: partial messages, unknown and ambiguous labels ------------------------------


def test_naming_only_night_returns_only_the_night_pair() -> None:
    assert assigned(DAY_NIGHT, "1234567890 н6789") == [(2, D(6789))]


def test_naming_only_cold_water_returns_only_that_pair() -> None:
    # Was "ХВС 5": a service word before one value of kitchen + bath is ambiguous now
    # (test_service_word_before_one_value_of_two_registers_is_ambiguous_with_the_choices).
    assert assigned(FULL, "1234567890 ХВС кухня 5") == [(5, D(5))]


def test_naming_some_registers_of_a_full_account_returns_them_in_register_order() -> None:
    assert assigned(FULL, "1234567890 2Г7 н6789") == [(2, D(6789)), (4, D(7))]


@pytest.mark.parametrize(
    ("acc", "text", "detail"),
    [
        (HOT_TWO, "1234567890 ХВС 5", "хвс"),
        (HOT_TWO, "1234567890 свет 12345", "свет"),
        (SINGLE, "1234567890 день 12345", "день"),
        (DAY_NIGHT, "1234567890 к 5", "к"),
        (SINGLE, "1234567890 ГВС кухня 12", "гвс кухня"),
    ],
)
def test_label_naming_no_register_is_unknown_meter_with_its_text(
    acc: Account, text: str, detail: str
) -> None:
    assert assigned(acc, text) == unknown_meter(detail)


def test_kitchen_without_a_service_on_hot_and_cold_water_is_ambiguous() -> None:
    assert assigned(FULL, "1234567890 К 12") == ambiguous("к")


def test_same_register_named_twice_is_ambiguous_naming_it() -> None:
    assert assigned(DAY_NIGHT, "1234567890 д12345 д6789") == ambiguous("д", register(DAY_NIGHT, 1))


def test_same_coded_register_twice_is_ambiguous() -> None:
    assert assigned(HOT_TWO, "1234567890 1Г12 1Г7") == ambiguous("1г", register(HOT_TWO, 1))


def test_label_after_an_unlabelled_value_for_the_same_register_is_ambiguous() -> None:
    """``6789 д12345``: 6789 took the first free register (day), then д names day again."""
    assert assigned(DAY_NIGHT, "1234567890 6789 д12345") == ambiguous("д", register(DAY_NIGHT, 1))


# --- labels: unlabelled values among labelled ones ---------------------------------------


def test_unlabelled_value_after_day_goes_to_night() -> None:
    assert assigned(DAY_NIGHT, "1234567890 д12345 6789") == [(1, D(12345)), (2, D(6789))]


def test_unlabelled_value_after_night_goes_to_the_free_day() -> None:
    assert assigned(DAY_NIGHT, "1234567890 н6789 12345") == [(1, D(12345)), (2, D(6789))]


def test_unlabelled_value_before_a_label_takes_the_first_free_register() -> None:
    assert assigned(DAY_NIGHT, "1234567890 12345 н6789") == [(1, D(12345)), (2, D(6789))]


def test_unlabelled_value_with_every_register_named_is_value_count() -> None:
    assert assigned(DAY_NIGHT, "1234567890 д12345 н6789 5") == value_count(2)


def test_unlabelled_value_after_a_label_takes_the_next_register_not_the_first() -> None:
    """``н 2 5`` on the full account: 5 goes to the register after night (hot kitchen)."""
    assert assigned(FULL, f"{ACC} н 2 5") == [(2, D(2)), (3, D(5))]
