"""The outbox relay: delivers accepted readings to billing until billing has them.

Policy only (the ports do the I/O): claim what is due, deliver concurrently (a register's
rows one at a time and in order, by construction of the claim), and record per verdict,
for the whole batch in one transaction, that the row was delivered, failed, or is due
again after exponential back-off with full jitter, or after billing's own Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from gateway.domain.outbox import Delivery, OutboxItem, Settled, Verdict
from gateway.domain.ports import BatchBillingClient, BillingClient, OutboxStore

log = structlog.get_logger("billing_bridge.relay")


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    batch: int = 100
    concurrency: int = 8
    lease_seconds: float = 60.0
    backoff_base: float = 1.0
    backoff_cap: float = 300.0

    def backoff(self, attempts: int, draw: float) -> float:
        """Full jitter: uniformly in [0, min(cap, base × 2^(attempts-1))]."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** max(0, attempts - 1))
        return draw * ceiling


@dataclass
class RelayReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0

    def count(self, verdict: Verdict) -> None:
        if verdict is Verdict.DELIVERED:
            self.delivered += 1
        elif verdict is Verdict.FAILED:
            self.failed += 1
        else:
            self.retried += 1

    def __str__(self) -> str:
        return f"delivered {self.delivered}, retried {self.retried}, failed {self.failed}"


class OutboxRelay:
    def __init__(
        self,
        store: OutboxStore,
        billing: BillingClient,
        clock: Callable[[], datetime],
        policy: RelayPolicy = RelayPolicy(),
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._billing = billing
        self._clock = clock
        self._policy = policy
        self._draw = draw

    async def run_once(self) -> RelayReport:
        """Deliver everything due at the start of the pass, and rows that earlier
        deliveries of their register free during it. A retried row is due again only
        after the pass, so a billing that keeps failing cannot keep one pass going."""
        report = RelayReport()
        gate = asyncio.Semaphore(self._policy.concurrency)
        started = self._clock()
        while True:
            claimed = await self._store.claim(
                self._clock(), self._policy.batch, self._policy.lease_seconds, due_by=started
            )
            if not claimed:
                return report

            if isinstance(self._billing, BatchBillingClient):
                settled = await self._deliver_all(self._billing, claimed, started)
            else:

                async def one(item: OutboxItem) -> Settled:
                    async with gate:
                        return self._verdict(item, await self._deliver(item), started)

                settled = await asyncio.gather(*(one(item) for item in claimed))
            # One transaction for the batch: a crash before it re-sends these keys, and
            # billing answers that it has them.
            await self._store.settle(settled)
            for result in settled:
                report.count(result.verdict)

    async def run_forever(self, stop: asyncio.Event, interval: float) -> None:
        """Deliver until ``stop`` is set, resting ``interval`` seconds when nothing is due."""
        while not stop.is_set():
            try:
                report = await self.run_once()
                if report.delivered or report.failed:
                    log.info("relay_pass", **vars(report))
            except Exception:
                log.exception("relay_pass_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def _deliver(self, item: OutboxItem) -> Delivery:
        try:
            return await self._billing.deliver(item)
        except Exception as exc:  # a client bug must not stop the relay
            log.exception("relay_client_error", outbox_id=item.id)
            return Delivery(Verdict.RETRY, f"client error: {exc!r}")

    async def _deliver_all(
        self, billing: BatchBillingClient, items: list[OutboxItem], started: datetime
    ) -> list[Settled]:
        try:
            outcomes = await billing.deliver_all(items)
        except Exception as exc:
            log.exception("relay_client_error", outbox_ids=[item.id for item in items])
            outcomes = [Delivery(Verdict.RETRY, f"client error: {exc!r}") for _ in items]
        return [
            self._verdict(item, outcome, started)
            for item, outcome in zip(items, outcomes, strict=True)
        ]

    def _verdict(self, item: OutboxItem, outcome: Delivery, started: datetime) -> Settled:
        now = self._clock()
        if outcome.verdict is Verdict.DELIVERED:
            return Settled(item, Verdict.DELIVERED, outcome.detail, now)
        if outcome.verdict is Verdict.FAILED:
            log.warning("relay_failed", outbox_id=item.id, detail=outcome.detail)
            return Settled(item, Verdict.FAILED, outcome.detail, now)
        delay = outcome.retry_after
        if delay is None:
            delay = self._policy.backoff(item.attempts + 1, self._draw())
        due = max(now, started) + timedelta(seconds=max(delay, 0.001))
        log.info("relay_retry", outbox_id=item.id, detail=outcome.detail, delay=delay)
        return Settled(item, Verdict.RETRY, outcome.detail, due)
