"""SMS over SMPP, end to end: ``deliver_sm`` in through the loopback SMSC simulator
(tests/fake_smsc.py, real SMPP 3.4 over TCP) → stored and decided by the intake → the
reply queued and sent back as ``submit_sm``, per second, with latency percentiles.

    .venv/bin/python -m bench.smpp [--messages N] [--concurrency C] [--database-url URL]

The registry of ``bench.webhook`` (one account per phone, rising values, so every message
is accepted and stored with its outbox rows) is imported into a fresh database. C
deliveries are in flight at once; a message's latency runs from its ``deliver_sm`` to the
last segment of its reply at the SMSC. The link is one transceiver with a window of 32 and
no submit rate limit (the simulator takes everything).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bench.webhook import account_number, percentile, phone, scratch_database, write_registry
from gateway.bootstrap import gateway
from gateway.registry import import_file
from gateway.settings import Settings
from tests.fake_smsc import FakeSmsc


async def _run(url: str, messages: int, concurrency: int, folder: Path) -> dict[str, float]:
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    async with FakeSmsc(system_id="bench", password="secret", resp_timeout=60) as smsc:
        settings = replace(
            Settings.from_mapping({"database_url": url}),
            smpp_host=smsc.host,
            smpp_port=smsc.port,
            smpp_system_id="bench",
            smpp_password="secret",
            smpp_source_addr="4444",
            smpp_window=32,
            smpp_submits_per_second=100_000.0,
            rate_limit_per_minute=1_000_000,
        )
        async with gateway(settings, lambda: now, upgrade=True) as gw:
            for kind, path in write_registry(folder, messages).items():
                report = await import_file(gw.db, kind, path)
                assert not report.errors, report.errors[:3]
            runner = web.AppRunner(gw.web_app())  # the app's startup starts the SMPP link
            await runner.setup()
            try:
                await smsc.wait_bound()
                sent_at: dict[str, float] = {}
                gate = asyncio.Semaphore(concurrency)

                async def one(i: int) -> None:
                    async with gate:
                        source = phone(i).lstrip("+")
                        sent_at[source] = time.perf_counter()
                        status = await smsc.deliver_text(source, f"{account_number(i)} {200 + i}")
                        assert status == 0, status

                started = time.perf_counter()
                await asyncio.gather(*(one(i) for i in range(messages)))
                replies = await smsc.wait_submitted(messages, timeout=600)
                # Each reply's last segment, by recipient.
                done: dict[str, float] = {}
                while len(done) < messages:
                    for short in smsc.submitted:
                        done[short.destination] = short.at.timestamp()
                    if len(done) < messages:
                        await asyncio.sleep(0.05)
                finished = time.perf_counter()
                assert len(replies) >= messages
            finally:
                await runner.cleanup()
    wall = finished - started
    # ShortMessage.at is wall-clock time: turn the perf_counter stamps into it.
    offset = time.time() - time.perf_counter()
    latencies = sorted((done[source] - (sent_at[source] + offset)) * 1000 for source in sent_at)
    return {
        "per_second": messages / wall,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
    }


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--messages", type=int, default=2_000)
    cli.add_argument("--concurrency", type=int, default=16)
    cli.add_argument("--database-url", help="a PostgreSQL server to make a scratch database on")
    args = cli.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database(args.database_url, Path(tmp)) as (url, backend),
    ):
        result = asyncio.run(_run(url, args.messages, args.concurrency, Path(tmp)))
    print("| backend | messages | in flight | messages/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| {backend} | {args.messages:,} | {args.concurrency} | {result['per_second']:,.0f} "
        f"| {result['p50']:.1f} | {result['p99']:.1f} |"
    )


if __name__ == "__main__":
    main()
