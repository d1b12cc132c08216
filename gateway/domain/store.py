"""What the intake and review need from storage, by aggregate, as typed interfaces.

One unit of work (:class:`Store`) is one transaction; it offers a store per aggregate:

- :class:`MessageStore` — inbound messages and their outcomes (the audit trail);
- :class:`RegistryStore` — accounts with their registers, tariffs, who may act on what;
- :class:`ReadingStore` — readings, with billing's outbox rows written beside them;
- :class:`OutboundStore` — messages sent later than the synchronous reply.

:class:`Transactor` runs a piece of synchronous work in one unit of work: the SQL
implementation (:mod:`gateway.storage`) does it in a single hop to the database, and the
tests' in-memory fake in a single call. Nothing here knows SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from gateway.domain.model import Account, InboundMessage, Register, Tariff
from gateway.domain.outcome import Outcome

# Any period sorts before this one: "the latest accepted reading of all".
LATEST = "9999-12"


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    status: str
    outcome: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewReading:
    register: Register
    value: Decimal
    previous: Decimal | None
    consumption: Decimal
    # Days since the previous reading (None for a first reading).
    days: int | None = None


@dataclass(frozen=True, slots=True)
class Taken:
    """A reading to store with the message it came in and when that was received."""

    message_id: int
    taken_at: datetime
    reading: NewReading


@dataclass(frozen=True, slots=True)
class StoredReading:
    reading_id: int
    message_id: int
    account: str
    meter: str
    service: str
    zone: str
    value: Decimal
    previous: Decimal | None
    consumption: Decimal
    days: int | None
    taken_at: datetime
    taken_on: date  # the local date: the tariff date
    period: str
    channel: str
    sender: str
    status: str


class MessageStore(Protocol):
    def find(self, channel: str, external_id: str) -> StoredMessage | None:
        """The message an earlier delivery with this provider id left, if any."""
        ...

    def count_recent(
        self, channel: str, sender: str, since: datetime, error_code: str | None = None
    ) -> int:
        """Messages from ``sender`` after ``since`` (with that error code, when given)."""
        ...

    def lock_sender(self, channel: str, sender: str) -> None:
        """Order this unit of work after others for the same sender until it ends, so a
        count of the sender's recent messages cannot miss one committed meanwhile."""
        ...

    def find_many(self, channel: str, external_ids: Sequence[str]) -> dict[str, StoredMessage]:
        """:meth:`find` for many provider ids at once, by id; the unknown ones left out."""
        ...

    def recent(
        self, channel: str, senders: Sequence[str], since: datetime
    ) -> dict[str, list[datetime]]:
        """When each of ``senders`` sent the messages recorded after ``since``."""
        ...

    def lock_senders(self, channel: str, senders: Sequence[str]) -> None:
        """:meth:`lock_sender` for many senders, always in one order (no deadlock)."""
        ...

    def record(self, message: InboundMessage, outcome: Outcome) -> int:
        """The audit row: the message as received and what became of it; its id. Raises
        :class:`~gateway.domain.errors.AlreadyRecorded` when a message with the same
        channel and provider id is recorded already (a concurrent delivery of it)."""
        ...

    def record_many(self, recorded: Sequence[tuple[InboundMessage, Outcome]]) -> list[int]:
        """:meth:`record` for several messages at once; their ids, in order."""
        ...

    def update_outcome(self, message_id: int, outcome: Outcome) -> None:
        """Replace a recorded outcome (billing's own charge arrived, a list went on)."""
        ...


class RegistryStore(Protocol):
    def load_account(
        self, number: str, period: str = LATEST, *, lock: bool = False
    ) -> Account | None:
        """The account with its registers: for each, the last accepted reading of a period
        before ``period`` (or the registry's newer baseline) and the reading already stored
        for ``period``. ``lock`` orders concurrent work on one account."""
        ...

    def load_accounts(
        self, numbers: Sequence[str], period: str = LATEST, *, lock: bool = False
    ) -> dict[str, Account]:
        """:meth:`load_account` for many accounts at once (a list's batch); the unknown
        ones are left out."""
        ...

    def accounts_by_phone(self, phone: str) -> list[str]:
        """The accounts whose registry phone is ``phone`` (E.164), in number order."""
        ...

    def elder_buildings(self, email: str) -> frozenset[str]:
        """The buildings assigned to the elder with this email address."""
        ...

    def chat_accounts(self, chat: str) -> frozenset[str]:
        """The accounts linked to a chat."""
        ...

    def load_tariffs(self) -> list[Tariff]:
        """Every tariff."""
        ...


class ReadingStore(Protocol):
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
        """Store readings. An accepted reading supersedes what its register already has for
        the period and is queued for billing in the same unit of work; a held one
        supersedes only an earlier held one."""
        ...

    def add_many(
        self, taken: Sequence[Taken], taken_on: date, period: str, *, held: bool = False
    ) -> list[int]:
        """:meth:`add` for readings of several messages (at most one per register)."""
        ...

    def held(self) -> list[StoredReading]:
        """Readings held for an operator, oldest first."""
        ...

    def decide(
        self,
        message_id: int,
        *,
        approve: bool,
        note: str | None,
        now: datetime,
        account: str | None = None,
    ) -> list[StoredReading]:
        """Approve or decline the held readings of one message for one account."""
        ...

    def history(self, account: str) -> list[StoredReading]:
        """Every reading received for the account, oldest first, whatever its status."""
        ...


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message to send later than the synchronous reply, on the channel it names."""

    channel: str
    recipient: str
    text: str
    kind: str  # review_approved | review_rejected | reminder | list_report
    message_id: int | None = None  # the inbound message it answers


class OutboundStore(Protocol):
    def queue(self, item: Outbound, now: datetime) -> int:
        """Queue ``item`` for its channel's sender; its id."""
        ...

    def recipients(self, channel: str, kind: str) -> set[str]:
        """Whom messages of this kind were queued for on ``channel``, whatever became of
        them (a reminder goes once per chat and period)."""
        ...

    def opt_out(self, phone: str, since: datetime) -> bool:
        """Stop everything but direct replies to ``phone`` (СТОП); False if it was already."""
        ...

    def opt_in(self, phone: str) -> bool:
        """Resume messages to ``phone`` (СТАРТ); False if it was not opted out."""
        ...

    def is_opted_out(self, phone: str) -> bool: ...

    def answered(self, message_id: int, kind: str) -> bool:
        """Whether a message of this kind was queued in answer to that inbound message
        (a list's report goes once however often its mail is delivered)."""
        ...


class Store(Protocol):
    """One unit of work: a transaction, with a store per aggregate."""

    @property
    def messages(self) -> MessageStore: ...

    @property
    def registry(self) -> RegistryStore: ...

    @property
    def readings(self) -> ReadingStore: ...

    @property
    def outbound(self) -> OutboundStore: ...


T = TypeVar("T")


class Transactor(Protocol):
    async def run(self, work: Callable[[Store], T]) -> T:
        """Run ``work`` in one unit of work: kept when it returns, undone if it raises.
        Raises :class:`~gateway.domain.errors.StorageUnavailable` on an outage."""
        ...
