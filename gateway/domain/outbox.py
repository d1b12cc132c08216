"""What the relay moves from the outbox to billing, and what billing said."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    register_id: int
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int


class Verdict(StrEnum):
    DELIVERED = "delivered"  # billing has it (2xx, or 409/422: it had it already)
    RETRY = "retry"  # try again later: network error, timeout, 429, 5xx
    FAILED = "failed"  # billing refused it for good (other 4xx); an operator must look


@dataclass(frozen=True, slots=True)
class Delivery:
    verdict: Verdict
    detail: str = ""
    # Seconds billing asked us to wait (Retry-After), when it did.
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of one delivery attempt, for the outbox to record."""

    item: OutboxItem
    verdict: Verdict
    detail: str
    # DELIVERED: when billing had it; RETRY: not before this time; FAILED: when refused.
    at: datetime
    # False: claimed but never sent (the billing circuit opened first). Only the lease is
    # given back: no attempt is charged, and the row's due time and last error stay.
    sent: bool = True
