"""An elder's list of N lines through the intake, end to end: parse, authorise, validate,
store the readings and their outbox rows, in batched transactions.

    .venv/bin/python -m bench.lists [--lines N] [--database-url URL] [--profile FILE]

A registry of N accounts (one single-rate meter each, all in the elder's building) is
imported into a fresh database (SQLite in a temporary directory, or a scratch PostgreSQL
database on the server of ``--database-url``); the list has one data line per account,
numbered and with an apartment prefix. Prints a markdown row: lines, seconds, lines/s.
Target: 10,000 lines in under 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.webhook import scratch_database
from gateway.bootstrap import gateway
from gateway.domain.model import InboundMessage
from gateway.registry import import_file
from gateway.settings import Settings

ELDER = "elder@example.org"


def registry_files(folder: Path, lines: int) -> dict[str, Path]:
    """N accounts in one building (its elder ELDER), a single-rate meter each."""
    files = {
        "accounts": "account,address,building,phone,debt\n"
        + "".join(f"7{i:09d},addr,big,,0\n" for i in range(lines)),
        "meters": "account,meter,service,zone,digits,verified_until,last_value,last_date\n"
        + "".join(
            f"7{i:09d},M{i},electricity,single,6.1,2031-12-31,100,2026-10-20\n"
            for i in range(lines)
        ),
        "tariffs": "service,zone,price,valid_from\nelectricity,single,6.43,2026-07-01\n",
        "elders": f"email,building\n{ELDER},big\n",
    }
    paths = {}
    for kind, text in files.items():
        paths[kind] = folder / f"{kind}.csv"
        paths[kind].write_text(text, encoding="utf-8")
    return paths


async def _run(url: str, lines: int, folder: Path, profile: Path | None) -> float:
    settings = Settings.from_mapping({"database_url": url})
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    def clock() -> datetime:
        return now

    async with gateway(settings, clock, upgrade=True) as gw:
        for kind, path in registry_files(folder, lines).items():
            report = await import_file(gw.db, kind, path)
            assert not report.errors, report.errors[:3]
        text = "Показания дома:\n" + "\n".join(
            f"кв. {i + 1} — 7{i:09d} {200 + i % 50}" for i in range(lines)
        )
        message = InboundMessage("email", ELDER, text, clock())
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        result = await gw.intake.handle_list(message)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        accepted = result.counts()["accepted"]
        refused = [(line.text, line.outcome.reply) for line in result.lines if line.outcome.error]
        assert accepted == lines, (result.summary(), refused[:3])
    if profiler and profile:
        profiler.dump_stats(profile)
        pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(25)
    return seconds


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--lines", type=int, default=10_000)
    cli.add_argument("--database-url", help="a PostgreSQL server to make a scratch database on")
    cli.add_argument("--profile", type=Path, metavar="FILE", help="cProfile the list")
    args = cli.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database(args.database_url, Path(tmp)) as (url, backend),
    ):
        seconds = asyncio.run(_run(url, args.lines, Path(tmp), args.profile))
    print("| backend | lines | seconds | lines/s |")
    print("|---|---:|---:|---:|")
    print(f"| {backend} | {args.lines:,} | {seconds:.2f} | {args.lines / seconds:,.0f} |")


if __name__ == "__main__":
    main()
