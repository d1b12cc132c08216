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
- **A service word without a zone** takes its service's registers in order for the values
  it scopes (its own value and the unlabelled ones right after it: ``ГВС 12 7`` is kitchen
  12, bath 7). When the service has two or more registers and the word scopes fewer
  values than that (``ЭЭ 12100`` on a day/night meter: the customer may have sent the
  display's total), no register is guessed → ``ambiguous_label``, with the registers it
  may be for (``Rejection.choices``) so the reply can ask which.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from gateway.domain.errors import ErrorCode
from gateway.domain.model import Account, EnteredValue, Register, Service, Zone
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


def entered(account: Account, values: Sequence[EnteredValue]) -> Pairs | Rejection:
    """Pair values entered by register (meter serial and zone) with the account's
    registers, in register order: a register the account does not have is
    ``unknown_meter``, one entered twice ``ambiguous_label``, none at all ``value_count``."""
    chosen: dict[int, tuple[Register, Decimal]] = {}
    for item in values:
        register = next(
            (
                r
                for r in account.registers
                if r.zone is item.zone and _same_serial(r.meter, item.meter)
            ),
            None,
        )
        if register is None:
            return Rejection(ErrorCode.UNKNOWN_METER, detail=item.meter)
        if register.id in chosen:
            return Rejection(ErrorCode.AMBIGUOUS_LABEL, detail=item.meter)
        chosen[register.id] = (register, item.value)
    if not chosen:
        return Rejection(ErrorCode.VALUE_COUNT, limit=Decimal(len(account.registers)))
    order = {r.id: i for i, r in enumerate(account.ordered_registers)}
    return [chosen[key] for key in sorted(chosen, key=order.__getitem__)]


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
    """The values with thousands groups joined, when exactly one joining gives ``wanted``.

    A joining is a set of items glued to the item before them: an item may be glued when a
    plain space separates it, it is exactly 3 digits and the item before it is all digits;
    each glued run must start with an item of 1–3 digits. The ways to pick exactly
    ``len(items) - wanted`` glued items are counted (up to 2: "more than one" is all that
    matters) position by position, from the end, in O(len(items) × min(wanted, extra))
    steps -- never by listing the combinations, which are exponentially many."""
    n = len(items)
    extra = n - wanted
    if extra < 0:
        return None
    if n == 0:
        return []
    raws = [item.raw for item in items]
    joinable = [False] + [
        items[i].separator == " "
        and _GROUP.fullmatch(raws[i]) is not None
        and _DIGITS.fullmatch(raws[i - 1]) is not None
        for i in range(1, n)
    ]
    if extra > sum(joinable):
        return None
    head = [_HEAD.fullmatch(raw) is not None for raw in raws]
    ways = _count_joinings(joinable, head, extra, wanted)
    if ways[1].get((extra, False), 0) != 1:
        return None
    # Exactly one joining: walk it from the front, taking at each item the branch that
    # still has its one way.
    joins: set[int] = set()
    remaining, glued = extra, False
    for i in range(1, n):
        can_glue = remaining > 0 and joinable[i] and (glued or head[i - 1])
        if can_glue and ways[i + 1].get((remaining - 1, True), 0) == 1:
            joins.add(i)
            remaining, glued = remaining - 1, True
        else:
            glued = False
    values = _joined(items, joins)
    assert values is not None and len(values) == wanted
    return values


def _count_joinings(
    joinable: list[bool], head: list[bool], extra: int, wanted: int
) -> list[dict[tuple[int, bool], int]]:
    """``ways[i][(r, glued)]``: the ways (capped at 2) to pick exactly ``r`` glued items
    among ``i..n-1`` when item ``i-1`` is glued (``glued``) or starts a run. Only the ``r``
    that can still end with ``wanted`` values are kept: at most min(wanted, extra) + 1 per
    position."""
    n = len(joinable)
    ways: list[dict[tuple[int, bool], int]] = [{} for _ in range(n + 1)]
    ways[n] = {(0, False): 1, (0, True): 1}
    for i in range(n - 1, 0, -1):
        after = ways[i + 1]
        # r glued items among the n - i left, and at most `wanted` values start there.
        for r in range(max(0, n - i - wanted), min(extra, n - i) + 1):
            for glued in (False, True):
                count = after.get((r, False), 0)
                if r > 0 and joinable[i] and (glued or head[i - 1]):
                    count += after.get((r - 1, True), 0)
                if count:
                    ways[i][(r, glued)] = min(count, 2)
    return ways


def _joined(items: Sequence[ItemLike], joins: set[int]) -> list[Decimal] | None:
    values: list[Decimal] = []
    i = 0
    while i < len(items):
        j = i + 1
        while j in joins:
            j += 1
        if j > i + 1:
            if not _HEAD.fullmatch(items[i].raw):
                return None
            values.append(Decimal("".join(item.raw for item in items[i:j])))
        else:
            values.append(items[i].value)
        i = j
    return values


def _labelled(registers: list[Register], items: Sequence[ItemLike]) -> Pairs | Rejection:
    chosen: dict[int, tuple[Register, Decimal]] = {}
    scope: Service | None = None
    last = -1  # position of the register named last: unlabelled values continue after it
    for at, item in enumerate(items):
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
                if label.zone is None:
                    lone = _lone_service_word(registers, items, at, scope)
                    if lone is not None:
                        return lone
            target = _named(registers, label, scope, chosen)
        if isinstance(target, Rejection):
            return target
        if target.id in chosen:
            return Rejection(ErrorCode.AMBIGUOUS_LABEL, target, detail=_text(label))
        chosen[target.id] = (target, item.value)
        last = registers.index(target)
    return [chosen[r.id] for r in registers if r.id in chosen]


def _lone_service_word(
    registers: list[Register], items: Sequence[ItemLike], at: int, service: Service
) -> Rejection | None:
    """``ambiguous_label`` when the service word of ``items[at]`` (no zone) scopes fewer
    values than its service has registers, two or more; None when it scopes enough. Looks
    at most as many items ahead as the service has registers."""
    pool = tuple(r for r in registers if r.service is service)
    if len(pool) < 2:
        return None
    scoped = 1
    while scoped < len(pool) and at + scoped < len(items) and items[at + scoped].label is None:
        scoped += 1
    if scoped >= len(pool):
        return None
    item = items[at]
    return Rejection(
        ErrorCode.AMBIGUOUS_LABEL, detail=_text(item.label), choices=pool, choice_value=item.value
    )


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
        # A service word alone (scoping enough values, see _lone_service_word): the next of
        # that service's registers not yet named.
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
