"""An in-memory fake of the storage interfaces (:mod:`gateway.domain.store`) for fast tests.

:class:`MemoryStorage` is both the :class:`Transactor` and the unit of work it hands out:
``run(work)`` calls ``work(storage)`` and, when ``work`` raises, puts back the state it
had before (a deep copy), so nothing a failed unit of work did is left behind. The rows
live in :attr:`MemoryStorage.state` for tests to inspect; the seeding helpers stand in
for ``gateway import``. The semantics are those of the SQL stores (``gateway.storage``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from gateway.domain.errors import AccountNeeded, AlreadyRecorded
from gateway.domain.model import (
    Account,
    Capacity,
    InboundMessage,
    PreviousReading,
    Register,
    Service,
    Tariff,
    Zone,
)
from gateway.domain.outcome import Outcome
from gateway.domain.store import (
    LATEST,
    NewReading,
    Outbound,
    Store,
    StoredMessage,
    StoredReading,
    Taken,
    Transactor,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Meter:
    """A register as the registry's meters file describes it."""

    meter: str
    service: Service
    zone: Zone
    digits: str = "6.1"
    verified_until: date | None = None
    last_value: Decimal | None = None
    last_date: date | None = None


@dataclass
class MessageRow:
    id: int
    message: InboundMessage
    status: str
    error_code: str | None
    account: str | None
    reply: str | None
    outcome: dict[str, Any]


@dataclass
class ReadingRow:
    id: int
    register_id: int
    message_id: int
    value: Decimal
    previous: Decimal | None
    consumption: Decimal
    days: int | None
    taken_at: datetime
    taken_on: date
    period: str
    status: str  # accepted | held | replaced | declined
    replaces_id: int | None = None
    review_note: str | None = None


@dataclass
class OutboxRow:
    reading_id: int
    register_id: int
    idempotency_key: str
    payload: dict[str, Any]
    created_at: datetime
    status: str = "pending"


@dataclass
class State:
    accounts: dict[str, Account] = field(default_factory=dict)  # without their registers
    registers: dict[int, tuple[str, Meter]] = field(default_factory=dict)  # id → account, meter
    tariffs: list[Tariff] = field(default_factory=list)
    elders: dict[str, set[str]] = field(default_factory=dict)  # email → buildings
    chats: dict[str, set[str]] = field(default_factory=dict)  # chat → accounts
    messages: list[MessageRow] = field(default_factory=list)
    readings: list[ReadingRow] = field(default_factory=list)
    outbox: list[OutboxRow] = field(default_factory=list)
    outbound: list[tuple[Outbound, datetime]] = field(default_factory=list)  # queued
    opt_outs: dict[str, datetime] = field(default_factory=dict)  # СТОП


class _Part:
    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage

    @property
    def _s(self) -> State:
        return self._storage.state


class MemoryMessages(_Part):
    def find(self, channel: str, external_id: str) -> StoredMessage | None:
        for row in self._s.messages:
            if (row.message.channel, row.message.external_id) == (channel, external_id):
                return StoredMessage(row.id, row.status, copy.deepcopy(row.outcome))
        return None

    def count_recent(
        self, channel: str, sender: str, since: datetime, error_code: str | None = None
    ) -> int:
        return sum(
            1
            for r in self._s.messages
            if (r.message.channel, r.message.sender) == (channel, sender)
            and r.message.received_at > since
            and (error_code is None or r.error_code == error_code)
        )

    def find_many(self, channel: str, external_ids: Sequence[str]) -> dict[str, StoredMessage]:
        found = {external_id: self.find(channel, external_id) for external_id in external_ids}
        return {external_id: row for external_id, row in found.items() if row is not None}

    def recent(
        self, channel: str, senders: Sequence[str], since: datetime
    ) -> dict[str, list[datetime]]:
        return {
            sender: [
                r.message.received_at
                for r in self._s.messages
                if (r.message.channel, r.message.sender) == (channel, sender)
                and r.message.received_at > since
            ]
            for sender in senders
        }

    def lock_sender(self, channel: str, sender: str) -> None:
        """Nothing to do: units of work run one at a time."""

    def lock_senders(self, channel: str, senders: Sequence[str]) -> None:
        """Nothing to do: units of work run one at a time."""

    def record_many(self, recorded: Sequence[tuple[InboundMessage, Outcome]]) -> list[int]:
        return [self.record(message, outcome) for message, outcome in recorded]

    def record(self, message: InboundMessage, outcome: Outcome) -> int:
        if message.external_id is not None and self.find(message.channel, message.external_id):
            raise AlreadyRecorded(message.channel)  # the SQL unique constraint
        error = outcome.error.code if outcome.error else None
        row = MessageRow(
            len(self._s.messages) + 1, message, outcome.status.value, error,
            outcome.account, outcome.reply, _as_json(outcome),
        )  # fmt: skip
        self._s.messages.append(row)
        return row.id

    def update_outcome(self, message_id: int, outcome: Outcome) -> None:
        row = self._s.messages[message_id - 1]
        row.reply, row.outcome = outcome.reply, _as_json(outcome)


class MemoryRegistry(_Part):
    def load_account(
        self, number: str, period: str = LATEST, *, lock: bool = False
    ) -> Account | None:
        account = self._s.accounts.get(number)
        if account is None:
            return None
        registers = tuple(
            self._register(rid, meter, number, period)
            for rid, (owner, meter) in sorted(self._s.registers.items())
            if owner == number
        )
        return replace(account, registers=registers)

    def load_accounts(
        self, numbers: Sequence[str], period: str = LATEST, *, lock: bool = False
    ) -> dict[str, Account]:
        found = {n: self.load_account(n, period) for n in sorted(set(numbers))}
        return {n: a for n, a in found.items() if a is not None}

    def accounts_by_phone(self, phone: str) -> list[str]:
        return sorted(n for n, a in self._s.accounts.items() if a.phone and a.phone == phone)

    def elder_buildings(self, email: str) -> frozenset[str]:
        return frozenset(self._s.elders.get(email.lower(), ()))

    def chat_accounts(self, chat: str) -> frozenset[str]:
        return frozenset(self._s.chats.get(chat, ()))

    def load_tariffs(self) -> list[Tariff]:
        return list(self._s.tariffs)

    def _register(self, rid: int, meter: Meter, account: str, period: str) -> Register:
        """Like ``SqlRegistry``: the last accepted reading of an earlier period, or the
        registry's baseline when newer; the period's own accepted-or-held reading."""
        mine = [r for r in self._s.readings if r.register_id == rid]
        earlier = [r for r in mine if r.status == "accepted" and r.period < period]
        now = [r for r in mine if r.status in ("accepted", "held") and r.period == period]
        ours = _previous(max(earlier, key=lambda r: r.id)) if earlier else None
        previous, is_ours = ours, ours is not None
        if meter.last_value is not None:
            baseline = PreviousReading(meter.last_value, meter.last_date or date.min)
            if ours is None or baseline.taken_on > ours.taken_on:
                previous, is_ours = baseline, False
        return Register(
            id=rid,
            account=account,
            meter=meter.meter,
            service=meter.service,
            zone=meter.zone,
            capacity=Capacity.parse(meter.digits),
            verified_until=meter.verified_until,
            previous=previous,
            previous_is_ours=is_ours,
            current=_previous(max(now, key=lambda r: r.id)) if now else None,
            history=_history(earlier),
        )


class MemoryReadings(_Part):
    def add(
        self,
        message_id: int,
        items: Sequence[NewReading],
        taken_at: datetime,
        taken_on: date,
        period: str,
        *,
        held: bool = False,
    ) -> list[int]:
        taken = [Taken(message_id, taken_at, item) for item in items]
        return self.add_many(taken, taken_on, period, held=held)

    def add_many(
        self, taken: Sequence[Taken], taken_on: date, period: str, *, held: bool = False
    ) -> list[int]:
        corrected = [t.reading.register.id for t in taken if t.reading.register.current is not None]
        replaced = self._supersede(corrected, period, ("held",) if held else ("accepted", "held"))
        ids = []
        for t in taken:
            item = t.reading
            row = ReadingRow(
                len(self._s.readings) + 1, item.register.id, t.message_id, item.value,
                item.previous, item.consumption, item.days, t.taken_at, taken_on, period,
                "held" if held else "accepted", replaced.get(item.register.id),
            )  # fmt: skip
            self._s.readings.append(row)
            ids.append(row.id)
            if not held:
                self._enqueue(row, t.taken_at)
        return ids

    def held(self) -> list[StoredReading]:
        rows = sorted(self._rows(status="held"), key=lambda r: (r.message_id, r.id))
        return [self._stored(r) for r in rows]

    def decide(
        self,
        message_id: int,
        *,
        approve: bool,
        note: str | None,
        now: datetime,
        account: str | None = None,
    ) -> list[StoredReading]:
        rows = [r for r in self._rows(status="held", account=account) if r.message_id == message_id]
        if not rows:
            return []
        accounts = sorted({self._s.registers[r.register_id][0] for r in rows})
        if len(accounts) > 1:
            raise AccountNeeded(message_id, tuple(accounts))
        stored = [self._stored(r) for r in rows]  # as they were (the SQL returns them so)
        if not approve:
            for r in rows:
                r.status, r.review_note = "declined", note
            return stored
        replaced = self._supersede([r.register_id for r in rows], rows[0].period, ("accepted",))
        for r in rows:
            r.status, r.replaces_id, r.review_note = "accepted", replaced.get(r.register_id), note
            self._enqueue(r, now)
        return stored

    def history(self, account: str) -> list[StoredReading]:
        return [self._stored(r) for r in self._rows(account=account)]

    def _rows(self, status: str | None = None, account: str | None = None) -> list[ReadingRow]:
        return [
            r
            for r in self._s.readings
            if (status is None or r.status == status)
            and (account is None or self._s.registers[r.register_id][0] == account)
        ]

    def _supersede(
        self, register_ids: Sequence[int], period: str, statuses: Sequence[str]
    ) -> dict[int, int]:
        """Mark the period's readings in ``statuses`` replaced; per register, the accepted
        one among them (what billing was sent)."""
        replaced = {}
        for r in self._s.readings:
            if r.register_id in register_ids and r.period == period and r.status in statuses:
                if r.status == "accepted":
                    replaced[r.register_id] = r.id
                r.status = "replaced"
        return replaced

    def _enqueue(self, r: ReadingRow, now: datetime) -> None:
        account, meter = self._s.registers[r.register_id]
        key = f"reading-{r.id}"
        replaces = r.replaces_id
        payload = {
            "reading_id": r.id,
            "kind": "reading" if replaces is None else "correction",
            "replaces": None
            if replaces is None
            else {"reading_id": replaces, "idempotency_key": f"reading-{replaces}"},
            "period": r.period,
            "account": account,
            "meter": meter.meter,
            "service": meter.service.value,
            "zone": meter.zone.value,
            "value": format(r.value, "f"),
            "previous": None if r.previous is None else format(r.previous, "f"),
            "consumption": format(r.consumption, "f"),
            "taken_at": r.taken_at.isoformat(),
        }
        self._s.outbox.append(OutboxRow(r.id, r.register_id, key, payload, now))

    def _stored(self, r: ReadingRow) -> StoredReading:
        account, meter = self._s.registers[r.register_id]
        message = self._s.messages[r.message_id - 1].message
        return StoredReading(
            r.id, r.message_id, account, meter.meter, meter.service.value, meter.zone.value,
            r.value, r.previous, r.consumption, r.days, r.taken_at, r.taken_on, r.period,
            message.channel, message.sender, r.status,
        )  # fmt: skip


class MemoryOutbound(_Part):
    def queue(self, item: Outbound, now: datetime) -> int:
        self._s.outbound.append((item, now))
        return len(self._s.outbound)

    def recipients(self, channel: str, kind: str) -> set[str]:
        return {i.recipient for i, _ in self._s.outbound if (i.channel, i.kind) == (channel, kind)}

    def opt_out(self, phone: str, since: datetime) -> bool:
        if phone in self._s.opt_outs:
            return False
        self._s.opt_outs[phone] = since
        return True

    def opt_in(self, phone: str) -> bool:
        return self._s.opt_outs.pop(phone, None) is not None

    def is_opted_out(self, phone: str) -> bool:
        return phone in self._s.opt_outs

    def answered(self, message_id: int, kind: str) -> bool:
        return any((i.message_id, i.kind) == (message_id, kind) for i, _ in self._s.outbound)


class MemoryStorage:
    """The transactor, and the one unit of work it runs at a time."""

    def __init__(self) -> None:
        self.state = State()
        self.messages = MemoryMessages(self)
        self.registry = MemoryRegistry(self)
        self.readings = MemoryReadings(self)
        self.outbound = MemoryOutbound(self)

    async def run(self, work: Callable[[Store], T]) -> T:
        before = copy.deepcopy(self.state)
        try:
            return work(self)
        except BaseException:
            self.state = before
            raise

    # ----- seeding (what `gateway import` and the Telegram channel write) ---------------

    def add_account(
        self,
        number: str,
        meters: Iterable[Meter] = (),
        *,
        debt: Decimal = Decimal(0),
        residents: int | None = None,
        building: str = "",
        phone: str = "",
    ) -> list[int]:
        """The account and its registers; the registers' ids."""
        self.state.accounts[number] = Account(number, debt, (), residents, building, phone)
        ids = []
        for meter in meters:
            rid = len(self.state.registers) + 1
            self.state.registers[rid] = (number, meter)
            ids.append(rid)
        return ids

    def add_tariff(self, tariff: Tariff) -> None:
        self.state.tariffs.append(tariff)

    def add_elder(self, email: str, *buildings: str) -> None:
        self.state.elders.setdefault(email.lower(), set()).update(buildings)

    def link_chat(self, chat: str, *accounts: str) -> None:
        self.state.chats.setdefault(chat, set()).update(accounts)

    # ----- inspection ----------------------------------------------------------------------

    def readings_of(self, account: str) -> list[ReadingRow]:
        return [r for r in self.state.readings if self.state.registers[r.register_id][0] == account]


def _previous(r: ReadingRow) -> PreviousReading:
    return PreviousReading(
        r.value, r.taken_on, r.previous, r.consumption, r.id, held=r.status == "held"
    )


def _as_json(outcome: Outcome) -> dict[str, Any]:
    """The outcome as the SQL store keeps it: its JSON, read back."""
    loaded: dict[str, Any] = json.loads(json.dumps(outcome.to_json(), ensure_ascii=False))
    return loaded


_: Transactor = MemoryStorage()


def _history(earlier: Sequence[ReadingRow]) -> tuple[Decimal, int]:
    """Like ``SqlRegistry``: the accepted readings before the period that cover some days
    (None or 0: no span to average over)."""
    spans = [(r.consumption, r.days) for r in earlier if r.days]
    return sum((c for c, _ in spans), Decimal(0)), sum(d for _, d in spans)
