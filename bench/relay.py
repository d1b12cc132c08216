"""Relay throughput: readings forwarded per second from the outbox to billing.

Fills the outbox of a fresh SQLite database with N accepted readings through the real
intake, then times ``OutboxRelay.run_once`` delivering them to a loopback billing fake
running in another process, and to the embedded billing.

    python -m bench.relay [--readings N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bench.common import code_version
from gateway.bootstrap import gateway
from gateway.domain.model import InboundMessage
from gateway.registry import import_file
from gateway.settings import Settings


def _billing_server(port: int) -> None:
    """A minimal billing: stores by Idempotency-Key, 201 or 409."""
    seen: set[str] = set()

    async def readings(request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        await request.read()
        if key in seen:
            return web.Response(status=409)
        seen.add(key)
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/readings", readings)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    async with gateway(settings, lambda: now) as gw:
        await import_file(gw.db, "accounts", folder / "a.csv")
        await import_file(gw.db, "meters", folder / "m.csv")
        for i in range(count):
            message = InboundMessage("sms", "", f"{7000000000 + i} 1100", now)
            await gw.intake(message)


async def _relay(url: str, billing_url: str, concurrency: int) -> tuple[int, float]:
    settings = Settings.from_mapping(
        {
            "database_url": url,
            "billing_url": billing_url,
            "relay_concurrency": concurrency,
            "log_level": "warning",
        }
    )
    async with gateway(settings) as gw, gw.relay() as relay:
        started = time.perf_counter()
        report = await relay.run_once()
        return report.delivered, time.perf_counter() - started


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--readings", type=int, default=5_000)
    cli.add_argument("--concurrency", type=int, default=8)
    args = cli.parse_args()
    from gateway import logging as gateway_logging

    gateway_logging.configure("console", "warning")
    port = _free_port()
    server = multiprocessing.Process(target=_billing_server, args=(port,), daemon=True)
    server.start()
    rows: list[tuple[str, int, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for target, billing_url in (
                ("HTTP billing (loopback, another process)", f"http://127.0.0.1:{port}"),
                ("embedded billing (same SQLite)", ""),
            ):
                url = f"sqlite+aiosqlite:///{folder}/{len(rows)}.db"
                asyncio.run(_fill(folder, url, args.readings))
                time.sleep(0.5)  # the billing process is listening by now
                delivered, seconds = asyncio.run(_relay(url, billing_url, args.concurrency))
                rows.append((target, delivered, seconds))
    finally:
        server.terminate()
        server.join(timeout=5)
    print(f"code {code_version(Path(__file__).parents[1])}\n")
    print("| billing | readings | concurrency | readings/s | seconds |")
    print("|---|---:|---:|---:|---:|")
    for target, delivered, seconds in rows:
        print(
            f"| {target} | {delivered:,} | {args.concurrency} | "
            f"{delivered / seconds:,.0f} | {seconds:.1f} |"
        )


if __name__ == "__main__":
    main()
