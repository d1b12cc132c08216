"""A circuit breaker for the billing endpoint: when billing is down, stop sending and probe
it with one row now and then, instead of every row backing off on its own.

Pure policy: no I/O and no sleeping; time comes from an injected clock and jitter from an
injected draw, so every rule is unit-tested with a hand-moved clock.

The rules (``RelayPolicy`` holds the numbers):

- **Closed** (billing is up): the relay sends what is due. A ``RETRY`` answer — 5xx, 429,
  a timeout, a refused connection — counts as a failure of the *endpoint*; any other
  answer (delivered, 409/422, or a row billing refused for good with a 4xx) shows
  billing is answering and sets the count back to 0. ``circuit_threshold`` consecutive
  failures open the circuit, and so does a single answer carrying ``Retry-After``:
  billing asked for a pause.
- **Open**: the relay claims and sends nothing until ``reopen_at``. The wait is billing's
  Retry-After when it gave one (at most ``backoff_cap``), else exponential with equal
  jitter: uniformly between half and all of ``min(circuit_open_cap, circuit_open_base ×
  2^(opens-1))``, where ``opens`` counts the openings since the circuit was last closed.
  Equal rather than full jitter: there is one probe per wait, and a wait near zero again
  and again would hammer billing, while the jitter still keeps several relay processes
  from probing in step. Answers to requests that were already in flight when the circuit
  opened do not move it.
- **Half-open** (the wait is over): the relay sends exactly one row, the probe, and hears
  its answer before anything else goes. Not a ``RETRY`` → closed, and the backlog goes at
  full speed at once; ``RETRY`` → open again, with the next, longer wait.

Each relay process keeps its own circuit (several relays on one outbox each find out for
themselves, at the cost of a few more failed requests and probes when billing goes down).
Transitions are logged: ``billing_circuit_open`` (``reason``: the kind of failure, never
billing's body; ``wait`` in seconds; ``failures``; ``opens``) — a warning when the circuit
first opens, info when a failed probe opens it again — and ``billing_circuit_closed``
(``outage_seconds`` since it first opened, ``opens``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

import structlog

from gateway.domain.outbox import Delivery, Verdict

if TYPE_CHECKING:
    from billing_bridge.delivery import RelayPolicy

log = structlog.get_logger("billing_bridge.circuit")


class CircuitState(StrEnum):
    CLOSED = "closed"  # billing is up: send what is due
    OPEN = "open"  # billing is down: send nothing until reopen_at
    HALF_OPEN = "half_open"  # the wait is over: one probe decides


class Admission(StrEnum):
    """What the relay may send now."""

    ALL = "all"  # everything due
    PROBE = "probe"  # exactly one row, whose answer is recorded before anything else goes
    NONE = "none"  # nothing: do not even claim


class BillingCircuit:
    def __init__(
        self,
        policy: RelayPolicy,
        clock: Callable[[], datetime],
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._draw = draw
        self._state = CircuitState.CLOSED
        self._failures = 0  # consecutive RETRY answers while closed
        self._opens = 0  # openings since the circuit was last closed
        self._reopen_at: datetime | None = None
        self._opened_at: datetime | None = None  # when this outage began

    @property
    def state(self) -> CircuitState:
        return self._state

    @property
    def is_closed(self) -> bool:
        return self._state is CircuitState.CLOSED

    @property
    def reopen_at(self) -> datetime | None:
        """When a probe may go (None while closed)."""
        return self._reopen_at

    def admit(self) -> Admission:
        """Closed: send all; open: nothing until ``reopen_at``, then half-open: one probe.
        The caller sends exactly one row on ``PROBE`` and records its answer before it
        asks again; a probe that was never sent (nothing was due) leaves it half-open."""
        if self._state is CircuitState.CLOSED:
            return Admission.ALL
        if self._state is CircuitState.OPEN:
            assert self._reopen_at is not None
            if self._clock() < self._reopen_at:
                return Admission.NONE
            self._state = CircuitState.HALF_OPEN
            log.debug("billing_circuit_half_open", opens=self._opens)
        return Admission.PROBE

    def record(self, outcome: Delivery) -> None:
        """Billing's answer to one request: see the module's rules."""
        failed = outcome.verdict is Verdict.RETRY
        if self._state is CircuitState.CLOSED:
            if not failed:
                self._failures = 0
                return
            self._failures += 1
            if outcome.retry_after is not None or self._failures >= self._policy.circuit_threshold:
                self._open(outcome)
        elif self._state is CircuitState.HALF_OPEN:
            if failed:
                self._open(outcome)
            else:
                self._close()
        # OPEN: an answer to a request sent before it opened; the probe decides.

    def _open(self, outcome: Delivery) -> None:
        now = self._clock()
        first = self._state is CircuitState.CLOSED
        self._opens += 1
        if outcome.retry_after is not None:
            wait = min(max(outcome.retry_after, 0.0), self._policy.backoff_cap)
        else:
            wait = self._policy.circuit_wait(self._opens, self._draw())
        self._state = CircuitState.OPEN
        self._reopen_at = now + timedelta(seconds=wait)
        if first:
            self._opened_at = now
        (log.warning if first else log.info)(
            "billing_circuit_open",
            reason=cause(outcome.detail),
            wait=round(wait, 3),
            failures=self._failures if first else 1,
            opens=self._opens,
        )

    def _close(self) -> None:
        now = self._clock()
        outage = 0.0 if self._opened_at is None else (now - self._opened_at).total_seconds()
        log.info("billing_circuit_closed", outage_seconds=round(outage, 3), opens=self._opens)
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opens = 0
        self._reopen_at = None
        self._opened_at = None


def cause(detail: str) -> str:
    """The kind of failure from a delivery's detail, without billing's body (which may echo
    a reading): "HTTP 503", "timeout", "network: ClientConnectorError", "client error"."""
    head, _, rest = detail.partition(": ")
    if head == "network":
        head = f"network: {rest.partition(':')[0]}"
    return head[:80] or "retry"
