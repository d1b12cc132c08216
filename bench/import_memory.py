"""Registry import: time and peak memory of ``gateway.registry.import_file`` on a large file.

    .venv/bin/python -m bench.import_memory [--megabytes M] [--before FILE]

Writes an accounts CSV of about M MB (default 50) in a temporary directory -- UTF-8,
Cyrillic addresses with commas in quotes, one row in 500 bad (a debt that is no number),
so the rejection path is measured too -- and imports it into a fresh SQLite database in
that directory. Each import runs in its own process (multiprocessing, spawn), so its peak
resident set size (``ru_maxrss``) is its own; the figure reported is the growth of that
peak during the import, over what the process held once the gateway was imported and the
schema created.

``--before FILE`` also measures another version of ``gateway/registry.py`` the same way,
e.g. the last commit's, for a before/after figure::

    git show HEAD:gateway/registry.py > /tmp/registry_before.py
    .venv/bin/python -m bench.import_memory --before /tmp/registry_before.py
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import multiprocessing.queues
import queue
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import code_version

ROOT = Path(__file__).resolve().parent.parent
BAD_EVERY = 500  # one row in this many has a debt that is no number
IMPORT_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Result:
    code: str
    megabytes: float
    rows: int
    rejected: int
    seconds: float
    baseline_mib: float  # peak RSS before the import
    growth_mib: float  # how much the import raised the peak


def write_accounts(path: Path, megabytes: float) -> int:
    """An accounts file of about ``megabytes`` MB (10^6 bytes); returns its data rows."""
    target = int(megabytes * 1_000_000)
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("account,address,building,phone,debt,receipt_code,last_bill_total,residents\n")
        written = 0
        while written < target:
            lines = []
            for i in range(rows, rows + 10_000):
                debt = (
                    "n/a"
                    if i % BAD_EVERY == BAD_EVERY - 1
                    else f"{(i % 5000) - 1000}.{i % 100:02d}"
                )
                lines.append(
                    f'{7_000_000_000 + i},"г. Ижевск, ул. Кирова, д. {i % 200}, кв. {i % 300}",'
                    f"b{i % 500},+7912{i % 10_000_000:07d},{debt},R{i:08d},"
                    f"{i % 9000}.{i % 100:02d},{i % 6}\n"
                )
            chunk = "".join(lines)
            out.write(chunk)
            written += len(chunk.encode("utf-8"))
            rows += len(lines)
    return rows


def _load_registry(module_file: str | None) -> Any:
    """This checkout's ``gateway.registry``, or another version of it from a file."""
    if module_file is None:
        from gateway import registry

        return registry
    spec = importlib.util.spec_from_file_location("registry_under_test", module_file)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--before: cannot load {module_file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def _import(module: Any, csv_path: Path, database: Path) -> tuple[int, int, float, float]:
    from gateway.bootstrap import gateway
    from gateway.settings import Settings

    settings = Settings.from_mapping(
        {"database_url": f"sqlite+aiosqlite:///{database}", "log_level": "warning"}
    )
    async with gateway(settings, upgrade=True) as gw:
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        report = await module.import_file(gw.db, "accounts", csv_path)
        seconds = time.perf_counter() - started
    inserted: int = report.inserted
    rejected = len(report.errors)
    return inserted, rejected, seconds, baseline / 1024


def _child(
    module_file: str | None,
    csv_path: Path,
    database: Path,
    results: multiprocessing.queues.Queue[tuple[int, int, float, float, float]],
) -> None:
    from gateway import logging as gateway_logging

    gateway_logging.configure("console", "warning")
    module = _load_registry(module_file)
    inserted, rejected, seconds, baseline = asyncio.run(_import(module, csv_path, database))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.put((inserted, rejected, seconds, baseline, peak))


def measure(code: str, module_file: str | None, csv_path: Path, folder: Path) -> Result:
    """One import of ``csv_path`` into a fresh SQLite database, in a process of its own."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.queues.Queue[tuple[int, int, float, float, float]] = context.Queue()
    database = folder / f"{code.replace(' ', '_')}.db"
    process = context.Process(target=_child, args=(module_file, csv_path, database, results))
    process.start()
    deadline = time.monotonic() + IMPORT_TIMEOUT
    try:
        while True:
            try:
                inserted, rejected, seconds, baseline, peak = results.get(timeout=1.0)
                break
            except queue.Empty:
                if not process.is_alive() or time.monotonic() > deadline:
                    raise SystemExit(f"{code}: the import process failed or timed out") from None
    finally:
        process.join(timeout=60)
        if process.is_alive():
            process.kill()
    database.unlink(missing_ok=True)
    return Result(
        code,
        csv_path.stat().st_size / 1_000_000,
        inserted + rejected,
        rejected,
        seconds,
        baseline,
        peak - baseline,
    )


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--megabytes", type=_positive, default=50.0, help="size of the CSV (MB)")
    cli.add_argument("--before", help="another gateway/registry.py to measure alike")
    args = cli.parse_args()
    runs: list[tuple[str, str | None]] = [("this checkout", None)]
    if args.before:
        runs.insert(0, (f"before ({Path(args.before).name})", args.before))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = folder / "accounts.csv"
        started = time.perf_counter()
        rows = write_accounts(csv_path, args.megabytes)
        print(f"accounts.csv: {rows:,} rows written in {time.perf_counter() - started:.1f} s")
        results = [measure(code, module, csv_path, folder) for code, module in runs]
    print(f"code {code_version(ROOT)}\n")
    print("| code | file MB | rows | rejected | seconds | rows/s | peak RSS growth MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.code} | {r.megabytes:,.0f} | {r.rows:,} | {r.rejected:,} | {r.seconds:.1f} | "
            f"{r.rows / r.seconds:,.0f} | {r.growth_mib:,.0f} |"
        )
    print(f"\n(peak RSS before the import: {results[-1].baseline_mib:,.0f} MiB)")


if __name__ == "__main__":
    main()
