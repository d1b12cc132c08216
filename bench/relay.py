"""Relay throughput: readings forwarded per second from the outbox to billing.

Fills the outbox of a fresh database with N accepted readings through the real intake,
then times the relay delivering all of them: to a loopback billing fake running in
another process (``POST /readings``, 201, or 409 for a key it has), and to the embedded
billing. With ``--relays R`` (R > 1) it also runs R relays at once, each in its own
process, on the same outbox — the scale-out case the leases are for — and reports how
many keys billing saw more than once (it must be 0).

    python -m bench.relay [--readings N] [--concurrency C] [--relays R]
        [--database-url postgresql+asyncpg://USER@127.0.0.1:5432/DB]

Without ``--database-url`` the database is SQLite in a temporary directory; with it, a
scratch PostgreSQL database per row, created on that server and dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bench.common import code_version
from bench.webhook import free_port, scratch_database
from gateway.bootstrap import gateway
from gateway.domain.model import InboundMessage
from gateway.registry import import_file
from gateway.settings import Settings


def _billing_server(port: int) -> None:
    """A minimal billing: stores by Idempotency-Key, 201 or 409; ``GET /stats`` counts."""
    seen: set[str] = set()
    stats = {"stored": 0, "repeats": 0}

    async def readings(request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        await request.read()
        if key in seen:
            stats["repeats"] += 1
            return web.Response(status=409)
        seen.add(key)
        stats["stored"] += 1
        return web.Response(status=201)

    async def read_stats(_request: web.Request) -> web.Response:
        return web.json_response(stats)

    app = web.Application()
    app.router.add_post("/readings", readings)
    app.router.add_get("/stats", read_stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _stats(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as response:
        result: dict[str, int] = json.load(response)
        return result


def _wait_listening(port: int) -> None:
    for _ in range(100):
        try:
            _stats(port)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the billing fake did not start")


async def _fill(folder: Path, url: str, count: int) -> None:
    (folder / "a.csv").write_text(
        "account,debt\n" + "".join(f"{7000000000 + i},0\n" for i in range(count))
    )
    (folder / "m.csv").write_text(
        "account,meter,service,zone,digits,verified_until,last_value,last_date\n"
        + "".join(
            f"{7000000000 + i},M{i},electricity,single,6.1,2035-01-01,1000,2026-01-01\n"
            for i in range(count)
        )
    )
    settings = Settings.from_mapping({"database_url": url, "log_level": "warning"})
    now = datetime(2026, 11, 20, 9, tzinfo=UTC)
    async with gateway(settings, lambda: now, upgrade=True) as gw:
        await import_file(gw.db, "accounts", folder / "a.csv")
        await import_file(gw.db, "meters", folder / "m.csv")
        for i in range(count):
            message = InboundMessage("sms", "", f"{7000000000 + i} 1100", now)
            await gw.intake(message)


async def _relay_once(url: str, billing_url: str, concurrency: int) -> int:
    settings = Settings.from_mapping(
        {
            "database_url": url,
            "billing_url": billing_url,
            "relay_concurrency": concurrency,
            "log_level": "warning",
        }
    )
    async with gateway(settings) as gw, gw.relay() as relay:
        report = await relay.run_once()
        return report.delivered


def _relay_process(
    url: str,
    billing_url: str,
    concurrency: int,
    start: multiprocessing.synchronize.Event,
    results: multiprocessing.queues.Queue[int],
) -> None:
    start.wait()
    results.put(asyncio.run(_relay_once(url, billing_url, concurrency)))


def _run_relays(url: str, billing_url: str, concurrency: int, relays: int) -> tuple[int, float]:
    """R relay processes started together; (readings delivered, seconds until all end)."""
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results: multiprocessing.queues.Queue[int] = context.Queue()
    processes = [
        context.Process(target=_relay_process, args=(url, billing_url, concurrency, start, results))
        for _ in range(relays)
    ]
    for process in processes:
        process.start()
    time.sleep(2.0)  # let every process import the gateway before the clock starts
    started = time.perf_counter()
    start.set()
    delivered = sum(results.get(timeout=600) for _ in processes)
    seconds = time.perf_counter() - started
    for process in processes:
        process.join(timeout=30)
    return delivered, seconds


@dataclass(frozen=True)
class Row:
    backend: str
    billing: str
    relays: int
    delivered: int
    seconds: float
    repeats: int | None  # keys billing saw again (HTTP billing only)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--readings", type=int, default=5_000)
    cli.add_argument("--concurrency", type=int, default=8)
    cli.add_argument("--relays", type=int, default=2, help="relay processes at once (R > 1)")
    cli.add_argument("--database-url", help="a PostgreSQL server to make scratch databases on")
    args = cli.parse_args()
    from gateway import logging as gateway_logging

    gateway_logging.configure("console", "warning")
    runs = [("HTTP", 1), ("embedded", 1)]
    if args.relays > 1:
        runs.append(("HTTP", args.relays))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, (billing, relays) in enumerate(runs):
            folder = Path(tmp) / str(number)
            folder.mkdir()
            port = free_port()
            server = multiprocessing.Process(target=_billing_server, args=(port,), daemon=True)
            server.start()
            try:
                _wait_listening(port)
                with scratch_database(args.database_url, folder) as (url, backend):
                    asyncio.run(_fill(folder, url, args.readings))
                    billing_url = f"http://127.0.0.1:{port}" if billing == "HTTP" else ""
                    delivered, seconds = _run_relays(url, billing_url, args.concurrency, relays)
                repeats = _stats(port)["repeats"] if billing == "HTTP" else None
            finally:
                server.terminate()
                server.join(timeout=5)
            rows.append(Row(backend, billing, relays, delivered, seconds, repeats))
    print(f"code {code_version(Path(__file__).parents[1])}\n")
    print(
        "| database | billing | relays | readings | concurrency | readings/s | seconds | repeats |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        seen = "—" if row.repeats is None else f"{row.repeats}"
        print(
            f"| {row.backend} | {row.billing} | {row.relays} | {row.delivered:,} | "
            f"{args.concurrency} | {row.delivered / row.seconds:,.0f} | {row.seconds:.1f} | "
            f"{seen} |"
        )


if __name__ == "__main__":
    main()
