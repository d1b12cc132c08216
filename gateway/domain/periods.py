"""Billing periods and the acceptance window.

Readings received from ``start`` to ``end`` day of a month (inclusive, in the supplier's
time zone) count for that month's period. Outside the window the policy decides:
``reject`` refuses them (``outside_window``); ``next_period`` accepts them for the period
whose window comes next — this month's when the window is still ahead (before the 15th),
next month's when it has passed (after the 25th).
"""

from __future__ import annotations

import calendar
import functools
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class WindowPolicy(StrEnum):
    REJECT = "reject"
    NEXT_PERIOD = "next_period"


@dataclass(frozen=True, slots=True)
class Window:
    start: int = 15
    end: int = 25
    policy: WindowPolicy = WindowPolicy.NEXT_PERIOD

    def __post_init__(self) -> None:
        if not 1 <= self.start <= self.end <= 31:
            raise ValueError(f"acceptance window must be 1 <= start <= end <= 31: {self}")


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a reading taken on a day belongs."""

    period: str  # "YYYY-MM"
    inside: bool  # taken within the window
    opens: date  # the first day of the window the reading counts for


@functools.lru_cache(maxsize=64)
def place(day: date, window: Window) -> Placement:
    """The billing period of a reading taken on ``day`` (a local date). In a month shorter
    than the window's days, the window ends (and at the latest starts) on its last day.
    Cached: every message asks, and there are only a few days and one window."""
    start, end = _days(day.year, day.month, window)
    if start <= day.day <= end:
        return Placement(_period(day), True, day.replace(day=start))
    if day.day < start:
        return Placement(_period(day), False, day.replace(day=start))
    year, month = day.year + day.month // 12, day.month % 12 + 1
    following = date(year, month, _days(year, month, window)[0])
    return Placement(_period(following), False, following)


def _period(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def label(period: str) -> str:
    """A period as people write it: ``2026-12`` → ``12.2026``."""
    year, _, month = period.partition("-")
    return f"{month}.{year}"


def _days(year: int, month: int, window: Window) -> tuple[int, int]:
    last = calendar.monthrange(year, month)[1]
    return min(window.start, last), min(window.end, last)
