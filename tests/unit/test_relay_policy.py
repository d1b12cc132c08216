"""The relay's policy: billing's answers to verdicts, Retry-After, back-off with jitter,
and the circuit breaker that judges the billing endpoint as a whole."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing_bridge.circuit import Admission, BillingCircuit, CircuitState, cause
from billing_bridge.delivery import OutboxRelay, RelayPolicy
from billing_bridge.http_billing import classify, retry_after_seconds
from gateway.domain.errors import StorageUnavailable
from gateway.domain.outbox import Delivery, OutboxItem, Settled, Verdict

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (201, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (409, Verdict.DELIVERED),
        (422, Verdict.DELIVERED),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (502, Verdict.RETRY),
        (503, Verdict.RETRY),
        (400, Verdict.FAILED),
        (401, Verdict.FAILED),
        (403, Verdict.FAILED),
        (404, Verdict.FAILED),
        (413, Verdict.FAILED),
    ],
)
def test_billing_status_gives_the_verdict(status: int, verdict: Verdict) -> None:
    assert classify(status, "body", None).verdict is verdict


def test_the_detail_names_the_status_and_body() -> None:
    assert (
        classify(400, '{"error": "bad meter"}', None).detail == 'HTTP 400: {"error": "bad meter"}'
    )


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("Fri, 20 Nov 2026 09:02:00 GMT", 120.0),
        ("Fri, 20 Nov 2026 08:59:00 GMT", 0.0),  # already past: now
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds


def test_a_retry_carries_billings_retry_after() -> None:
    assert classify(429, "", "30", NOW).retry_after == 30.0
    assert classify(503, "", None, NOW).retry_after is None


@pytest.mark.parametrize(
    ("attempts", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (40, 300.0)]
)
def test_backoff_ceiling_doubles_up_to_the_cap(attempts: int, ceiling: float) -> None:
    policy = RelayPolicy(backoff_base=1.0, backoff_cap=300.0)
    assert policy.backoff(attempts, 1.0) == ceiling


def test_backoff_is_full_jitter_between_zero_and_the_ceiling() -> None:
    policy = RelayPolicy(backoff_base=2.0, backoff_cap=300.0)
    assert policy.backoff(3, 0.0) == 0.0
    assert policy.backoff(3, 0.25) == 2.0
    assert policy.backoff(3, 0.5) == 4.0


# ----- the billing circuit ---------------------------------------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


DOWN = Delivery(Verdict.RETRY, 'HTTP 503: {"error": "account 1234567890 is locked"}')
UP = Delivery(Verdict.DELIVERED, "HTTP 201: {}")
REFUSED = Delivery(Verdict.FAILED, "HTTP 400: bad meter")
POLICY = RelayPolicy(circuit_threshold=3, circuit_open_base=2.0, circuit_open_cap=10.0)


def circuit(clock: Clock, policy: RelayPolicy = POLICY, draw: float = 1.0) -> BillingCircuit:
    return BillingCircuit(policy, clock, lambda: draw)


def test_the_circuit_opens_after_the_threshold_of_consecutive_retries() -> None:
    breaker = circuit(Clock())
    for _ in range(2):
        breaker.record(DOWN)
        assert breaker.admit() is Admission.ALL
    breaker.record(DOWN)

    assert breaker.state is CircuitState.OPEN
    assert breaker.admit() is Admission.NONE


def test_an_answer_from_billing_sets_the_count_of_failures_back() -> None:
    """A delivery, and a row refused for good (4xx), both show billing is up."""
    breaker = circuit(Clock())
    for answer in (DOWN, DOWN, UP, DOWN, DOWN, REFUSED, DOWN, DOWN):
        breaker.record(answer)

    assert breaker.state is CircuitState.CLOSED


def test_an_open_circuit_lets_one_probe_go_after_its_wait() -> None:
    clock = Clock()
    breaker = circuit(clock)
    for _ in range(3):
        breaker.record(DOWN)
    assert breaker.reopen_at == NOW + timedelta(seconds=2)

    clock.advance(1.999)
    assert breaker.admit() is Admission.NONE
    clock.advance(0.001)
    assert breaker.admit() is Admission.PROBE
    assert breaker.state is CircuitState.HALF_OPEN


def test_a_probe_that_gets_through_closes_the_circuit() -> None:
    clock = Clock()
    breaker = circuit(clock)
    for _ in range(3):
        breaker.record(DOWN)
    clock.advance(2)
    breaker.admit()

    breaker.record(UP)

    assert breaker.state is CircuitState.CLOSED
    assert breaker.admit() is Admission.ALL
    assert breaker.reopen_at is None


def test_each_failed_probe_doubles_the_wait_up_to_the_cap() -> None:
    clock = Clock()
    breaker = circuit(clock)
    for _ in range(3):
        breaker.record(DOWN)
    waits = []
    for _ in range(5):
        assert breaker.reopen_at is not None
        waits.append((breaker.reopen_at - clock()).total_seconds())
        clock.now = breaker.reopen_at
        assert breaker.admit() is Admission.PROBE
        breaker.record(DOWN)

    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_after_closing_the_next_outage_starts_from_the_shortest_wait() -> None:
    clock = Clock()
    breaker = circuit(clock)
    for answer in (DOWN, DOWN, DOWN):
        breaker.record(answer)
    for _ in range(3):  # three failed probes: the wait grows to 10 s
        assert breaker.reopen_at is not None
        clock.now = breaker.reopen_at
        breaker.admit()
        breaker.record(DOWN)
    assert breaker.reopen_at is not None
    clock.now = breaker.reopen_at
    breaker.admit()
    breaker.record(UP)

    for _ in range(3):
        breaker.record(DOWN)

    assert breaker.reopen_at == clock() + timedelta(seconds=2)


def test_retry_after_opens_the_circuit_at_once_for_that_long_at_most_the_backoff_cap() -> None:
    clock = Clock()
    breaker = circuit(clock)
    breaker.record(Delivery(Verdict.RETRY, "HTTP 429: {}", retry_after=45.0))
    assert (breaker.state, breaker.reopen_at) == (CircuitState.OPEN, NOW + timedelta(seconds=45))

    clock.advance(45)
    breaker.admit()
    breaker.record(Delivery(Verdict.RETRY, "HTTP 503: {}", retry_after=86_400.0))
    assert breaker.reopen_at == clock() + timedelta(seconds=POLICY.backoff_cap)


def test_answers_to_requests_sent_before_the_circuit_opened_do_not_move_it() -> None:
    breaker = circuit(Clock())
    for _ in range(3):
        breaker.record(DOWN)
    reopen_at = breaker.reopen_at

    breaker.record(UP)
    breaker.record(DOWN)

    assert (breaker.state, breaker.reopen_at) == (CircuitState.OPEN, reopen_at)


@pytest.mark.parametrize(
    ("opens", "draw", "wait"),
    [(1, 0.0, 1.0), (1, 1.0, 2.0), (2, 0.0, 2.0), (3, 0.5, 6.0), (4, 1.0, 10.0), (9, 0.0, 5.0)],
)
def test_the_open_wait_is_equal_jitter_between_half_and_all_of_the_ceiling(
    opens: int, draw: float, wait: float
) -> None:
    assert POLICY.circuit_wait(opens, draw) == wait


def test_each_transition_is_logged_without_billings_body(
    logs: list[MutableMapping[str, Any]],
) -> None:
    clock = Clock()
    breaker = circuit(clock)
    for _ in range(3):
        breaker.record(DOWN)
    clock.advance(2)
    breaker.admit()
    breaker.record(Delivery(Verdict.RETRY, "network: ClientConnectorError: Cannot connect"))
    clock.advance(4)
    breaker.admit()
    breaker.record(UP)

    transitions = [e for e in logs if e["event"] != "billing_circuit_half_open"]
    assert transitions == [
        {
            "event": "billing_circuit_open",
            "log_level": "warning",
            "reason": "HTTP 503",
            "wait": 2.0,
            "failures": 3,
            "opens": 1,
        },
        {
            "event": "billing_circuit_open",
            "log_level": "info",
            "reason": "network: ClientConnectorError",
            "wait": 4.0,
            "failures": 1,
            "opens": 2,
        },
        {"event": "billing_circuit_closed", "log_level": "info", "outage_seconds": 6.0, "opens": 2},
    ]


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        ('HTTP 503: {"account": "1234567890"}', "HTTP 503"),
        ("timeout", "timeout"),
        ("network: ClientOSError: [Errno 104] Connection reset by peer", "network: ClientOSError"),
        ("client error: ValueError('x')", "client error"),
        ("", "retry"),
    ],
)
def test_the_reason_is_the_kind_of_failure(detail: str, reason: str) -> None:
    assert cause(detail) == reason


# ----- the relay with its circuit (an in-memory outbox, a scripted billing) ---------------


@dataclass
class Row:
    id: int
    register_id: int
    attempts: int = 0
    status: str = "pending"
    next_attempt_at: datetime | None = None
    lease_until: datetime | None = None
    last_error: str | None = None


@dataclass
class MemoryOutbox:
    """The outbox port as the SQL store keeps it: due, unleased, a register in id order."""

    rows: dict[int, Row] = field(default_factory=dict)
    claims: int = 0

    def add(self, *register_ids: int) -> None:
        for register_id in register_ids:
            row_id = len(self.rows) + 1
            self.rows[row_id] = Row(row_id, register_id)

    async def claim(
        self, now: datetime, limit: int, lease_seconds: float, *, due_by: datetime
    ) -> list[OutboxItem]:
        self.claims += 1
        pending = [r for r in self.rows.values() if r.status == "pending"]
        heads = {
            min(r.id for r in pending if r.register_id == reg)
            for reg in {r.register_id for r in pending}
        }
        due = [
            r
            for r in sorted(pending, key=lambda r: r.id)
            if r.id in heads
            and (r.next_attempt_at is None or r.next_attempt_at <= due_by)
            and (r.lease_until is None or r.lease_until < now)
        ][:limit]
        for r in due:
            r.lease_until = now + timedelta(seconds=lease_seconds)
        return [OutboxItem(r.id, r.register_id, f"reading-{r.id}", {}, r.attempts) for r in due]

    async def settle(self, results: Sequence[Settled]) -> None:
        for result in results:
            row = self.rows[result.item.id]
            row.lease_until = None
            if not result.sent:
                continue
            row.attempts = result.item.attempts + (result.verdict is not Verdict.DELIVERED)
            row.status = "pending" if result.verdict is Verdict.RETRY else result.verdict.value
            row.next_attempt_at = result.at if result.verdict is Verdict.RETRY else None
            if result.verdict is not Verdict.DELIVERED:
                row.last_error = result.detail

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows.values())


@dataclass
class ScriptedBilling:
    """Down (503) while ``down``; a key in ``poison`` always gets 500."""

    down: bool = False
    poison: set[str] = field(default_factory=set)
    sent: list[str] = field(default_factory=list)

    async def deliver(self, item: OutboxItem) -> Delivery:
        self.sent.append(item.idempotency_key)
        if self.down:
            return DOWN
        if item.idempotency_key in self.poison:
            return Delivery(Verdict.RETRY, "HTTP 500: boom")
        return UP


RELAY_POLICY = RelayPolicy(
    batch=10, concurrency=4, circuit_threshold=3, circuit_open_base=2.0, circuit_open_cap=10.0
)


def relay_for(
    outbox: MemoryOutbox, billing: ScriptedBilling, clock: Clock, draw: float = 1.0
) -> OutboxRelay:
    return OutboxRelay(outbox, billing, clock, RELAY_POLICY, draw=lambda: draw)


async def test_billing_down_opens_the_circuit_and_the_rest_of_the_batch_is_given_back() -> None:
    outbox, billing, clock = MemoryOutbox(), ScriptedBilling(down=True), Clock()
    outbox.add(*range(1, 31))
    relay = relay_for(outbox, billing, clock)

    report = await relay.run_once()

    assert (report.retried, report.deferred, report.delivered) == (3, 7, 0)
    assert relay.circuit.state is CircuitState.OPEN
    tried = [r for r in outbox.rows.values() if r.attempts]
    assert [r.id for r in tried] == [1, 2, 3]
    assert all(r.next_attempt_at == NOW + timedelta(milliseconds=1) for r in tried)  # no back-off
    assert all(
        r.lease_until is None and r.last_error is None
        for r in outbox.rows.values()
        if not r.attempts
    )


async def test_while_the_circuit_is_open_the_relay_claims_and_sends_nothing() -> None:
    outbox, billing, clock = MemoryOutbox(), ScriptedBilling(down=True), Clock()
    outbox.add(*range(1, 31))
    relay = relay_for(outbox, billing, clock)
    await relay.run_once()
    claims, sent = outbox.claims, len(billing.sent)

    clock.advance(1)
    report = await relay.run_once()

    assert (report.retried, report.deferred) == (0, 0)
    assert (outbox.claims, len(billing.sent)) == (claims, sent)


async def test_after_an_outage_one_probe_and_then_the_whole_backlog_in_the_same_pass() -> None:
    outbox, billing, clock = MemoryOutbox(), ScriptedBilling(down=True), Clock()
    outbox.add(*range(1, 101))
    relay = relay_for(outbox, billing, clock)
    for _ in range(4):  # billing stays down for four probes: the circuit's wait grows
        await relay.run_once()
        assert relay.circuit.reopen_at is not None
        clock.now = relay.circuit.reopen_at
    billing.down, billing.sent = False, []

    report = await relay.run_once()

    assert (report.delivered, outbox.count("delivered")) == (100, 100)
    assert billing.sent[0] == "reading-7"  # the probe: the first row not tried yet
    assert sorted(billing.sent) == sorted(f"reading-{i}" for i in range(1, 101))
    assert relay.circuit.state is CircuitState.CLOSED
    # Six rows were tried during the outage (three, then one per failed probe), once each.
    assert sorted(r.attempts for r in outbox.rows.values() if r.attempts) == [1] * 6


async def test_a_probe_goes_alone_and_what_else_it_claimed_is_given_back_untouched() -> None:
    outbox, billing, clock = MemoryOutbox(), ScriptedBilling(down=True), Clock()
    outbox.add(*range(1, 31))
    relay = relay_for(outbox, billing, clock)
    await relay.run_once()
    assert relay.circuit.reopen_at is not None
    clock.now = relay.circuit.reopen_at
    billing.sent = []

    report = await relay.run_once()

    assert (report.retried, report.deferred) == (1, 0)
    assert billing.sent == ["reading-4"]
    assert relay.circuit.state is CircuitState.OPEN
    untried = [r for r in outbox.rows.values() if r.id > 4]
    assert all((r.attempts, r.lease_until, r.next_attempt_at) == (0, None, None) for r in untried)


async def test_a_poison_row_backs_off_alone_while_the_others_get_through() -> None:
    outbox, billing, clock = MemoryOutbox(), ScriptedBilling(poison={"reading-1"}), Clock()
    outbox.add(1)
    relay = relay_for(outbox, billing, clock)
    delays = []
    for attempt in range(1, 9):
        outbox.add(*range(100 * attempt, 100 * attempt + 5))  # fresh readings keep coming
        report = await relay.run_once()
        poison = outbox.rows[1]
        assert poison.next_attempt_at is not None
        delays.append((poison.next_attempt_at - clock()).total_seconds())
        assert (report.delivered, poison.attempts) == (5, attempt)
        clock.now = poison.next_attempt_at

    assert relay.circuit.state is CircuitState.CLOSED
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]


async def test_a_poison_row_is_not_the_probe_when_another_row_is_due() -> None:
    """Alone, a row that keeps failing opens the circuit; it cannot keep it open once
    other readings arrive: the probe is the row with the fewest attempts."""
    outbox, billing, clock = MemoryOutbox(), ScriptedBilling(poison={"reading-1"}), Clock()
    outbox.add(1)
    relay = relay_for(outbox, billing, clock)
    while relay.circuit.is_closed:
        await relay.run_once()
        assert outbox.rows[1].next_attempt_at is not None
        clock.now = outbox.rows[1].next_attempt_at
    outbox.add(2, 3)
    assert relay.circuit.reopen_at is not None
    clock.now = relay.circuit.reopen_at
    billing.sent = []

    report = await relay.run_once()

    assert billing.sent[0] == "reading-2"
    assert (report.delivered, report.retried) == (2, 1)
    assert relay.circuit.state is CircuitState.CLOSED
    poison = outbox.rows[1]
    assert poison.next_attempt_at is not None and poison.next_attempt_at > clock()


async def test_the_relay_rests_the_interval_or_until_the_probe_may_go_if_sooner() -> None:
    outbox, billing, clock = MemoryOutbox(), ScriptedBilling(down=True), Clock()
    outbox.add(*range(1, 11))
    relay = relay_for(outbox, billing, clock, draw=0.0)
    assert relay.rest_after_pass(5.0) == 5.0  # closed

    await relay.run_once()  # opens for 1 s (a ceiling of 2 s, jitter drawn at 0)
    assert relay.rest_after_pass(5.0) == 1.0
    assert relay.rest_after_pass(0.5) == 0.5

    clock.advance(1.0)
    await relay.run_once()  # the probe fails: open for 2 s
    clock.advance(0.5)
    assert relay.rest_after_pass(5.0) == 1.5

    clock.advance(1.5)
    relay.circuit.admit()
    relay.circuit.record(Delivery(Verdict.RETRY, "HTTP 429: {}", retry_after=0.0))
    assert relay.rest_after_pass(5.0) == RELAY_POLICY.circuit_open_base / 2


async def test_a_database_outage_during_a_pass_is_one_warning_without_a_traceback(
    logs: list[MutableMapping[str, Any]],
) -> None:
    stop = asyncio.Event()

    class DownOutbox(MemoryOutbox):
        async def claim(
            self, now: datetime, limit: int, lease_seconds: float, *, due_by: datetime
        ) -> list[OutboxItem]:
            stop.set()
            raise StorageUnavailable("the database did not answer in 1 s")

    relay = relay_for(DownOutbox(), ScriptedBilling(), Clock())
    await relay.run_forever(stop, interval=0.01)

    (event,) = [e for e in logs if e["event"] == "relay_pass_failed"]
    assert event == {
        "event": "relay_pass_failed",
        "log_level": "warning",
        "reason": "the database did not answer in 1 s",
        "retryable": True,
    }
