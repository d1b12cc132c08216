"""The logs of a failure run: ``gateway serve`` as a process, on PostgreSQL through a TCP
proxy that the test cuts and stalls while signed SMS keep arriving. Every line it writes
is one JSON event, each lost message is one event, and no phone number or message text
appears anywhere."""

from __future__ import annotations

import asyncio
import json
import random
import re
import string

import pytest

from tests.e2e.conftest import Served

pytestmark = pytest.mark.postgres


async def test_a_failure_run_logs_json_events_without_phones_or_texts(served: Served) -> None:
    phones = [f"+7912{n:07d}" for n in range(3_000_001, 3_000_031)]
    marker = "".join(random.choices(string.ascii_lowercase, k=16))
    texts = [
        # A signature after the readings: dropped by the parser, kept in the audit row.
        f"1234567891 {4600 + i} Иванов {marker}{string.ascii_lowercase[i % 26]}"
        for i in range(len(phones))
    ]
    statuses: list[int] = []

    async def burst(indices: range) -> None:
        statuses.extend(await asyncio.gather(*(served.sms(phones[i], texts[i]) for i in indices)))

    await burst(range(0, 10))
    await served.proxy.cut()
    await burst(range(10, 20))
    await served.proxy.stall()
    await burst(range(20, 25))
    await served.proxy.restore()
    await asyncio.sleep(0.5)
    await burst(range(25, 30))
    await asyncio.sleep(1)  # the relay runs a pass after the outage
    await served.session.close()

    lines = served.log.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]  # every line is one JSON event
    lost = statuses.count(503)
    assert lost >= 10 and set(statuses) <= {200, 503}
    assert sum(1 for e in events if e["event"] == "message_not_stored") == lost
    log_text = "\n".join(lines)
    assert "Traceback" not in log_text
    assert marker not in log_text
    assert "Иванов" not in log_text
    for phone in phones:
        assert phone[2:] not in log_text  # neither +7… nor 8… nor the bare digits
        assert phone[-7:] not in log_text
    masked = {e["sender"] for e in events if "sender" in e}
    assert masked and all(re.fullmatch(r"\+7\*\*\*\d{4}", m) for m in masked)
