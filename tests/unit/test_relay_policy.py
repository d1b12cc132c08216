"""The relay's policy: billing's answers to verdicts, Retry-After, back-off with jitter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_bridge.delivery import RelayPolicy
from billing_bridge.http_billing import classify, retry_after_seconds
from gateway.domain.outbox import Verdict

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
