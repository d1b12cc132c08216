"""Telegram updates through the webhook to the bot's reply, end to end.

    .venv/bin/python -m bench.telegram [--updates N] [--concurrency C] [--database-url URL]

A registry of N accounts (one single-rate meter each), each linked to a chat of its own,
is imported into a fresh database (SQLite in a temporary directory, or a scratch
PostgreSQL database on the server of ``--database-url``). The gateway's aiohttp app runs
on loopback with the bot's webhook; the bot talks to the fake Bot API of the tests
(``tests/fake_telegram.py``). Each chat sends one reading as an update POSTed to
``/telegram/webhook`` with the secret, C at a time; an update's latency runs from its
POST to the fake Bot API receiving the bot's ``sendMessage`` reply for that chat. The
load, the gateway and the fake share one process and one event loop, so the figures are
a floor for one process, not a ceiling. Prints a markdown row.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.lists import registry_files
from bench.webhook import scratch_database
from gateway import logging as gateway_logging
from gateway.bootstrap import gateway
from gateway.registry import import_file
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.fake_telegram import TOKEN, FakeBotApi, message_update, serve_fake_bot_api

SECRET = "bench-secret"


class TimedBotApi(FakeBotApi):
    """The fake Bot API, resolving a waiter when the bot answers a chat."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: dict[int, asyncio.Future[float]] = {}
        self._methods["sendmessage"] = self._timed_send

    async def _timed_send(self, params: dict[str, Any]) -> Any:
        message = await self._send_message(params)
        waiter = self.waiting.pop(int(params["chat_id"]), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(time.perf_counter())
        return message


async def _run(url: str, updates: int, concurrency: int, folder: Path) -> tuple[list[float], float]:
    """Each update's latency, and the seconds from the first POST to the last reply."""
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    async with serve_fake_bot_api(TimedBotApi()) as fake:
        assert isinstance(fake, TimedBotApi)
        settings = replace(
            Settings.from_mapping({"database_url": url}),
            telegram_token=TOKEN,
            telegram_api_base=fake.url,
            telegram_webhook_url="https://bench.example.org/telegram/webhook",
            telegram_webhook_secret=SECRET,
            rate_limit_per_minute=1000,
        )
        async with gateway(settings, lambda: now, upgrade=True) as gw:
            for kind, path in registry_files(folder, updates).items():
                assert not (await import_file(gw.db, kind, path)).errors
            links = [
                {"chat": str(10_000 + i), "account": f"7{i:09d}", "linked_at": now}
                for i in range(updates)
            ]
            await gw.db.run(lambda uow: uow.conn.execute(t.chat_links.insert(), links))
            runner = web.AppRunner(gw.web_app(), shutdown_timeout=0.1)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            gate = asyncio.Semaphore(concurrency)
            loop = asyncio.get_running_loop()

            async def one(session: aiohttp.ClientSession, i: int) -> float:
                chat = 10_000 + i
                async with gate:
                    done = loop.create_future()
                    fake.waiting[chat] = done
                    update = message_update(i + 1, chat, f"7{i:09d} {200 + i % 50}")
                    started = time.perf_counter()
                    async with session.post(
                        base + "/telegram/webhook",
                        json=update,
                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                    ) as response:
                        assert response.status == 200, response.status
                    finished: float = await asyncio.wait_for(done, 30)
                    return finished - started

            try:
                async with aiohttp.ClientSession() as session:
                    began = time.perf_counter()
                    latencies = await asyncio.gather(*(one(session, i) for i in range(updates)))
                    return list(latencies), time.perf_counter() - began
            finally:
                await runner.cleanup()


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--updates", type=int, default=2000)
    cli.add_argument("--concurrency", type=int, default=16)
    cli.add_argument("--database-url", help="a PostgreSQL server to make a scratch database on")
    args = cli.parse_args()
    # As `gateway serve` logs in production: JSON lines, here only warnings and errors.
    gateway_logging.configure("json", "warning")
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database(args.database_url, Path(tmp)) as (url, backend),
    ):
        latencies, total = asyncio.run(_run(url, args.updates, args.concurrency, Path(tmp)))
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print("| backend | updates | concurrency | updates/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| {backend} | {args.updates:,} | {args.concurrency} | {args.updates / total:,.0f} "
        f"| {statistics.median(latencies) * 1000:.1f} | {p99 * 1000:.1f} |"
    )


if __name__ == "__main__":
    main()
