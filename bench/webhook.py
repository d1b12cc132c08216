"""Load benchmark of the Twilio SMS webhook ``POST /sms/twilio`` on loopback.

    .venv/bin/python -m bench.webhook [--requests N] [--concurrency C] [--accounts A]
        [--time-limit S] [--database-url URL] [--log-level LEVEL] [--instructions]
        [--profile-server FILE]

1. A temporary directory gets a bench registry (A accounts, each with one day/night
   electricity meter) which ``gateway import`` loads into a fresh database: SQLite in
   the temporary directory by default, or -- with ``--database-url
   postgresql+asyncpg://USER@127.0.0.1:5432/DB`` -- a scratch database the bench creates
   on that server (``DB`` is only used to connect for CREATE/DROP DATABASE) and drops.
2. ``python -m gateway serve`` runs as a subprocess on a free 127.0.0.1 port; the bench
   waits for ``GET /healthz``.
3. A separate load process (multiprocessing, spawn) signs every request the way Twilio
   does, sends a short untimed warm-up, then N requests with C in flight at a time over
   keep-alive connections, bounded by ``--time-limit``. Every account sends from its own
   phone (below the per-sender rate limit) with values above the previous ones, so every
   message should be accepted; each response must be 200 with a TwiML ``<Response>``.
4. The server is stopped with SIGTERM (SIGKILL if it does not exit), the scratch
   PostgreSQL database dropped and the temporary directory removed, also on errors.

``--instructions`` runs the server under valgrind's callgrind with counting switched on
only for the timed requests (after the warm-up, before the shutdown), and prints the
instructions the server executed per request, all its threads, by library: a count that
is the same from run to run (within about 1 %) on a shared, noisy machine, where requests
per second swing by ±20 %. Speed changes are judged by it; throughput figures under
valgrind are meaningless (about 40 requests/s). Needs Debian's ``valgrind``.

``--profile-server FILE`` runs the server under cProfile in every thread (``bench.profiled``:
the SQLite writer thread's work too, which ``python -m cProfile`` never sees), keeps the
profiles added up in FILE, and prints each thread's CPU seconds and the top functions
(the throughput figures are then cProfile's, not production's).
``--py-spy FILE`` samples the running server with py-spy (if installed: ``.venv/bin/pip
install py-spy``), keeps the collapsed stacks in FILE and prints a per-thread summary.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import multiprocessing
import multiprocessing.process
import multiprocessing.queues
import multiprocessing.synchronize
import os
import pstats
import queue
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from sqlalchemy.engine import URL, make_url
from twilio.request_validator import RequestValidator

from bench.common import code_version

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SMS_PATH = "/sms/twilio"
TARGET_RPS = 500
TARGET_P99_MS = 50.0
RATE_LIMIT_PER_MINUTE = 10  # the gateway's default; the plan stays below it per sender

ACCOUNT_SID = "AC" + "b0" * 16
TO_NUMBER = "+15005550006"
BASELINE = 1000  # last_value of every register in the bench registry

SERVER_START_TIMEOUT = 30.0
SERVER_STOP_TIMEOUT = 20.0
IMPORT_TIMEOUT = 300.0
WARMUP_TIME_LIMIT = 30.0
PY_SPY_RATE = 200


# ----- the bench registry -------------------------------------------------------------------


def account_number(i: int) -> str:
    return f"{5_000_000_000 + i:010d}"


def phone(i: int) -> str:
    return f"+7999{i:07d}"


def write_registry(directory: Path, accounts: int) -> dict[str, Path]:
    """accounts.csv, meters.csv and tariffs.csv in the columns ``gateway import`` reads."""
    files = {kind: directory / f"{kind}.csv" for kind in ("accounts", "meters", "tariffs")}
    with files["accounts"].open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["account", "address", "building", "phone", "debt", "receipt_code", "last_bill_total"]
        )
        for i in range(accounts):
            out.writerow(
                [
                    account_number(i),
                    f"г. Бенчмарк, ул. Нагрузочная, {i // 100 + 1}, кв. {i % 100 + 1}",
                    f"bench-{i // 100}",
                    phone(i),
                    "150.25" if i % 7 == 0 else "0",
                    f"R{i:07d}",
                    "812.15",
                ]
            )
    with files["meters"].open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "account",
                "meter",
                "service",
                "zone",
                "digits",
                "verified_until",
                "last_value",
                "last_date",
            ]
        )
        for i in range(accounts):
            for zone in ("day", "night"):
                out.writerow(
                    [
                        account_number(i),
                        f"M{i:07d}",
                        "electricity",
                        zone,
                        "6.1",
                        "2035-12-31",
                        str(BASELINE),
                        "2026-01-01",
                    ]
                )
    with files["tariffs"].open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["service", "zone", "price", "valid_from"])
        out.writerow(["electricity", "day", "6.12", "2026-01-01"])
        out.writerow(["electricity", "night", "3.05", "2026-01-01"])
    return files


# ----- the load process ---------------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    url: str  # where the load process connects
    signed_url: str  # what Twilio signs: the gateway's public URL + the path
    token: str
    accounts: int
    requests: int
    warmup: int
    concurrency: int
    time_limit: float
    request_timeout: float


@dataclass
class LoadStats:
    sent: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, every HTTP response
    statuses: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    errors: int = 0
    other_replies: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0
    cut_by_time_limit: bool = False


# The load process's warm-up is done (it sets the first), and the timed run may start (it
# waits for the second): the bench switches callgrind's counting on in between.
Between = tuple[multiprocessing.synchronize.Event, multiprocessing.synchronize.Event]


@dataclass(frozen=True)
class SignedRequest:
    body: bytes
    signature: str


def build_requests(plan: LoadPlan) -> list[SignedRequest]:
    """Twilio-like form posts; request k goes to account k mod A with values that grow
    by round, so a later message for an account is never below an earlier one."""
    validator = RequestValidator(plan.token)
    out = []
    for k in range(plan.warmup + plan.requests):
        i, round_ = k % plan.accounts, k // plan.accounts + 1
        sid = "SM" + uuid.uuid4().hex
        day, night = BASELINE + 7 * round_ + i % 5, BASELINE + 3 * round_
        params = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": phone(i),
            "To": TO_NUMBER,
            "Body": f"{account_number(i)} {day} {night}",
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        signature = validator.compute_signature(plan.signed_url, params)
        out.append(SignedRequest(urlencode(params).encode("ascii"), signature))
    return out


async def _drive(
    session: aiohttp.ClientSession,
    plan: LoadPlan,
    requests: Sequence[SignedRequest],
    stats: LoadStats,
    deadline: float,
) -> None:
    pending = iter(requests)

    async def worker() -> None:
        for request in pending:  # shared: each request is taken by exactly one worker
            if time.perf_counter() > deadline:
                stats.cut_by_time_limit = True
                return
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": request.signature,
                "User-Agent": "TwilioProxy/1.1",
            }
            stats.sent += 1
            start = time.perf_counter()
            try:
                async with session.post(plan.url, data=request.body, headers=headers) as resp:
                    text = await resp.text()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                stats.errors += 1
                stats.statuses[type(exc).__name__] += 1
                continue
            stats.latencies.append(time.perf_counter() - start)
            stats.statuses[str(status)] += 1
            if status != 200 or "<Response>" not in text:
                stats.errors += 1
                stats.other_replies[f"{status} {text[:100]}"] += 1
                continue
            if "Принято" in text or "Исправлено" in text:  # a correction is accepted too
                stats.accepted += 1
            else:
                stats.other_replies[text[:160]] += 1

    await asyncio.gather(*(worker() for _ in range(plan.concurrency)))


async def run_load(plan: LoadPlan, between: Between | None = None) -> dict[str, Any]:
    """``between``: told when the warm-up is done, and waited for before the timed run."""
    requests = build_requests(plan)
    timeout = aiohttp.ClientTimeout(total=plan.request_timeout)
    connector = aiohttp.TCPConnector(limit=plan.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        warm = LoadStats()
        await _drive(
            session, plan, requests[: plan.warmup], warm, time.perf_counter() + WARMUP_TIME_LIMIT
        )
        if between is not None:
            warmed, go = between
            warmed.set()
            await asyncio.to_thread(go.wait, WARMUP_TIME_LIMIT)
        stats = LoadStats()
        start = time.perf_counter()
        await _drive(session, plan, requests[plan.warmup :], stats, start + plan.time_limit)
        stats.wall = time.perf_counter() - start
    return {
        "warmup_sent": warm.sent,
        "warmup_errors": warm.errors,
        "warmup_accepted": warm.accepted,
        "sent": stats.sent,
        "latencies": stats.latencies,
        "statuses": dict(stats.statuses),
        "accepted": stats.accepted,
        "errors": stats.errors,
        "other_replies": stats.other_replies.most_common(5),
        "wall": stats.wall,
        "cut_by_time_limit": stats.cut_by_time_limit,
    }


def load_process(
    plan: LoadPlan,
    results: multiprocessing.queues.Queue[dict[str, Any]],
    between: Between | None = None,
) -> None:
    """Entry point of the separate load process: one result dict on ``results``."""
    try:
        results.put(asyncio.run(run_load(plan, between)))
    except BaseException as exc:
        results.put({"fatal": f"{type(exc).__name__}: {exc}"})
        raise


# ----- the server and the database ----------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def gateway_env(
    database_url: str, token: str, public_url: str, log_level: str = "warning"
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_DATABASE_URL=database_url,
        GATEWAY_TWILIO_AUTH_TOKEN=token,
        GATEWAY_PUBLIC_URL=public_url,
        GATEWAY_LOG_LEVEL=log_level,
        GATEWAY_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    return env


def import_registry(files: dict[str, Path], env: dict[str, str]) -> str:
    """``gateway db upgrade`` then ``gateway import``, as a supplier would."""
    _gateway(["db", "upgrade"], env)
    command = ["import"]
    for kind, path in files.items():
        command += [f"--{kind}", str(path)]
    return _gateway(command, env)


def _gateway(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"gateway {args[0]} exited {done.returncode}:\n{done.stdout}\n{done.stderr[-3000:]}"
        )
    return done.stdout.strip()


def wait_healthy(
    server: subprocess.Popen[bytes], port: int, log: Path, timeout: float = SERVER_START_TIMEOUT
) -> float:
    start = time.monotonic()
    url = f"http://{HOST}:{port}/healthz"
    while time.monotonic() - start < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"server exited {server.returncode}:\n{_tail(log)}")
        with suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                return time.monotonic() - start
        time.sleep(0.1)
    raise RuntimeError(f"no 200 from {url} within {timeout:.0f} s:\n{_tail(log)}")


def stop_server(server: subprocess.Popen[bytes]) -> int | None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
    return server.returncode


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _plain_pg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_admin(url: URL, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # only needed for PostgreSQL runs

    conn = await asyncpg.connect(_plain_pg_dsn(url), timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def scratch_database(database_url: str | None, directory: Path) -> Iterator[tuple[str, str]]:
    """(gateway database URL, backend label); a PostgreSQL scratch database is dropped after."""
    if database_url is None:
        yield f"sqlite+aiosqlite:///{directory / 'bench.db'}", "SQLite (writer thread)"
        return
    admin = make_url(database_url)
    if admin.get_backend_name() != "postgresql":
        raise SystemExit("--database-url: only postgresql+asyncpg:// URLs are supported")
    if admin.host not in (HOST, "localhost"):
        raise SystemExit(f"--database-url: the bench only uses {HOST}")
    name = f"bench_webhook_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        url = admin.set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False), "PostgreSQL (asyncpg)"
    finally:
        asyncio.run(_pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def sqlite_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path, timeout=10) as db:
        return {
            "messages accepted": db.execute(
                "SELECT count(*) FROM messages WHERE status = 'accepted'"
            ).fetchone()[0],
            "messages total": db.execute("SELECT count(*) FROM messages").fetchone()[0],
            "readings": db.execute("SELECT count(*) FROM readings").fetchone()[0],
            "outbox rows": db.execute("SELECT count(*) FROM outbox").fetchone()[0],
        }


# ----- the report ---------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, all its threads (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    exe = shutil.which("py-spy", path=search)
    if exe is None:
        raise RuntimeError("--py-spy: py-spy not found (.venv/bin/pip install py-spy)")
    command = [exe, "record", "--pid", str(pid), "--format", "raw", "--threads"]
    return subprocess.Popen(
        [*command, "--rate", str(PY_SPY_RATE), "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_py_spy(spy: subprocess.Popen[bytes]) -> None:
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)


def callgrind_command(out: Path) -> list[str]:
    """valgrind's callgrind, counting nothing until :func:`callgrind_counting` says so."""
    exe = shutil.which("valgrind")
    if exe is None:
        raise RuntimeError("--instructions: valgrind not found (apt-get install -y valgrind)")
    # One output file per thread: OUT-01 (the event loop's), OUT-02, ...
    return [
        exe,
        "--tool=callgrind",
        "--instr-atstart=no",
        "--separate-threads=yes",
        f"--callgrind-out-file={out}",
    ]


def callgrind_counting(pid: int, on: bool) -> None:
    exe = shutil.which("callgrind_control")
    if exe is None:
        raise RuntimeError("--instructions: callgrind_control not found (Debian's valgrind)")
    subprocess.run(
        [exe, "-i", "on" if on else "off", str(pid)], check=True, capture_output=True, timeout=60
    )


# What the instructions are counted by: a part of the object's file name, and its label.
_LIBRARIES = (
    ("libpython", "the Python interpreter"),
    ("libsqlite3", "SQLite"),
    ("_sqlite3", "the sqlite3 module"),
    ("_json", "the json module"),
    ("_decimal", "the decimal module"),
    ("loop.cpython", "uvloop"),
    ("libc.so", "the C library"),
)


def callgrind_by_object(out: Path) -> Counter[str]:
    """The instructions counted in callgrind's output file, by the object file (the
    executable or shared library) that ran them: each function's own cost, not what it
    called (a ``calls=`` line's cost is the callee's, counted where the callee is)."""
    names: dict[str, str] = {}
    counts: Counter[str] = Counter()
    current = ""
    skip_next = False
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith(("ob=", "cob=")):  # an object, named in full where first given
            given = line.partition("=")[2]
            key, _, name = given.partition(" ") if given.startswith("(") else ("", "", given)
            if key and name:
                names[key] = name
            if line.startswith("ob="):
                current = names.get(key, name) if key else name
        elif line.startswith("calls="):
            skip_next = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if skip_next:
                skip_next = False
                continue
            fields = line.split()
            if len(fields) >= 2 and fields[-1].isdigit():
                counts[current] += int(fields[-1])
    return counts


def print_instructions(out: Path, requests: int) -> None:
    """Instructions per request from callgrind's output files (one per thread, as
    :func:`callgrind_command` asks): in all, by thread and by library."""
    by_thread: dict[str, int] = {}
    by_library: Counter[str] = Counter()
    for path in sorted(out.parent.glob(out.name + "-*")):
        counts = callgrind_by_object(path)
        by_thread[path.name.rpartition("-")[2]] = sum(counts.values())
        for name, count in counts.items():
            label = next((label for part, label in _LIBRARIES if part in name), "everything else")
            by_library[label] += count
    total = sum(by_library.values())
    each = max(requests, 1)
    print(f"\n### instructions per request (callgrind, {requests:,} requests)\n")
    print("| where | instructions per request | share |")
    print("|---|---:|---:|")
    print(f"| **all of the server's threads** | **{total / each:,.0f}** | 100 % |")
    for thread, count in by_thread.items():
        if count:
            name = "the event loop's thread" if thread == "01" else f"thread {int(thread)}"
            print(f"| {name} | {count / each:,.0f} | {count / max(total, 1):.1%} |")
    for label, instructions in by_library.most_common():
        share = instructions / max(total, 1)
        print(f"| {label} | {instructions / each:,.0f} | {share:.1%} |")


# Frames under every request (the event loop, the CLI): left out of the "total" list.
_SCAFFOLDING = (
    "(<frozen runpy>)",
    "(gateway/__main__.py)",
    "(gateway/cli.py)",
    "(aiohttp/web.py)",
    "(asyncio/base_events.py)",
    "(asyncio/events.py)",
)


def _function(frame: str) -> str:
    """``handle (channels/sms_twilio.py:76)`` -> ``handle (channels/sms_twilio.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})" if where else name


def print_py_spy(path: Path, seconds: float, rate: int, top: int = 25) -> None:
    """Summarise py-spy's collapsed stacks (active samples only): how busy each thread
    was, then the functions taking most of the event-loop thread, by self and total."""
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].partition("): ")[2] or frames[0]
        threads[thread] += count
        if thread != "MainThread":
            continue
        leaf = _function(frames[-1]) if len(frames) > 1 else "(no Python frame: native/GIL wait)"
        self_time[leaf] += count
        for function in {_function(f) for f in frames[1:]}:
            if not function.endswith(_SCAFFOLDING):
                total_time[function] += count
    expected = seconds * rate
    print(f"\n### py-spy: active samples per thread ({rate}/s over {seconds:.1f} s)\n")
    for thread, count in threads.most_common():
        print(f"- {thread}: {count} samples, active {count / expected:.0%} of the time")
    main_samples = max(threads["MainThread"], 1)
    for title, counter in (("self", self_time), ("total", total_time)):
        print(f"\n### py-spy: event-loop thread, top {top} functions by {title} time\n")
        print("```")
        for function, count in counter.most_common(top):
            print(f"{count / main_samples:6.1%}  {function}")
        print("```")


def print_profile(path: Path, top: int = 25) -> None:
    threads = path.with_name(path.name + ".threads")
    if threads.exists():
        print("\n### server profile: CPU seconds by thread\n")
        for line in threads.read_text().splitlines():
            name, _, seconds = line.partition("\t")
            print(f"- {name}: {seconds} s")
    for key in ("tottime", "cumulative"):
        out = StringIO()
        stats = pstats.Stats(str(path), stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(top)
        print(f"\n### server profile, top {top} by {key}\n")
        print("```")
        text = out.getvalue()
        print(text[text.find("   ncalls") :].rstrip())
        print("```")


def report(backend: str, plan: LoadPlan, result: dict[str, Any]) -> bool:
    latencies = sorted(result["latencies"])
    completed = result["sent"]
    rps = completed / result["wall"] if result["wall"] else 0.0
    p50, p90, p99 = (percentile(latencies, q) * 1e3 for q in (50, 90, 99))
    worst = latencies[-1] * 1e3 if latencies else float("nan")
    print()
    print(
        "| backend | requests | concurrency | req/s | p50 ms | p90 ms | p99 ms | max ms | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {backend} | {completed:,} | {plan.concurrency} | {rps:,.0f} | {p50:.1f} | "
        f"{p90:.1f} | {p99:.1f} | {worst:.1f} | {result['errors']} |"
    )
    print()
    print(
        f"accepted replies: {result['accepted']:,} of {completed:,}; HTTP statuses: "
        f"{result['statuses']}; warm-up: {result['warmup_sent']} requests, "
        f"{result['warmup_accepted']} accepted, {result['warmup_errors']} errors"
    )
    if result["cut_by_time_limit"]:
        print(f"(stopped by the {plan.time_limit:.0f} s time limit before {plan.requests:,})")
    for text, count in result["other_replies"]:
        print(f"  not accepted x{count}: {text!r}")
    met = (
        rps >= TARGET_RPS
        and p99 < TARGET_P99_MS
        and result["errors"] == 0
        and result["accepted"] == completed == plan.requests
    )
    print(
        f"target (>= {TARGET_RPS} req/s, p99 < {TARGET_P99_MS:.0f} ms, no errors, all "
        f"accepted): {'met' if met else 'MISSED'}"
    )
    return met


# ----- main ---------------------------------------------------------------------------------


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _wait_for_result(
    loader: multiprocessing.process.BaseProcess,
    results: multiprocessing.queues.Queue[dict[str, Any]],
    budget: float,
) -> dict[str, Any]:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        try:
            return results.get(timeout=1)
        except queue.Empty:
            if not loader.is_alive():
                with suppress(queue.Empty):
                    return results.get(timeout=1)
                raise RuntimeError(f"the load process died (exit {loader.exitcode})") from None
    raise RuntimeError(f"the load process gave no result within {budget:.0f} s")


def _run(
    args: argparse.Namespace, tmp: Path, database_url: str, backend: str, token: str, port: int
) -> bool:
    """Import, serve, load, report; the server and the load process never outlive it."""
    public_url = f"http://{HOST}:{port}"
    env = gateway_env(database_url, token, public_url, args.log_level)
    print(f"code {code_version(ROOT)}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    files = write_registry(tmp, args.accounts)
    start = time.monotonic()
    summary = import_registry(files, env)
    print(f"registry: {args.accounts:,} accounts imported in {time.monotonic() - start:.1f} s")
    print("  " + summary.replace("\n", "\n  "))

    log = tmp / "server.log"
    counted = tmp / "callgrind.out"
    command = callgrind_command(counted) if args.instructions else []
    command += [sys.executable]
    if args.profile_server:  # every thread's, not only the main one's (cProfile's own)
        command += ["-m", "bench.profiled", str(args.profile_server.resolve())]
    command += ["-m", "gateway", "serve", "--host", HOST, "--port", str(port)]
    server: subprocess.Popen[bytes] | None = None
    loader: multiprocessing.process.BaseProcess | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        with log.open("wb") as log_fh:
            server = subprocess.Popen(
                command,
                env=env,
                cwd=ROOT,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches the bench, which stops it
            )
        started = wait_healthy(server, port, log, 300.0 if args.instructions else 30.0)
        print(f"server: pid {server.pid}, healthy after {started:.1f} s")
        if args.py_spy:
            spy = start_py_spy(server.pid, args.py_spy.resolve())
            time.sleep(1)  # let py-spy attach before the load starts

        plan = LoadPlan(
            url=f"http://{HOST}:{port}{SMS_PATH}",
            signed_url=public_url + SMS_PATH,
            token=token,
            accounts=args.accounts,
            requests=args.requests,
            warmup=args.warmup,
            concurrency=args.concurrency,
            time_limit=args.time_limit,
            request_timeout=args.request_timeout,
        )
        context = multiprocessing.get_context("spawn")
        results: multiprocessing.queues.Queue[dict[str, Any]] = context.Queue()
        between = (context.Event(), context.Event()) if args.instructions else None
        loader = context.Process(
            target=load_process, args=(plan, results, between), name="bench-load"
        )
        cpu_before, load_start = cpu_seconds(server.pid), time.monotonic()
        loader.start()
        if between is not None:
            warmed, go = between
            if not warmed.wait(WARMUP_TIME_LIMIT + 60):
                raise RuntimeError("the load process did not finish its warm-up")
            callgrind_counting(server.pid, on=True)
            go.set()
        budget = WARMUP_TIME_LIMIT + args.time_limit + 2 * args.request_timeout + 60
        result = _wait_for_result(loader, results, budget)
        if between is not None:
            callgrind_counting(server.pid, on=False)
        load_wall = time.monotonic() - load_start
        cpu_after = cpu_seconds(server.pid)
        loader.join(10)
        if "fatal" in result:
            raise RuntimeError(f"load process failed: {result['fatal']}")
        if spy is not None:
            stop_py_spy(spy)
        print(f"server: exit code {stop_server(server)} after SIGTERM")
    finally:
        if spy is not None:
            stop_py_spy(spy)
        if loader is not None and loader.is_alive():
            loader.terminate()
            loader.join(5)
        if server is not None:
            stop_server(server)

    met = report(backend, plan, result)
    if cpu_before is not None and cpu_after is not None:
        handled = result["sent"] + result["warmup_sent"]
        used = cpu_after - cpu_before
        print(
            f"server CPU while loaded (warm-up included): {used:.1f} s in {load_wall:.1f} s "
            f"({used / load_wall:.0%} of one core), {used / max(handled, 1) * 1e3:.2f} ms "
            "per request"
        )
    if database_url.startswith("sqlite"):
        counts = sqlite_counts(tmp / "bench.db")
        print("database after the run: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    server_log = log.read_text(errors="replace").splitlines()
    if server_log:
        print(f"server log: {len(server_log)} lines, the last ones:\n{_tail(log, 10)}")
    if args.profile_server:
        print_profile(args.profile_server)
    if args.py_spy:
        print_py_spy(args.py_spy, load_wall, PY_SPY_RATE)
    if args.instructions:
        print_instructions(counted, result["sent"])
    return met


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="python -m bench.webhook",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_argument("--requests", type=_positive, default=5_000, help="timed requests")
    cli.add_argument("--concurrency", type=_positive, default=8, help="requests in flight")
    cli.add_argument("--accounts", type=_positive, default=5_000, help="accounts in the registry")
    cli.add_argument("--warmup", type=_non_negative, default=100, help="untimed requests first")
    cli.add_argument("--time-limit", type=float, default=60.0, help="seconds for the timed run")
    cli.add_argument("--request-timeout", type=float, default=10.0, help="seconds per request")
    cli.add_argument(
        "--database-url",
        help="postgresql+asyncpg://USER@127.0.0.1:5432/DB: run on a scratch database created "
        "(and dropped) on that server; default: SQLite in the temporary directory",
    )
    cli.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="the server's GATEWAY_LOG_LEVEL (info: an access line and an outcome line "
        "per request, as in production)",
    )
    cli.add_argument(
        "--instructions",
        action="store_true",
        help="count the server's instructions per request with valgrind's callgrind",
    )
    cli.add_argument("--profile-server", type=Path, metavar="FILE", help="cProfile the server")
    cli.add_argument(
        "--py-spy", type=Path, metavar="FILE", help="sample the server with py-spy (raw stacks)"
    )
    cli.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = cli.parse_args(argv)
    if args.instructions and (args.profile_server or args.py_spy):
        cli.error("--instructions counts the server alone: not with a profiler")
    rounds = -(-(args.warmup + args.requests) // args.accounts)
    if rounds > RATE_LIMIT_PER_MINUTE:
        cli.error(
            f"{rounds} messages per sender would trip the rate limit; raise --accounts "
            f"to at least {(args.warmup + args.requests) // RATE_LIMIT_PER_MINUTE + 1}"
        )

    token = uuid.uuid4().hex
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    try:
        with scratch_database(args.database_url, tmp) as (database_url, backend):
            met = _run(args, tmp, database_url, backend, token, port)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
