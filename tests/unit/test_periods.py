"""Billing periods and the acceptance window (pure; dates given, no clock)."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.domain.periods import Placement, Window, WindowPolicy, place
from gateway.settings import Settings, SettingsError

WINDOW = Window(15, 25)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 11, 15), Placement("2026-11", True, date(2026, 11, 15))),
        (date(2026, 11, 25), Placement("2026-11", True, date(2026, 11, 15))),
        (date(2026, 11, 14), Placement("2026-11", False, date(2026, 11, 15))),
        (date(2026, 11, 1), Placement("2026-11", False, date(2026, 11, 15))),
        (date(2026, 11, 26), Placement("2026-12", False, date(2026, 12, 15))),
        (date(2026, 12, 31), Placement("2027-01", False, date(2027, 1, 15))),
    ],
)
def test_place_puts_a_day_in_its_period(day: date, expected: Placement) -> None:
    assert place(day, WINDOW) == expected


def test_a_window_to_the_last_day_of_the_month_has_no_after() -> None:
    assert place(date(2026, 2, 28), Window(23, 31)) == Placement("2026-02", True, date(2026, 2, 23))


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 2, 28), Placement("2026-02", True, date(2026, 2, 28))),
        (date(2026, 2, 27), Placement("2026-02", False, date(2026, 2, 28))),
        (date(2026, 1, 29), Placement("2026-01", False, date(2026, 1, 30))),
        (date(2028, 2, 29), Placement("2028-02", True, date(2028, 2, 29))),
    ],
)
def test_a_window_beyond_a_short_month_ends_on_its_last_day(day: date, expected: Placement) -> None:
    assert place(day, Window(30, 31)) == expected


def test_after_a_window_the_next_one_opens_within_a_short_month() -> None:
    assert place(date(2026, 1, 31), Window(29, 30)) == Placement(
        "2026-02", False, date(2026, 2, 28)
    )


@pytest.mark.parametrize(("start", "end"), [(0, 25), (26, 25), (15, 32)])
def test_an_impossible_window_is_refused(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="acceptance window"):
        Window(start, end)


def test_settings_build_the_window_and_refuse_a_bad_policy() -> None:
    settings = Settings.from_mapping(
        {"window_start": 23, "window_end": 26, "window_policy": "reject"}
    )
    assert settings.window == Window(23, 26, WindowPolicy.REJECT)
    with pytest.raises(SettingsError, match="acceptance window"):
        Settings.from_mapping({"window_policy": "sometimes"})
