"""Prometheus metrics (``GET /metrics``), with prometheus-client.

Counters and histograms are updated where things happen (the intake, billing calls);
the queues' sizes and the links' states are read when Prometheus scrapes, so they are
never stale. With several worker processes set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory the processes share (prometheus-client's multi-process mode): ``/metrics`` of
any process then reports them all.

Names (a public contract, like the log events: add, never rename):

- ``gateway_messages_total{channel, status, error}`` — messages handled (a list is one);
- ``gateway_intake_seconds{channel}`` — receiving to decided and stored, per message;
- ``gateway_intake_batch_messages`` — messages decided together in one transaction (those
  that arrive while the previous batch is stored); ``gateway_intake_batch_splits_total``
  — batches handled again message by message because one of them failed;
- ``gateway_billing_request_seconds{outcome}`` — each delivery to billing's API, by
  ``delivered`` / ``retry`` / ``failed`` / ``error``;
- ``gateway_queue_rows{queue, state}`` — ``outbox`` (billing) ``pending`` / ``failed``,
  ``outbound`` ``queued`` / ``failed``;
- ``gateway_queue_oldest_seconds{queue}`` — the age of the oldest row waiting;
- ``gateway_link_up{link}`` — 1 while a long-lived link is up (``smpp``, ``imap``,
  ``telegram``), 0 while it is down; only configured links appear.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from gateway.domain.outbox import Delivery, OutboxItem
from gateway.domain.ports import BillingClient

MESSAGES = Counter(
    "gateway_messages", "Messages handled, by channel, status and error code",
    ["channel", "status", "error"],
)  # fmt: skip
INTAKE_SECONDS = Histogram(
    "gateway_intake_seconds",
    "Seconds from receiving a message to its outcome stored",
    ["channel"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
INTAKE_BATCH = Histogram(
    "gateway_intake_batch_messages",
    "Messages decided together in one transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
INTAKE_SPLITS = Counter(
    "gateway_intake_batch_splits", "Batches handled again message by message after a failure"
)
BILLING_SECONDS = Histogram(
    "gateway_billing_request_seconds",
    "Seconds per delivery to billing's API, by outcome",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
QUEUE_ROWS = Gauge(
    "gateway_queue_rows", "Rows of a queue by state", ["queue", "state"],
    multiprocess_mode="livemax",
)  # fmt: skip
QUEUE_OLDEST = Gauge(
    "gateway_queue_oldest_seconds", "Age of the oldest row waiting in a queue", ["queue"],
    multiprocess_mode="livemax",
)  # fmt: skip
LINK_UP = Gauge(
    "gateway_link_up", "1 while a long-lived link is up", ["link"], multiprocess_mode="livemax"
)


def handled(channel: str, status: str, error: str | None, seconds: float) -> None:
    """One message handled by the intake."""
    _messages(channel, status, error or "").inc()
    _intake_seconds(channel).observe(seconds)


# The children of the per-message metrics by their labels, kept: .labels() checks and
# converts the labels on every call, twice per message, for a handful of channels,
# statuses and error codes.
_messages = functools.cache(MESSAGES.labels)
_intake_seconds = functools.cache(INTAKE_SECONDS.labels)


def batch(messages: int, *, split: bool = False) -> None:
    """One batch of messages decided together (``split``: failed, and handled again
    message by message)."""
    INTAKE_BATCH.observe(messages)
    if split:
        INTAKE_SPLITS.inc()


def queues(outbox: tuple[int, int, float | None], outbound: tuple[int, int, float | None]) -> None:
    """The queues as read now: (waiting, failed, oldest waiting's age) of each."""
    for name, (waiting, failed, oldest) in (("outbox", outbox), ("outbound", outbound)):
        QUEUE_ROWS.labels(name, "pending" if name == "outbox" else "queued").set(waiting)
        QUEUE_ROWS.labels(name, "failed").set(failed)
        QUEUE_OLDEST.labels(name).set(oldest or 0.0)


def links(states: Mapping[str, bool]) -> None:
    for name, up in states.items():
        LINK_UP.labels(name).set(1 if up else 0)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type (every process's, in multi-process mode)."""
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


class TimedBilling:
    """Billing's API with each delivery timed and counted by outcome."""

    def __init__(self, client: BillingClient) -> None:
        self._client = client

    async def deliver(self, item: OutboxItem) -> Delivery:
        started = time.perf_counter()
        outcome = "error"
        try:
            delivery = await self._client.deliver(item)
            outcome = delivery.verdict.value
            return delivery
        finally:
            BILLING_SECONDS.labels(outcome).observe(time.perf_counter() - started)
