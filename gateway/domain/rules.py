"""The checks a submission must pass, as pure functions.

Order (each failure carries its error code): value count, digit capacity,
verification expiry, below previous (with rollover), maximum jump. Every rule is run
over all registers before the next rule, so the first failing rule is the one
reported, and the registers of one message are accepted or rejected together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from gateway.domain.errors import ErrorCode
from gateway.domain.model import Register, Service


@dataclass(frozen=True, slots=True)
class Rejection:
    code: ErrorCode
    register: Register | None = None
    value: Decimal | None = None
    limit: Decimal | None = None
    # What the sender wrote that could not be matched (a label, a meter serial).
    detail: str | None = None
    # ``ambiguous_label`` for a service word before a single value of a service with
    # several registers (``ЭЭ 12100`` on a day/night meter): the registers the value may
    # be for and the value, so the reply can ask which. They only serve the reply: two
    # rejections that differ only in them are equal.
    choices: tuple[Register, ...] = field(default=(), compare=False)
    choice_value: Decimal | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Checked:
    """A value that passed every rule, with what it consumed since the previous reading."""

    register: Register
    value: Decimal
    previous: Decimal | None
    consumption: Decimal
    rolled_over: bool = False


def is_duplicate(pairs: Sequence[tuple[Register, Decimal]]) -> bool:
    """Every value equals the reading already stored for its register in this period."""
    return all(r.current is not None and r.current.value == v for r, v in pairs)


def repeat_of_current(register: Register) -> Checked:
    """The reading already stored for this period, presented again as when it was taken."""
    current = register.current
    assert current is not None
    return Checked(
        register, current.value, current.compared_with, current.consumption or Decimal(0)
    )


def days_since_previous(register: Register, today: date) -> int | None:
    """Days between the previous reading and ``today``; None without a dated previous."""
    previous = register.previous
    if previous is None or previous.taken_on == date.min:
        return None
    return max(1, (today - previous.taken_on).days)


def outliers(
    checked: Sequence[Checked],
    *,
    today: date,
    factor: Decimal,
    min_days: int,
) -> list[Checked]:
    """Readings whose consumption per day exceeds ``factor`` × the register's average
    daily use over its accepted history (:attr:`Register.history`). A register with less
    than ``min_days`` of history, or none used on average, is never an outlier."""
    found = []
    for item in checked:
        consumed, days = item.register.history
        since = days_since_previous(item.register, today)
        if days < min_days or consumed <= 0 or since is None:
            continue
        if item.consumption / since > factor * consumed / days:
            found.append(item)
    return found


def check(
    pairs: Sequence[tuple[Register, Decimal]],
    *,
    today: date,
    max_jump: Mapping[Service, Decimal],
) -> list[Checked] | Rejection:
    """Apply the value rules in order; return the accepted values or the first rejection."""
    for register, value in pairs:
        if not register.capacity.fits(value):
            return Rejection(ErrorCode.TOO_MANY_DIGITS, register, value)
    for register, value in pairs:
        if register.verified_until is not None and register.verified_until < today:
            return Rejection(ErrorCode.VERIFICATION_EXPIRED, register, value)
    checked: list[Checked] = []
    for register, value in pairs:
        previous = register.previous.value if register.previous else None
        limit = max_jump[register.service]
        if previous is None:
            checked.append(Checked(register, value, None, Decimal(0)))
        elif value >= previous:
            checked.append(Checked(register, value, previous, value - previous))
        else:
            wrapped = register.capacity.rollover - previous + value
            if wrapped > limit:
                return Rejection(ErrorCode.BELOW_PREVIOUS, register, value, previous)
            checked.append(Checked(register, value, previous, wrapped, rolled_over=True))
    for item in checked:
        limit = max_jump[item.register.service]
        if item.consumption > limit:
            return Rejection(ErrorCode.JUMP_TOO_LARGE, item.register, item.value, limit)
    return checked
