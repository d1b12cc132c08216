"""Which register each value of a message is for.

The parser reports what the sender wrote (values, labels, separators); only here, with
the account's registers at hand, is it decided what they meant:

- **Meter serial form** ``ЛС#ПУ#value[#value]``: when every separator is ``#``, there are
  at least two values and the first one is a serial number of one of the account's meters,
  the values after it are that meter's registers. When it is no serial of the account and
  the values cannot be read positionally either → ``unknown_meter``.
- **Unlabelled values** map positionally onto the account's registers (electricity single |
  day, night; hot water; cold water). *Thousands rule*: when there are more values than
  registers, values split by spaces only are joined back (``12 345`` → 12345) if exactly one
  way of joining gives the right count, where each joined number is 1–3 digits followed by
  groups of exactly 3 digits. Otherwise → ``value_count``.
- **Labelled values** name their register: a zone (``день``, ``Т2``, ``кухня``), a service
  (``ГВС``, which also scopes the unlabelled values after it), both (``ГВС кухня``), or a
  code (``1ЭД``, ``2Г``: the index among that service's meters). Registers left unnamed are
  left alone. A label that names no register of the account → ``unknown_meter``; one that
  names several, or a register named twice → ``ambiguous_label``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from itertools import combinations
from typing import Protocol

from gateway.domain.errors import ErrorCode
from gateway.domain.model import Account, Register, Service, Zone
from gateway.domain.rules import Rejection

Pairs = list[tuple[Register, Decimal]]


class LabelLike(Protocol):
    @property
    def service(self) -> str | None: ...
    @property
    def zone(self) -> str | None: ...
    @property
    def index(self) -> int | None: ...
    @property
    def text(self) -> str: ...


class ItemLike(Protocol):
    @property
    def value(self) -> Decimal: ...
    @property
    def raw(self) -> str: ...
    @property
    def label(self) -> LabelLike | None: ...
    @property
    def separator(self) -> str: ...


_DIGITS = re.compile(r"[0-9]+")
_GROUP = re.compile(r"[0-9]{3}")
_HEAD = re.compile(r"[0-9]{1,3}")


def assign(account: Account, items: Sequence[ItemLike]) -> Pairs | Rejection:
    """Pair each value with its register, in register order; or say why not."""
    registers = list(account.ordered_registers)
    if any(item.label is not None for item in items):
        return _labelled(registers, items)
    if len(items) >= 2 and all(item.separator == "#" for item in items):
        serial = items[0].raw
        chosen = [r for r in registers if _same_serial(r.meter, serial)]
        if chosen:
            return _positional(chosen, items[1:])
        if len(items) != len(registers):
            return Rejection(ErrorCode.UNKNOWN_METER, detail=serial)
    return _positional(registers, items)


def _same_serial(meter: str, written: str) -> bool:
    return meter == written or (meter.lstrip("0") or "0") == (written.lstrip("0") or "0")


def _positional(registers: list[Register], items: Sequence[ItemLike]) -> Pairs | Rejection:
    values = [item.value for item in items]
    if len(values) > len(registers):
        values = join_thousands(items, len(registers)) or values
    if len(values) != len(registers):
        return Rejection(ErrorCode.VALUE_COUNT, limit=Decimal(len(registers)))
    return list(zip(registers, values, strict=True))


def join_thousands(items: Sequence[ItemLike], wanted: int) -> list[Decimal] | None:
    """The values with thousands groups joined, when exactly one joining gives ``wanted``."""
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
        values = _joined(items, set(joins))
        if values is not None:
            found.append(values)
        if len(found) > 1:
            return None
    return found[0] if found else None


def _joined(items: Sequence[ItemLike], joins: set[int]) -> list[Decimal] | None:
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


def _labelled(registers: list[Register], items: Sequence[ItemLike]) -> Pairs | Rejection:
    chosen: dict[int, tuple[Register, Decimal]] = {}
    scope: Service | None = None
    last = -1  # position of the register named last: unlabelled values continue after it
    for item in items:
        label = item.label
        if label is None:
            pool = [r for r in registers if scope is None or r.service is scope]
            free = [r for r in pool if r.id not in chosen]
            if not free:
                return Rejection(ErrorCode.VALUE_COUNT, limit=Decimal(len(pool)))
            after = [r for r in free if registers.index(r) > last]
            target: Register | Rejection = (after or free)[0]
        else:
            if label.service is not None and label.index is None:
                scope = Service(label.service)
            target = _named(registers, label, scope, chosen)
        if isinstance(target, Rejection):
            return target
        if target.id in chosen:
            return Rejection(ErrorCode.AMBIGUOUS_LABEL, target, detail=_text(label))
        chosen[target.id] = (target, item.value)
        last = registers.index(target)
    return [chosen[r.id] for r in registers if r.id in chosen]


def _named(
    registers: list[Register],
    label: LabelLike,
    scope: Service | None,
    chosen: dict[int, tuple[Register, Decimal]],
) -> Register | Rejection:
    service = Service(label.service) if label.service else None
    zone = Zone(label.zone) if label.zone else None
    if label.index is not None:
        return _coded(registers, service, zone, label)
    if zone is None:
        # A service word alone: the next of that service's registers not yet named.
        pool = [r for r in registers if r.service is service]
        free = [r for r in pool if r.id not in chosen]
        if not pool:
            return Rejection(ErrorCode.UNKNOWN_METER, detail=label.text)
        return free[0] if free else Rejection(ErrorCode.AMBIGUOUS_LABEL, detail=label.text)
    candidates = [
        r for r in registers if r.zone is zone and (service is None or r.service is service)
    ]
    if service is None and scope is not None and len(candidates) > 1:
        candidates = [r for r in candidates if r.service is scope] or candidates
    if not candidates:
        return Rejection(ErrorCode.UNKNOWN_METER, detail=label.text)
    if len(candidates) > 1:
        return Rejection(ErrorCode.AMBIGUOUS_LABEL, detail=label.text)
    return candidates[0]


def _coded(
    registers: list[Register], service: Service | None, zone: Zone | None, label: LabelLike
) -> Register | Rejection:
    """``1ЭД``: the first electricity day register; ``2Г``: the second hot water register.

    The index counts the service's registers in message order, among those of the code's
    zone when it names one."""
    pool = [r for r in registers if r.service is service and (zone is None or r.zone is zone)]
    index = (label.index or 1) - 1
    if index >= len(pool):
        return Rejection(ErrorCode.UNKNOWN_METER, detail=label.text)
    return pool[index]


def _text(label: LabelLike | None) -> str | None:
    return label.text if label is not None else None
