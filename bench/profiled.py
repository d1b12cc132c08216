"""Run a module under cProfile in every thread: ``python -m bench.profiled OUT -m MODULE ARGS``.

``python -m cProfile`` profiles the main thread only. The gateway on SQLite does about
two thirds of its work on its writer thread (``bench.webhook --instructions`` counts it),
which such a profile never shows. Here every thread started after this module is
profiled too, each with a profiler of its own (cProfile's are per thread); when the
module ends (the server stopped with SIGTERM exits normally), the profiles are added up
into OUT, a ``pstats`` file (wall-clock times, as ``python -m cProfile`` gives), and
OUT.threads lists each thread's CPU seconds (``time.thread_time``): how the work splits
between threads, which a wall-clock profile blurs (a thread waiting for work shows as
time spent in its queue's ``get``).
"""

from __future__ import annotations

import cProfile
import pstats
import runpy
import sys
import threading
import time
from pathlib import Path


class ThreadProfiles:
    """A profiler per thread: the main thread's, and one for each thread started once
    :meth:`install` has run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.profiles: list[tuple[str, cProfile.Profile]] = []
        # Each thread's CPU seconds, once it has ended.
        self.cpu: dict[str, float] = {}

    def install(self) -> cProfile.Profile:
        """Profile each thread started from now on; the main thread's profiler (not yet
        enabled)."""
        run = threading.Thread.run
        profiles = self

        def profiled_run(thread: threading.Thread) -> None:
            profile = profiles.add(thread.name)
            started = time.thread_time()
            profile.enable()
            try:
                run(thread)
            finally:
                profile.disable()
                profiles.ended(thread.name, time.thread_time() - started)

        threading.Thread.run = profiled_run  # type: ignore[method-assign,assignment]
        return self.add(threading.current_thread().name)

    def add(self, name: str) -> cProfile.Profile:
        profile = cProfile.Profile()
        with self._lock:
            self.profiles.append((name, profile))
        return profile

    def ended(self, name: str, cpu: float) -> None:
        with self._lock:
            self.cpu[name] = self.cpu.get(name, 0.0) + cpu

    def save(self, out: Path) -> None:
        """The profiles added up into ``out`` (those that saw no Python call left out),
        and each ended thread's CPU seconds, most first, into ``out``.threads."""
        stats: pstats.Stats | None = None
        with self._lock:
            profiles = list(self.profiles)
            cpu = sorted(self.cpu.items(), key=lambda item: -item[1])
        for _name, profile in profiles:
            profile.create_stats()
            if not profile.stats:
                continue
            if stats is None:
                stats = pstats.Stats(profile)
            else:
                stats.add(profile)
        if stats is not None:
            stats.dump_stats(out)
        threads = out.with_name(out.name + ".threads")
        threads.write_text("".join(f"{name}\t{seconds:.3f}\n" for name, seconds in cpu))


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "-m":
        print("usage: python -m bench.profiled OUT -m MODULE [ARGS...]", file=sys.stderr)
        return 2
    out, module, args = Path(argv[0]), argv[2], argv[3:]
    profiles = ThreadProfiles()
    main_profile = profiles.install()
    sys.argv = [module, *args]
    code = 0
    started = time.thread_time()
    main_profile.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        main_profile.disable()
        profiles.ended(threading.current_thread().name, time.thread_time() - started)
        profiles.save(out)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
