"""structlog set-up: JSON lines on standard error when not on a terminal, coloured otherwise.

Records of the libraries underneath (aiohttp, asyncpg, SQLAlchemy's pool) go through the
same renderer, so a log is JSON lines only; their tracebacks are cut to the exception's
type, since during an outage every connection would otherwise print one.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog

from gateway.jsontext import json_encoder


def _exception_in_one_line(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A library's exception as its type, not a traceback (its text may hold a driver's
    parameters: what a sender wrote)."""
    exc_info = event.pop("exc_info", None)
    if exc_info:
        exc = exc_info[1] if isinstance(exc_info, tuple) else sys.exc_info()[1]
        if exc is not None:
            event["error"] = type(exc).__name__
    return event


class LineSink:
    """Where every log line goes: ``stream``, written once per turn of the event loop.

    Each line written on the loop's thread waits in memory until the loop has run what
    was ready (every request of that turn), then they all go out in one write: one
    system call per turn instead of one per line. A line from any other thread, or with
    no loop running, is written at once, with whatever waits before it, so the order of
    lines is the order they were logged. What a process killed mid-turn loses is that
    turn's lines (milliseconds); a process that exits normally writes everything."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lines: list[str] = []
        self._lock = threading.Lock()
        # The loop a write of the waiting lines is scheduled on (a loop may close before
        # it runs it: a line on another loop schedules it there).
        self._scheduled: asyncio.AbstractEventLoop | None = None
        atexit.register(self.flush)

    def write(self, line: str) -> None:
        loop = _running_loop()
        with self._lock:
            self._lines.append(line)
            if loop is None:
                self._write_waiting()
                return
            if self._scheduled is loop:
                return
            self._scheduled = loop
        loop.call_soon(self.flush)

    def flush(self) -> None:
        with self._lock:
            self._scheduled = None
            self._write_waiting()

    def _write_waiting(self) -> None:
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: the lines are lost
            pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _SinkLogger:
    """structlog's logger for the sink: every level is one line."""

    def __init__(self, sink: LineSink) -> None:
        self._sink = sink

    def msg(self, message: str) -> None:
        self._sink.write(message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _SinkHandler(logging.Handler):
    """The standard library's records, formatted by structlog, into the same sink."""

    def __init__(self, sink: LineSink) -> None:
        super().__init__()
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._sink.write(self.format(record))
        except Exception:
            self.handleError(record)


# The sink of the process's log lines (one per stream; tests configure many times).
_sinks: dict[int, LineSink] = {}


def _sink(stream: TextIO) -> LineSink:
    found = _sinks.get(id(stream))
    if found is None or found.stream is not stream:
        found = _sinks[id(stream)] = LineSink(stream)
    return found


# structlog's level names for its method names (as ``add_log_level`` maps them).
_LEVEL_NAMES = {"warn": "warning", "exception": "error"}


class _UtcStamp:
    """``timestamp`` as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes it
    (``2026-11-24T08:17:22.213220Z``; the six digits also at a whole second, where
    ``datetime.isoformat`` drops them), the date and time of day formatted once a second."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock  # nanoseconds since the epoch
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        second, nanos = divmod(self._clock(), 1_000_000_000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{nanos // 1000:06d}Z"


def _level_and_time(stamp: _UtcStamp) -> structlog.typing.Processor:
    """``add_log_level`` and ``TimeStamper`` in one step (each line of every request
    goes through it)."""

    def add(_logger: Any, name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event["level"] = _LEVEL_NAMES.get(name, name)
        event["timestamp"] = stamp()
        return event

    return add


def _unserializable(value: Any) -> Any:
    """What structlog's JSON renderer writes for a value JSON has no form for."""
    structlog_form = getattr(value, "__structlog__", None)
    return structlog_form() if structlog_form is not None else repr(value)


def _json_lines() -> structlog.typing.Processor:
    """structlog's ``JSONRenderer(ensure_ascii=False)``, with its encoder made once
    rather than per line."""
    encode = json_encoder(_unserializable)

    def render(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> str:
        return encode(event)

    return render


def configure(fmt: str = "auto", level: str = "info", *, for_good: bool = False) -> None:
    """``for_good``: this configuration lasts the process's life (a server), so each
    module's logger is bound on its first line and kept, not bound again for every line
    (structlog's ``cache_logger_on_first_use``). Tests configure many times, and so
    leave it off."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    sink = _sink(sys.stderr)
    renderer = _json_lines() if as_json else structlog.dev.ConsoleRenderer()
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        _level_and_time(_UtcStamp()),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=lambda *_args: _SinkLogger(sink),
        cache_logger_on_first_use=for_good,
    )
    handler = _SinkHandler(sink)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                *shared,
                structlog.stdlib.add_logger_name,
                _exception_in_one_line,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
