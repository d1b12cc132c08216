"""bench.profiled profiles every thread of the module it runs (``python -m cProfile``
sees the main thread only), reports each thread's CPU time and passes on the exit code."""

from __future__ import annotations

import os
import pstats
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORKLOAD = """
import sys
import threading


def only_in_the_worker():
    return sum(i * i for i in range(200_000))


worker = threading.Thread(target=only_in_the_worker, name="worker")
worker.start()
worker.join()
sys.exit(int(sys.argv[1]))
"""


def run(tmp_path: Path, exit_code: int) -> subprocess.CompletedProcess[str]:
    (tmp_path / "workload.py").write_text(WORKLOAD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    out = tmp_path / "out.prof"
    command = [sys.executable, "-m", "bench.profiled", str(out), "-m", "workload"]
    return subprocess.run(
        [*command, str(exit_code)], env=env, cwd=tmp_path, capture_output=True, text=True
    )


def test_a_threads_work_is_in_the_profile_with_its_cpu_time(tmp_path: Path) -> None:
    done = run(tmp_path, 0)

    assert done.returncode == 0, done.stderr
    stats = pstats.Stats(str(tmp_path / "out.prof"))
    functions = {name for _file, _line, name in stats.stats}  # type: ignore[attr-defined]
    assert "only_in_the_worker" in functions
    threads = dict(
        line.split("\t") for line in (tmp_path / "out.prof.threads").read_text().splitlines()
    )
    assert set(threads) == {"MainThread", "worker"}
    assert float(threads["worker"]) > 0


def test_the_modules_exit_code_is_the_runners(tmp_path: Path) -> None:
    assert run(tmp_path, 3).returncode == 3
