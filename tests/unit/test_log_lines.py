"""The JSON lines of ``gateway.logging``: made in fewer steps than structlog's standard
processors, and the same lines — key order, level names, non-ASCII text, values JSON has
no form for, the timestamp's format and time."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import structlog

from gateway import logging as gateway_logging


class Captured(io.StringIO):
    def isatty(self) -> bool:
        return False


class Structlogged:
    """Has its own form in structlog's renderer."""

    def __structlog__(self) -> str:
        return "own form"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    stream = Captured()
    monkeypatch.setattr(sys, "stderr", stream)
    gateway_logging.configure("json", "debug")
    yield stream
    structlog.reset_defaults()


def lines(stream: Captured) -> list[str]:
    gateway_logging._sink(stream).flush()
    return stream.getvalue().splitlines()


# structlog's own stamp has no fraction at a whole second; ours always six digits.
STAMP = re.compile(r'"timestamp": "(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z)"')


def structlogs_line(method: str, event: str, **fields: Any) -> str:
    """The line structlog's standard processors make of the same call."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.JSONRenderer(ensure_ascii=False),
    ]
    event_dict: Any = {**fields, "event": event}
    for processor in processors:
        event_dict = processor(None, method, event_dict)
    assert isinstance(event_dict, str)
    return event_dict


@pytest.mark.parametrize("method", ["debug", "info", "warning", "warn", "error", "exception"])
def test_a_line_is_structlogs_line(captured: Captured, method: str) -> None:
    fields: dict[str, Any] = {
        "text": "Показания: 12345 6789",
        "value": Decimal("3443.05"),
        "own": Structlogged(),
        "none": None,
        "items": [1, "два"],
    }
    log = structlog.get_logger("test")
    before = datetime.now(UTC)
    with structlog.contextvars.bound_contextvars(request_id="0123456789ab"):
        getattr(log, method)("something_happened", **fields)
        expected = structlogs_line(method, "something_happened", **fields)
    after = datetime.now(UTC)

    (line,) = lines(captured)
    assert STAMP.sub("", line) == STAMP.sub("", expected)
    assert re.search(r'"timestamp": "[^"]+\.\d{6}Z"}$', line)
    event = json.loads(line)
    assert event["level"] == {"warn": "warning", "exception": "error"}.get(method, method)
    assert event["value"] == "Decimal('3443.05')" and event["own"] == "own form"
    stamp = STAMP.search(line)
    assert stamp is not None
    at = datetime.strptime(stamp.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before <= at <= after


def test_each_line_has_its_own_time(captured: Captured) -> None:
    log = structlog.get_logger("test")
    moments = []
    for n in range(2000):
        log.info("tick", n=n)
        moments.append(datetime.now(UTC))

    stamps = [json.loads(line)["timestamp"] for line in lines(captured)]
    times = [datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) for s in stamps]
    assert times == sorted(times)
    assert all(at <= moment for at, moment in zip(times, moments, strict=True))
    assert len(set(stamps)) > 1


@pytest.mark.parametrize(
    ("nanoseconds", "stamp"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (1_795_000_000_000_012_345, "2026-11-18T11:06:40.000012Z"),
        (1_795_000_000_999_999_999, "2026-11-18T11:06:40.999999Z"),
        (1_795_000_001_000_000_000, "2026-11-18T11:06:41.000000Z"),
    ],
)
def test_the_stamp_is_datetimes_iso_form(nanoseconds: int, stamp: str) -> None:
    made = gateway_logging._UtcStamp(lambda: nanoseconds)()

    assert made == stamp
    # datetime's form, but with the six digits also at a whole second (where
    # structlog's TimeStamper would drop them).
    at = datetime.fromtimestamp(nanoseconds // 1000 / 1e6, UTC)
    assert made == at.isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_a_stamp_follows_the_clock_across_seconds() -> None:
    now = [1_795_000_000_999_000_000]
    stamp = gateway_logging._UtcStamp(lambda: now[0])

    first = stamp()
    now[0] += 2_000_000
    second = stamp()

    assert (first, second) == ("2026-11-18T11:06:40.999000Z", "2026-11-18T11:06:41.001000Z")
