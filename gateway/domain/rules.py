"""The checks a submission must pass, as pure functions.

Order (each failure carries its error code): value count, digit capacity,
verification expiry, below previous (with rollover), maximum jump. Every rule is run
over all registers before the next rule, so the first failing rule is the one
reported, and the registers of one message are accepted or rejected together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Checked:
    """A value that passed every rule, with what it consumed since the previous reading."""

    register: Register
    value: Decimal
    previous: Decimal | None
    consumption: Decimal
    rolled_over: bool = False


def is_duplicate(pairs: Sequence[tuple[Register, Decimal]]) -> bool:
    """Every value equals the latest reading this gateway accepted for its register."""
    return all(
        r.previous is not None and r.previous_is_ours and r.previous.value == v for r, v in pairs
    )


def repeat_of_previous(register: Register) -> Checked:
    """The previous reading of ``register`` presented again, as when it was accepted."""
    previous = register.previous
    assert previous is not None
    return Checked(
        register, previous.value, previous.compared_with, previous.consumption or Decimal(0)
    )


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
