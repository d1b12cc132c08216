"""The interfaces channels and the intake meet at."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from gateway.domain.authorization import Directory, Scope
from gateway.domain.lists import ListReport, ListResult, Locate
from gateway.domain.model import Entered, InboundMessage, Sender
from gateway.domain.outbox import Delivery, OutboxItem, Settled
from gateway.domain.outcome import Charge, Outcome, ReadingLine
from gateway.domain.store import Outbound


class OnInbound(Protocol):
    """Handle one message and return its outcome; the message is recorded with it
    before this returns. Channels call this and only render ``outcome.reply``."""

    async def __call__(self, message: InboundMessage) -> Outcome: ...


class OnEntered(Protocol):
    """Readings entered register by register (a guided dialog): ``preview`` decides
    without storing (the summary before confirming), ``submit`` handles them like a
    message (see ``Intake.submit``)."""

    async def preview(self, message: InboundMessage, entered: Entered) -> Outcome: ...

    async def submit(self, message: InboundMessage, entered: Entered) -> Outcome: ...


class Authorizer(Protocol):
    """What a sender may act on, and which accounts a sender may mean without naming one
    (see :mod:`gateway.domain.authorization`)."""

    def scope(self, directory: Directory, sender: Sender) -> Scope: ...

    def implied_accounts(self, directory: Directory, sender: Sender) -> list[str]: ...


class Renderer(Protocol):
    """A channel's wording of an outcome (``outcome.reason``, its readings and final
    charge): the reply that channel sends, or None for no reply."""

    def __call__(self, outcome: Outcome) -> str | None: ...


class ChargeQuote(Protocol):
    """Billing's own preliminary charge for accepted readings, or None when billing does
    not answer in time (the caller then keeps its local calculation)."""

    async def __call__(
        self, account: str, readings: Sequence[ReadingLine], on: date
    ) -> Charge | None: ...


class OutboxStore(Protocol):
    """The outbox as the relay sees it. Claiming leases rows so two relays never send one
    row at once; a register's rows are claimable only in id order."""

    async def claim(
        self, now: datetime, limit: int, lease_seconds: float, *, due_by: datetime
    ) -> list[OutboxItem]:
        """Lease up to ``limit`` rows due by ``due_by`` (written by then, and not put off
        until later) for ``lease_seconds`` from ``now``."""
        ...

    async def settle(self, results: Sequence[Settled]) -> None:
        """Record what became of claimed rows, all in one transaction."""
        ...


class BillingClient(Protocol):
    async def deliver(self, item: OutboxItem) -> Delivery: ...


@runtime_checkable
class LocalBillingClient(BillingClient, Protocol):
    """A billing kept in the gateway's own database (the embedded one). The relay hands
    it whole batches of due rows by their due time: each batch is claimed, stored in
    billing and marked delivered in one transaction, by set-based statements, so no row
    travels through the relay. There is nothing to lease, retry or trip a circuit on: a
    failure rolls the batch back, and the next pass takes it again."""

    async def deliver_due(self, now: datetime, due_by: datetime, limit: int) -> int:
        """Deliver up to ``limit`` rows due by ``due_by`` (in one transaction); how many."""
        ...


class OnList(Protocol):
    """Handle an elder's list (see ``Intake.handle_list``): every data line decided and
    stored with the one inbound message before this returns."""

    async def handle_list(self, message: InboundMessage) -> ListResult: ...


class ListReporter(Protocol):
    """The report of a list: ``notes`` name what could not be read (ignored attachments),
    ``locate`` maps a line number to its file and line there."""

    def __call__(
        self, result: ListResult, *, subject: str, notes: Sequence[str], locate: Locate
    ) -> ListReport: ...


class MailDesk(Protocol):
    """What the email channel records besides lists (see ``gateway.mail.MailDesk``)."""

    async def is_elder(self, address: str) -> bool:
        """Whether the supplier made this address an elder of at least one building."""
        ...

    async def refuse(
        self, message: InboundMessage, outcome: Outcome, answer: Outbound | None
    ) -> list[int]:
        """Record a mail that is not read as a list, with ``outcome``, and queue ``answer``
        unless one of its kind went to that address today; a redelivery (the same
        external id) records and queues nothing. The ids of the queued rows."""
        ...

    async def report(self, item: Outbound) -> list[int]:
        """Queue a list's report unless one was queued for the same message; the ids."""
        ...


class Notify(Protocol):
    """Send queued outbound rows now (``OutboundSender.send_now``)."""

    async def __call__(self, ids: Sequence[int]) -> object: ...


@dataclass(frozen=True, slots=True)
class Assembled:
    """A concatenated SMS: its parts' text in order, and ``key``, the same on every
    delivery of those parts (their first row's id: the message's identity)."""

    text: str
    key: int
    parts: int
    total: int


class SmsParts(Protocol):
    """Parts of concatenated SMS, kept until the whole message is handled."""

    async def keep(
        self, source: str, reference: int, total: int, number: int, text: str, now: datetime
    ) -> Assembled | None:
        """Keep one part (a part kept already is a redelivery: nothing changes); the whole
        message when this part completed it, else None."""
        ...

    async def handled(self, source: str, key: int, now: datetime) -> None:
        """The message ``key`` was handled: its parts stay only to recognise redeliveries."""
        ...

    async def expired(self, before: datetime) -> list[tuple[str, Assembled]]:
        """Unfinished messages whose first part came before ``before``: what came of them
        (the text of the parts that came, in order), by source."""
        ...
