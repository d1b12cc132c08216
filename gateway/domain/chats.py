"""What a chat channel (Telegram) keeps besides messages: the updates it received, which
accounts each chat has linked, the attempts to link one, and each chat's preferences.

Linking proves a chat may act on an account with something only its household knows:
the code for adding the account or the total of the latest paper bill, or a shared
contact whose phone is the account's registry phone. Wrong answers are counted per
account across all chats: :data:`MAX_WRONG_ANSWERS` within :data:`LOCK_WINDOW` lock
linking that account until the oldest of them is a window old.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from gateway.domain.model import Account
from gateway.domain.store import StoredReading

MAX_WRONG_ANSWERS = 5
LOCK_WINDOW = timedelta(hours=24)


class LinkMethod(StrEnum):
    RECEIPT_CODE = "receipt_code"
    BILL_TOTAL = "bill_total"
    CONTACT = "contact"


@dataclass(frozen=True, slots=True)
class LinkFacts:
    """What the registry knows of an account that proves a chat may link it."""

    account: str
    address: str
    phone: str  # E.164, or empty
    receipt_code: str  # empty: not offered
    last_bill_total: Decimal | None  # None: not offered


@dataclass(frozen=True, slots=True)
class ChatPrefs:
    chat: str
    reminders: bool = True
    blocked_at: datetime | None = None  # the bot was blocked (403): never messaged again


class ChatStore(Protocol):
    """The chat channel's own tables, in the same unit of work as the intake's."""

    def record_update(self, update_id: int, payload: str, now: datetime) -> bool:
        """Keep an update before it is acknowledged; False when this id was kept before
        (a repeated delivery: it is not processed again)."""
        ...

    def mark_processed(self, update_id: int, now: datetime) -> None: ...

    def unprocessed(self, limit: int) -> list[tuple[int, str]]:
        """Updates kept but not processed (the process stopped after acknowledging them),
        oldest first: (update id, the update's JSON)."""
        ...

    def link_facts(self, account: str) -> LinkFacts | None:
        """None for an account not in the registry."""
        ...

    def link(self, chat: str, account: str, now: datetime) -> bool:
        """Link; False when it was linked already."""
        ...

    def unlink(self, chat: str, account: str) -> bool:
        """Unlink; False when it was not linked."""
        ...

    def linked(self, chat: str) -> list[LinkFacts]:
        """The chat's linked accounts, in number order."""
        ...

    def record_attempt(
        self, account: str, chat: str, method: LinkMethod, ok: bool, now: datetime
    ) -> None: ...

    def wrong_answers(self, account: str, since: datetime) -> list[datetime]:
        """When wrong answers for this account were given after ``since``, by any chat,
        oldest first."""
        ...

    def prefs(self, chat: str) -> ChatPrefs: ...

    def set_reminders(self, chat: str, on: bool, now: datetime) -> None: ...

    def mark_blocked(self, chat: str, now: datetime) -> None: ...

    def chats_to_remind(self, period: str) -> list[str]:
        """Chats with reminders on, not blocked, with a linked account and no reading
        received from that chat for ``period`` yet."""
        ...


class Verdict(StrEnum):
    ASK = "ask"  # may be proved now: ``remaining`` wrong answers before the lock
    LINKED = "linked"
    ALREADY = "already"  # linked before
    WRONG = "wrong"  # the answer does not match; ``remaining`` tries before the lock
    LOCKED = "locked"  # too many wrong answers; ``until``
    UNKNOWN = "unknown"  # no such account
    NOT_OFFERED = "not_offered"  # the registry has nothing to check this way
    NOT_OWN_CONTACT = "not_own_contact"  # a contact of someone else


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    verdict: Verdict
    facts: LinkFacts | None = None
    remaining: int = 0
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Proof:
    """How a chat proves an account is theirs: an answer to a control question, or a
    shared contact (its phone, whose contact it is, who shared it)."""

    method: LinkMethod
    answer: str = ""
    contact_user_id: int | None = None
    from_user_id: int | None = None


def methods(facts: LinkFacts) -> list[LinkMethod]:
    """The ways this account can be proved: those the registry has data for."""
    offered = []
    if facts.receipt_code:
        offered.append(LinkMethod.RECEIPT_CODE)
    if facts.last_bill_total is not None:
        offered.append(LinkMethod.BILL_TOTAL)
    if facts.phone:
        offered.append(LinkMethod.CONTACT)
    return offered


class Desk(Protocol):
    """What a chat channel asks of the gateway besides readings (``gateway.chats``)."""

    async def keep_update(self, update_id: int, payload: str) -> bool:
        """Keep an update before acknowledging it; False: kept before (a repeat)."""
        ...

    async def processed(self, update_id: int) -> None: ...

    async def unprocessed(self, limit: int = 100) -> list[tuple[int, str]]: ...

    async def start_link(self, chat: str, account: str) -> LinkOutcome: ...

    async def prove(self, chat: str, account: str, proof: Proof) -> LinkOutcome: ...

    async def linked(self, chat: str) -> list[LinkFacts]: ...

    async def history(self, chat: str) -> list[tuple[LinkFacts, list[StoredReading]]]:
        """Each linked account with every reading received for it, oldest first."""
        ...

    async def account(self, chat: str, account: str) -> Account | None:
        """A linked account with its registers and their last readings; None if not
        linked to this chat."""
        ...

    async def unlink(self, chat: str, account: str) -> bool: ...

    async def prefs(self, chat: str) -> ChatPrefs: ...

    async def set_reminders(self, chat: str, on: bool) -> None: ...


def locked_until(wrong: list[datetime]) -> datetime | None:
    """When linking an account is possible again, given its wrong answers within the
    window (oldest first); None when it is not locked."""
    if len(wrong) < MAX_WRONG_ANSWERS:
        return None
    return wrong[-MAX_WRONG_ANSWERS] + LOCK_WINDOW
