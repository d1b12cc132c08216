"""The outbox relay: delivers accepted readings to billing until billing has them.

Policy only (the ports do the I/O): claim what is due, deliver concurrently (a register's
rows one at a time and in order, by construction of the claim), and record per verdict,
for the whole batch in one transaction, that the row was delivered, failed, or is due
again.

Whether billing is up is judged per endpoint, not per row, by a circuit breaker
(:mod:`billing_bridge.circuit`): while it is open the relay claims nothing, so an outage
charges an attempt only to the few rows that found billing down (those that opened the
circuit, then one probe per wait) and builds no per-row back-off; when a probe gets
through, the backlog goes at full speed in the same pass. When a row is due again after
``RETRY``:

- the circuit is open after its batch (billing is down): at once, or after billing's
  Retry-After when it gave one — no per-row back-off, so nothing of the outage is left
  to wait out once billing is back. The circuit keeps this relay from sending it, and
  another relay whose probe got through takes it with the rest of the backlog;
- the circuit stayed closed (others got through): exponential back-off with full jitter
  on the row's own attempts — the row is the problem (a poison row), and it must neither
  hot-loop nor hold the circuit open.

Rows claimed but not sent because the circuit opened meanwhile are given back as they
were. A probe is the claimed row with the fewest attempts (then the lowest id), so a row
that keeps failing is not the probe while any other row is due; a row that fails with
nothing else due looks like billing down, and is tried as the probe at the circuit's
pace (at most every ``circuit_open_cap`` seconds).

A billing in the gateway's own database (:class:`~gateway.domain.ports.LocalBillingClient`,
the embedded one) needs none of this: it takes whole batches of due rows itself, each in
the transaction that claims it, and there is nothing to retry or to trip a circuit on.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from billing_bridge.circuit import Admission, BillingCircuit, CircuitState
from gateway.domain.errors import GatewayError
from gateway.domain.outbox import Delivery, OutboxItem, Settled, Verdict
from gateway.domain.ports import BillingClient, LocalBillingClient, OutboxStore

log = structlog.get_logger("billing_bridge.relay")

# A row retried in a pass is due strictly after the pass began, so that pass does not
# claim it again.
_AFTER = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    batch: int = 100
    concurrency: int = 8
    lease_seconds: float = 60.0
    # Per-row back-off, for a row that fails while others get through (and the most a
    # Retry-After from billing makes the relay wait).
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    # The billing circuit: consecutive RETRY answers that open it, and how long it stays
    # open before a probe (exponential from the base, up to the cap, equal jitter).
    circuit_threshold: int = 5
    circuit_open_base: float = 1.0
    circuit_open_cap: float = 10.0

    def backoff(self, attempts: int, draw: float) -> float:
        """Full jitter: uniformly in [0, min(cap, base × 2^(attempts-1))]."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** max(0, attempts - 1))
        return draw * ceiling

    def circuit_wait(self, opens: int, draw: float) -> float:
        """Equal jitter: uniformly in [c/2, c], c = min(open cap, open base × 2^(opens-1))."""
        ceiling = min(self.circuit_open_cap, self.circuit_open_base * 2.0 ** max(0, opens - 1))
        return ceiling * (0.5 + 0.5 * draw)


@dataclass
class RelayReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    # Claimed but not sent: the billing circuit opened first (given back untouched).
    deferred: int = 0

    def count(self, result: Settled) -> None:
        if not result.sent:
            self.deferred += 1
        elif result.verdict is Verdict.DELIVERED:
            self.delivered += 1
        elif result.verdict is Verdict.FAILED:
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
        self.circuit = BillingCircuit(policy, clock, draw)

    async def run_once(self) -> RelayReport:
        """Deliver everything due at the start of the pass, and rows that earlier
        deliveries of their register free during it. A retried row is due again only
        after the pass, so a billing that keeps failing cannot keep one pass going; the
        pass ends as soon as the circuit opens. While the circuit is open it claims
        nothing; when it is half-open, one row goes first as the probe and, once that
        gets through, the rest of the pass at full speed."""
        report = RelayReport()
        started = self._clock()
        if isinstance(self._billing, LocalBillingClient):
            return await self._run_local(self._billing, report, started)
        while True:
            admission = self.circuit.admit()
            if admission is Admission.NONE:
                return report
            if admission is Admission.PROBE:
                # Rows the outage put off are due when the circuit let the probe go.
                started = max(started, self._clock())
            claimed = await self._store.claim(
                self._clock(), self._policy.batch, self._policy.lease_seconds, due_by=started
            )
            if not claimed:
                return report
            if admission is Admission.PROBE:
                claimed = await self._keep_probe(claimed)
            outcomes = await self._send(claimed, probing=admission is Admission.PROBE)
            down = not self.circuit.is_closed
            settled = [
                self._verdict(item, outcome, started, down)
                for item, outcome in zip(claimed, outcomes, strict=True)
            ]
            # One transaction for the batch: a crash before it re-sends these keys, and
            # billing answers that it has them.
            await self._store.settle(settled)
            for result in settled:
                report.count(result)
            if down:
                return report

    async def _run_local(
        self, billing: LocalBillingClient, report: RelayReport, started: datetime
    ) -> RelayReport:
        """A pass to a billing in the gateway's own database: batch after batch of the
        rows due at the start, each claimed, stored and marked delivered in one
        transaction (a register's later row is due once its earlier one is delivered,
        in a later batch of the same pass)."""
        while delivered := await billing.deliver_due(self._clock(), started, self._policy.batch):
            report.delivered += delivered
        return report

    async def _keep_probe(self, claimed: list[OutboxItem]) -> list[OutboxItem]:
        """The probe: the claimed row with the fewest attempts (then the lowest id), so a
        row that keeps failing is not the probe while another is due. The others are
        given back at once, untouched: no batch outlives its lease by waiting for a probe
        (once it gets through, the pass claims them again)."""
        probe = min(claimed, key=lambda item: (item.attempts, item.id))
        now = self._clock()
        await self._store.settle(
            [
                Settled(item, Verdict.RETRY, "", now, sent=False)
                for item in claimed
                if item is not probe
            ]
        )
        return [probe]

    async def run_forever(self, stop: asyncio.Event, interval: float) -> None:
        """Deliver until ``stop`` is set, resting ``interval`` seconds between passes — or
        less while the circuit is open and its probe may go sooner (but at least half of
        ``circuit_open_base``, so a Retry-After of 0 cannot make it spin)."""
        while not stop.is_set():
            try:
                report = await self.run_once()
                if report.delivered or report.failed:
                    log.info("relay_pass", **vars(report))
            except Exception as exc:
                _log_error("relay_pass_failed", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.rest_after_pass(interval))

    def rest_after_pass(self, interval: float) -> float:
        """How long ``run_forever`` rests after a pass (see there)."""
        reopen_at = self.circuit.reopen_at
        if self.circuit.state is not CircuitState.OPEN or reopen_at is None:
            return interval
        until_probe = (reopen_at - self._clock()).total_seconds()
        return min(interval, max(until_probe, self._policy.circuit_open_base / 2))

    async def _send(
        self, items: Sequence[OutboxItem], probing: bool = False
    ) -> list[Delivery | None]:
        """Billing's answer per item, in order, each recorded in the circuit; None for an
        item not sent because its turn came when the circuit was not closed (any more).
        ``probing``: ``items`` is the one probe of a half-open circuit."""
        if not items or not (probing or self.circuit.is_closed):
            return [None] * len(items)
        gate = asyncio.Semaphore(self._policy.concurrency)

        async def one(item: OutboxItem) -> Delivery | None:
            async with gate:
                if not (probing or self.circuit.is_closed):
                    return None
                answer = await self._deliver(item)
                self.circuit.record(answer)
                return answer

        return list(await asyncio.gather(*(one(item) for item in items)))

    async def _deliver(self, item: OutboxItem) -> Delivery:
        try:
            return await self._billing.deliver(item)
        except Exception as exc:  # a client bug must not stop the relay
            _log_error("relay_client_error", exc, outbox_id=item.id)
            return Delivery(Verdict.RETRY, f"client error: {exc!r}")

    def _verdict(
        self, item: OutboxItem, outcome: Delivery | None, started: datetime, down: bool
    ) -> Settled:
        now = self._clock()
        if outcome is None:
            return Settled(item, Verdict.RETRY, "not sent: billing circuit open", now, sent=False)
        if outcome.verdict is Verdict.DELIVERED:
            return Settled(item, Verdict.DELIVERED, outcome.detail, now)
        if outcome.verdict is Verdict.FAILED:
            log.warning("relay_failed", outbox_id=item.id, detail=outcome.detail)
            return Settled(item, Verdict.FAILED, outcome.detail, now)
        delay = outcome.retry_after
        if delay is None:
            # Billing is down: due at once — the circuit, not the row, decides when
            # anything goes, and once a probe gets through (this relay's or another's)
            # the row goes with the rest of the backlog. Others got through: the row is
            # the problem, and backs off on its own.
            delay = 0.0 if down else self._policy.backoff(item.attempts + 1, self._draw())
        delay = min(delay, self._policy.backoff_cap)
        due = max(now, started) + max(timedelta(seconds=delay), _AFTER)
        log.info(
            "relay_retry",
            outbox_id=item.id,
            detail=outcome.detail,
            delay=round((due - now).total_seconds(), 3),
            circuit=self.circuit.state.value,
        )
        return Settled(item, Verdict.RETRY, outcome.detail, due)


def _log_error(event: str, exc: Exception, **fields: object) -> None:
    """An outage that retrying cures (the database, for the embedded billing) is one
    warning line without a traceback; anything else is logged with its traceback."""
    if isinstance(exc, GatewayError) and exc.retryable:
        log.warning(event, reason=str(exc), retryable=True, **fields)
    else:
        log.exception(event, **fields)
