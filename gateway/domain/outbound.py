"""Messages sent later than the synchronous reply: what a channel's sender is handed, and
what it says became of a send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

# The kind of a direct reply to a message, sent through the queue (SMPP's submit_sm): it
# answers what the sender just wrote, so an opt-out (СТОП) never holds it back.
REPLY_KIND = "reply"


@dataclass(frozen=True, slots=True)
class OutboundItem:
    """A queued message, claimed by a sender."""

    id: int
    channel: str
    recipient: str
    text: str
    attempts: int
    kind: str = ""  # what it tells: reply, review_approved, reminder, list_report, …


class SendVerdict(StrEnum):
    SENT = "sent"  # the provider took it
    RETRY = "retry"  # try again later: network error, timeout, 429, 5xx
    FAILED = "failed"  # the provider refused it for good (a 4xx: a bad number, a blocked bot)


@dataclass(frozen=True, slots=True)
class SendResult:
    verdict: SendVerdict
    # The provider's id of the sent message (SENT), or its error (RETRY, FAILED).
    detail: str = ""
    # Seconds the provider asked us to wait (429 Retry-After, Telegram's retry_after).
    retry_after: float | None = None
    # The provider's ids its delivery receipts will name (SMPP: one per segment).
    ids: tuple[str, ...] = ()


class ChannelSender(Protocol):
    """Sends one message on one channel (Twilio's REST API for SMS, …)."""

    async def send(self, recipient: str, text: str) -> SendResult: ...


@dataclass(frozen=True, slots=True)
class SentOutcome:
    """What to record of one attempt: the verdict, and when it is due again (RETRY)."""

    item: OutboundItem
    result: SendResult
    at: datetime
    due: datetime | None = None  # RETRY: not before this time


class Notice(StrEnum):
    """Whether the customer is told of a decision (``gateway review approve|reject``)."""

    TOLD = "told"  # sent now
    QUEUED = "queued"  # queued; the first attempt failed, `gateway serve` retries it
    FAILED = "failed"  # the channel refused it for good
    NOT_TOLD = "not_told"  # no configured channel can send to this customer
