"""``gateway serve --workers 2``: two processes on one port sharing PostgreSQL, their
metrics combined, and a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import aiohttp
import pytest

from gateway.bootstrap import gateway
from gateway.settings import Settings
from tests.conftest import Clock, load_registry
from tests.e2e.conftest import post_sms, serve_env, start_serve


@pytest.mark.postgres
async def test_two_workers_share_the_port_the_database_and_the_metrics(
    loaded_postgres: str, tmp_path: Path
) -> None:
    env = serve_env(loaded_postgres, tmp_path, rate_limit_per_minute="100000")
    log = tmp_path / "serve.log"
    server = await start_serve(env, log, "--workers", "2")
    parent, base = server.process, server.base
    try:
        async with aiohttp.ClientSession() as session:

            async def sms(value: int) -> int:
                # A new connection each: the kernel spreads them over the workers.
                async with aiohttp.ClientSession() as own:
                    return await post_sms(own, base, "+79120000002", f"1234567891 {value}")

            statuses = await asyncio.gather(*(sms(4600 + i) for i in range(40)))
            assert statuses == [200] * 40
            async with session.get(base + "/metrics") as response:
                text = await response.text()
    finally:
        parent.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(parent.wait(), 60)

    assert code == 0
    # Either worker's /metrics counts both workers' messages.
    found = re.search(
        r'gateway_messages_total\{channel="sms",error="",status="accepted"\} ([0-9.]+)', text
    )
    assert found and float(found.group(1)) == 40
    started = [line for line in log.read_text().splitlines() if '"worker_started"' in line]
    assert len(started) == 2
    pids = {re.search(r'"pid": ?(\d+)', line).group(1) for line in started}  # type: ignore[union-attr]
    handled = [line for line in log.read_text().splitlines() if '"message_handled"' in line]
    assert len(handled) == 40
    assert len(pids) == 2


async def test_two_workers_on_one_sqlite_file_never_answer_database_is_locked(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    async with gateway(Settings.from_mapping({"database_url": url}), Clock(), upgrade=True) as gw:
        await load_registry(gw, tmp_path)
    env = serve_env(url, tmp_path, rate_limit_per_minute="100000")
    log = tmp_path / "serve.log"
    server = await start_serve(env, log, "--workers", "2")
    parent, base = server.process, server.base
    try:

        async def sms(index: int) -> int:
            async with aiohttp.ClientSession() as own:
                return await post_sms(own, base, f"+7912{index:07d}", "ПОМОЩЬ")

        # Both workers write at once, 32 requests in flight, 160 in all.
        statuses: list[int] = []
        for start in range(0, 160, 32):
            statuses += await asyncio.gather(*(sms(i) for i in range(start, start + 32)))
    finally:
        parent.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(parent.wait(), 60)

    assert statuses == [200] * 160
    assert code == 0
    assert "database is locked" not in log.read_text()
