"""``gateway serve --workers N``: N server processes sharing one port.

The parent starts N ``gateway serve --reuse-port`` children on the same host and port
(``SO_REUSEPORT``: the kernel spreads connections over them) and supervises them: a child
that dies is started again after a second; SIGTERM or SIGINT is passed on to every child,
which finishes its requests in flight and stops its jobs (see ``gateway.leases``), and the
parent exits 0 once all have. The children share the database (PostgreSQL at scale; on
SQLite they take turns to write) and, unless ``PROMETHEUS_MULTIPROC_DIR`` is set already, a
temporary directory for their metrics, so any child's ``/metrics`` covers them all.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from types import FrameType

import structlog

log = structlog.get_logger("gateway.workers")

# A child that dies is started again after this many seconds.
RESTART_PAUSE = 1.0


def supervise(
    workers: int, host: str, port: int, env: Mapping[str, str], stop_timeout: float = 75.0
) -> int:
    """Run ``workers`` children until SIGTERM/SIGINT; the exit status (0 on a clean stop)."""
    environment = dict(env)
    metrics_dir = None
    if not environment.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        environment["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    command = [
        sys.executable, "-m", "gateway", "serve",
        "--host", host, "--port", str(port), "--reuse-port",
    ]  # fmt: skip
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    children: list[subprocess.Popen[bytes]] = []
    try:
        children = [_start(command, environment, n) for n in range(workers)]
        log.info("workers_started", workers=workers, host=host, port=port)
        while not stopping:
            for index, child in enumerate(children):
                code = child.poll()
                if code is not None and not stopping:
                    log.error("worker_died", worker=index, pid=child.pid, code=code)
                    time.sleep(RESTART_PAUSE)
                    children[index] = _start(command, environment, index)
            time.sleep(0.2)
        return _stop(children, stop_timeout)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _start(command: Sequence[str], env: Mapping[str, str], index: int) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(list(command), env=dict(env))
    log.info("worker_started", worker=index, pid=child.pid)
    return child


def _stop(children: Sequence[subprocess.Popen[bytes]], timeout: float) -> int:
    """SIGTERM to every child, then wait; a child still running after ``timeout`` is
    killed. 0 when every child stopped cleanly."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    status = 0
    for child in children:
        try:
            code = child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
        if code not in (0, -signal.SIGTERM):
            status = 1
    log.info("workers_stopped", status=status)
    return status


__all__ = ["supervise"]
