"""Drain after a billing outage: how soon a backlog reaches billing once billing is back.

The scenario of the issue: N readings wait in the outbox (filled through the real intake,
as ``bench.relay`` does), billing is down, and R relay processes run on the shared outbox
exactly as ``gateway serve`` runs its relay (``run_forever``, a pass every ``--interval``
seconds, wall clock, default settings otherwise). After ``--outage`` seconds billing comes
back. Billing is "down" either as 503 answers (``503``: the server answers, the relay
gets an HTTP error at once) or as a closed port (``refused``: the connection is refused);
``--down`` picks one or both (the default runs both, one table row each).

The table shows, per run: seconds from billing coming back to its first and to its last
stored reading (the drain time), readings per second over the drain, the requests
billing got while it was down (503 only: a refused connection reaches no server), and
repeats — keys billing was sent again after it had stored them (answered 409; must be 0).

    python -m bench.drain [--readings 1500] [--outage 40] [--down 503,refused]
        [--relays 2] [--interval 2] [--label TEXT]
        [--database-url postgresql+asyncpg://USER@127.0.0.1:5432/DB]

``--outage 40`` is the issue's scenario; a shorter one (``--outage 10``) is a quick run
that still shows the shape. To measure other code (an older relay, say), run this file
from a copy of that code with ``--label before``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bench.common import code_version
from bench.relay import _fill
from bench.webhook import free_port, scratch_database
from gateway.bootstrap import gateway
from gateway.settings import Settings

HOST = "127.0.0.1"


def _billing_server(readings_port: int, control_port: int, down: str) -> None:
    """Billing on ``readings_port``: stores by Idempotency-Key (201, or 409 for a key it
    has); while down it answers 503 (``down == "503"``) or does not listen at all
    (``"refused"``). On ``control_port``: ``POST /up`` brings it back, ``GET /stats``."""
    stats: dict[str, float] = {
        "stored": 0,
        "repeats": 0,
        "down_requests": 0,
        "up_at": 0.0,
        "first_at": 0.0,
        "last_at": 0.0,
    }
    seen: set[str] = set()
    state = {"up": False}

    async def readings(request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        await request.read()
        if not state["up"]:
            stats["down_requests"] += 1
            return web.Response(status=503)
        if key in seen:
            stats["repeats"] += 1
            return web.Response(status=409)
        seen.add(key)
        stats["stored"] += 1
        now = time.time()
        stats["first_at"] = stats["first_at"] or now
        stats["last_at"] = now
        return web.Response(status=201)

    async def main() -> None:
        billing = web.Application()
        billing.router.add_post("/readings", readings)
        billing_runner = web.AppRunner(billing, access_log=None)
        await billing_runner.setup()

        async def up(_request: web.Request) -> web.Response:
            if not state["up"]:
                if down == "refused":
                    await web.TCPSite(billing_runner, HOST, readings_port).start()
                state["up"] = True
                stats["up_at"] = time.time()
            return web.json_response(stats)

        async def read_stats(_request: web.Request) -> web.Response:
            return web.json_response(stats)

        control = web.Application()
        control.router.add_post("/up", up)
        control.router.add_get("/stats", read_stats)
        control_runner = web.AppRunner(control, access_log=None)
        await control_runner.setup()
        await web.TCPSite(control_runner, HOST, control_port).start()
        if down == "503":
            await web.TCPSite(billing_runner, HOST, readings_port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


def _control(port: int, path: str, method: str = "GET") -> dict[str, float]:
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, float] = json.load(response)
        return result


def _wait_listening(port: int) -> None:
    for _ in range(100):
        try:
            _control(port, "/stats")
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the billing fake did not start")


async def _relay_forever(
    url: str,
    billing_url: str,
    interval: float,
    ready: multiprocessing.queues.Queue[int],
    start: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
) -> None:
    settings = Settings.from_mapping(
        {"database_url": url, "billing_url": billing_url, "log_level": "warning"}
    )
    async with gateway(settings) as gw, gw.relay() as relay:
        ready.put(1)
        await asyncio.to_thread(start.wait)
        stopping = asyncio.Event()
        task = asyncio.create_task(relay.run_forever(stopping, interval))
        await asyncio.to_thread(stop.wait)
        stopping.set()
        await task


def _relay_process(
    url: str,
    billing_url: str,
    interval: float,
    ready: multiprocessing.queues.Queue[int],
    start: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
) -> None:
    from gateway import logging as gateway_logging

    gateway_logging.configure("console", "warning")
    asyncio.run(_relay_forever(url, billing_url, interval, ready, start, stop))


@dataclass(frozen=True)
class Run:
    down: str
    delivered: int
    first: float  # seconds from billing back to its first stored reading
    drain: float  # ... to its last
    down_requests: int | None
    repeats: int


def _outage(
    url: str, down: str, readings: int, outage: float, relays: int, interval: float, timeout: float
) -> Run:
    readings_port, control_port = free_port(), free_port()
    context = multiprocessing.get_context("spawn")
    server = context.Process(
        target=_billing_server, args=(readings_port, control_port, down), daemon=True
    )
    server.start()
    ready: multiprocessing.queues.Queue[int] = context.Queue()
    start, stop = context.Event(), context.Event()
    billing_url = f"http://{HOST}:{readings_port}"
    processes = [
        context.Process(
            target=_relay_process, args=(url, billing_url, interval, ready, start, stop)
        )
        for _ in range(relays)
    ]
    try:
        _wait_listening(control_port)
        for process in processes:
            process.start()
        for _ in processes:
            ready.get(timeout=120)
        _progress(f"billing down ({down}) for {outage:g} s, {relays} relays running")
        start.set()
        time.sleep(outage)
        _control(control_port, "/up", "POST")
        _progress("billing is back; draining")
        deadline = time.monotonic() + timeout
        stats = _control(control_port, "/stats")
        while stats["stored"] < readings and time.monotonic() < deadline:
            time.sleep(0.2)
            stats = _control(control_port, "/stats")
            _progress(f"  {int(stats['stored']):,} of {readings:,}", end="\r")
        _progress("")
        time.sleep(3 * interval)  # a late repeat would show now
        stats = _control(control_port, "/stats")
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=30)
        server.terminate()
        server.join(timeout=5)
    if stats["stored"] < readings:
        _progress(f"not drained after {timeout:g} s: {int(stats['stored'])} of {readings}")
    return Run(
        down=down,
        delivered=int(stats["stored"]),
        first=stats["first_at"] - stats["up_at"] if stats["first_at"] else float("nan"),
        drain=stats["last_at"] - stats["up_at"] if stats["last_at"] else float("nan"),
        down_requests=int(stats["down_requests"]) if down == "503" else None,
        repeats=int(stats["repeats"]),
    )


def _progress(text: str, end: str = "\n") -> None:
    if sys.stderr.isatty() or end == "\n":
        print(text, end=end, file=sys.stderr, flush=True)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--readings", type=int, default=1_500)
    cli.add_argument("--outage", type=float, default=40.0, help="seconds billing is down")
    cli.add_argument("--down", default="503,refused", help="503, refused, or both")
    cli.add_argument("--relays", type=int, default=2, help="relay processes on one outbox")
    cli.add_argument("--interval", type=float, default=2.0, help="the relay's rest when idle")
    cli.add_argument("--timeout", type=float, default=900.0, help="give up draining after")
    cli.add_argument("--label", default="", help="names the code measured in the table")
    cli.add_argument("--database-url", help="a PostgreSQL server to make scratch databases on")
    args = cli.parse_args()
    from gateway import logging as gateway_logging

    gateway_logging.configure("console", "warning")
    runs: list[tuple[str, Run]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, down in enumerate(args.down.split(",")):
            folder = Path(tmp) / str(number)
            folder.mkdir()
            with scratch_database(args.database_url, folder) as (url, backend):
                _progress(f"filling the outbox with {args.readings:,} readings ({backend})")
                asyncio.run(_fill(folder, url, args.readings))
                run = _outage(
                    url,
                    down,
                    args.readings,
                    args.outage,
                    args.relays,
                    args.interval,
                    args.timeout,
                )
            runs.append((backend, run))
    label = args.label or code_version(Path(__file__).parents[1])
    print(
        f"code {label}; outage {args.outage:g} s, {args.relays} relays, pass every "
        f"{args.interval:g} s\n"
    )
    print(
        "| code | database | billing down as | readings | first after recovery (s) "
        "| drain (s) | readings/s over the drain | readings/s first→last "
        "| requests while down | repeats |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for backend, run in runs:
        while_down = "—" if run.down_requests is None else f"{run.down_requests:,}"
        print(
            f"| {args.label or 'this'} | {backend} | {run.down} | {run.delivered:,} | "
            f"{run.first:.1f} | {run.drain:.1f} | {_rate(run.delivered, run.drain)} | "
            f"{_rate(run.delivered, run.drain - run.first)} | {while_down} | {run.repeats} |"
        )


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "—"


if __name__ == "__main__":
    main()
