"""The logs of a failure run: ``gateway serve`` as a process, on PostgreSQL through a TCP
proxy that the test cuts and stalls while signed SMS keep arriving. Every line it writes
is one JSON event, each lost message is one event, and no phone number or message text
appears anywhere."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import string
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from gateway.bootstrap import gateway
from gateway.settings import Settings
from tests.conftest import Clock, empty_database, load_registry
from tests.e2e.conftest import PUBLIC, TOKEN
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    base: str
    log: Path
    proxy: TcpProxy
    session: aiohttp.ClientSession

    async def sms(self, sender: str, body: str) -> int:
        form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": sender, "Body": body}
        signature = RequestValidator(TOKEN).compute_signature(PUBLIC + "/sms/twilio", form)
        async with self.session.post(
            self.base + "/sms/twilio", data=form, headers={"X-Twilio-Signature": signature}
        ) as response:
            await response.read()
            return response.status


@pytest.fixture
async def served(postgres_database: str | None, tmp_path: Path) -> AsyncIterator[Served]:
    if postgres_database is None:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
    async with gateway(
        Settings.from_mapping({"database_url": postgres_database}), Clock(), upgrade=True
    ) as gw:
        await load_registry(gw, tmp_path)
    target = make_url(postgres_database)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    port = _free_port()
    log = tmp_path / "gateway.log"
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": target.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        ),
        "GATEWAY_DATABASE_TIMEOUT": "1",
        "GATEWAY_TWILIO_AUTH_TOKEN": TOKEN,
        "GATEWAY_PUBLIC_URL": PUBLIC,
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_RELAY_INTERVAL": "0.5",
        "GATEWAY_CONFIG": str(tmp_path / "none.toml"),
    }
    (tmp_path / "none.toml").write_text("")
    with log.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "--port", str(port), env=env, stderr=err
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(base + "/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            yield Served(base, log, proxy, session)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        await proxy.close()
        await empty_database(postgres_database)


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
