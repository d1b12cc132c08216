"""What an operator sees of a running gateway: the access log with request ids, the
Prometheus metrics, the version — ``gateway serve`` as a process on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from gateway.bootstrap import version
from tests.e2e.conftest import Served

pytestmark = pytest.mark.postgres


def events(served: Served) -> list[dict[str, object]]:
    return [json.loads(line) for line in served.log.read_text().splitlines() if line.strip()]


async def test_each_request_is_one_access_event_and_its_id_is_in_every_event(
    served: Served,
) -> None:
    form = "1234567891 4600"
    status = await served.sms("+79120000002", form, request_id="req-abc-123")
    assert status == 200
    async with served.session.get(served.base + "/healthz") as response:
        assert response.headers["X-Request-Id"]  # one is made when none is given
        assert (await response.json())["version"] == version()

    for _ in range(50):
        logged = events(served)
        if any(e.get("event") == "request" and e.get("path") == "/healthz" for e in logged):
            break
        await asyncio.sleep(0.1)
    by_id = [e for e in logged if e.get("request_id") == "req-abc-123"]
    assert [e["event"] for e in by_id if e["event"] in ("message_handled", "request")] == [
        "message_handled",
        "request",
    ]
    access = next(e for e in by_id if e["event"] == "request")
    assert (access["method"], access["path"], access["status"]) == ("POST", "/sms/twilio", 200)
    assert isinstance(access["duration_ms"], float | int)


async def test_metrics_count_messages_and_show_the_queues_and_the_intakes_latency(
    served: Served,
) -> None:
    assert await served.sms("+79120000002", "1234567891 4600") == 200
    assert await served.sms("+79120000002", "1234567891 1.2.3") == 200

    async with served.session.get(served.base + "/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()

    def value(sample: str) -> float:
        found = re.search(re.escape(sample) + r" ([0-9.e+]+)\n", text)
        assert found, sample
        return float(found.group(1))

    assert value('gateway_messages_total{channel="sms",error="",status="accepted"}') == 1
    assert value('gateway_messages_total{channel="sms",error="unparseable",status="rejected"}') == 1
    assert value('gateway_intake_seconds_count{channel="sms"}') == 2
    assert value('gateway_queue_rows{queue="outbound",state="failed"}') == 0
    assert 'gateway_queue_rows{queue="outbox",state="pending"}' in text
    assert "gateway_queue_oldest_seconds" in text
