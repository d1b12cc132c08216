"""Singletons among several gateway processes: a lease per job, in the database.

Some jobs must run in exactly one process however many serve: the IMAP poller (two would
fetch the same mail), the SMPP link (one bind per account), Telegram polling (Telegram
refuses two ``getUpdates``), reminders. Each runs under a lease — a row of ``leases``
naming its holder and when it expires. The holder renews it every third of its
:data:`TTL`; a process that finds it expired (its holder died, or lost the database) takes
it and starts the job. So another process takes over within :data:`TTL` seconds of the
holder's death, and a holder that cannot renew stops its job before the lease can pass
to another. On one process (SQLite's default) the lease is always its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.engine import Connection

from gateway.storage import Database
from gateway.storage import tables as t

log = structlog.get_logger("gateway.leases")

# Seconds a lease lasts without renewal: the longest a dead holder's job stays undone.
TTL = 10.0
_l = t.leases.c

Job = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def holder_id() -> str:
    """This process: host, pid and a random part (a pid is reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _now() -> datetime:
    return datetime.now(UTC)


class Leases:
    def __init__(
        self,
        db: Database,
        holder: str | None = None,
        ttl: float = TTL,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        """``clock`` is real time: a lease is about processes, not the business clock."""
        self._db = db
        self.holder = holder or holder_id()
        self._ttl = ttl
        self._clock = clock
        # The jobs running in this process now (readiness and metrics report only these).
        self.running: set[str] = set()

    async def acquire(self, name: str) -> bool:
        """Take or renew the lease ``name``; whether this process holds it now."""
        now = self._clock()
        until = now + timedelta(seconds=self._ttl)

        def take(conn: Connection) -> bool:
            query = select(_l.holder, _l.expires_at).where(_l.name == name)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                conn.execute(
                    t.leases.insert(), {"name": name, "holder": self.holder, "expires_at": until}
                )
                return True
            if row.holder != self.holder and row.expires_at > now:
                return False
            conn.execute(
                t.leases.update()
                .where(_l.name == name)
                .values(holder=self.holder, expires_at=until)
            )
            return True

        try:
            return await self._db.run(lambda uow: take(uow.conn))
        except Exception as exc:  # a concurrent first insert, or the database is away
            log.warning("lease_not_taken", lease=name, error=type(exc).__name__)
            return False

    async def release(self, name: str) -> None:
        """Let another process take ``name`` at once (on a clean shutdown)."""

        def free(conn: Connection) -> None:
            conn.execute(
                t.leases.update()
                .where(_l.name == name, _l.holder == self.holder)
                .values(expires_at=self._clock())
            )

        with contextlib.suppress(Exception):
            await self._db.run(lambda uow: free(uow.conn))

    async def run(self, name: str, job: Job, stop: asyncio.Event) -> None:
        """Run ``job`` whenever this process holds ``name``, until ``stop``: wait for the
        lease, run the job while renewing it, stop the job when the lease is lost."""
        renew = self._ttl / 3
        while not stop.is_set():
            if not await self.acquire(name):
                await _wait(stop, renew)
                continue
            log.info("lease_taken", lease=name, holder=self.holder)
            inner = asyncio.Event()
            task = asyncio.create_task(job(inner))
            self.running.add(name)
            held = True
            try:
                while held and not stop.is_set() and not task.done():
                    await _wait(stop, renew, task)
                    if not stop.is_set() and not task.done():
                        held = await self.acquire(name)
            except BaseException:
                # Cancelled, not stopped: the job ends with its renewals, or it would go
                # on after another process took the lease. The lease is not released: it
                # expires, as when the process dies.
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                self.running.discard(name)
                raise
            ended = task.done() and not inner.is_set()
            inner.set()
            try:
                await task
            except Exception:
                log.exception("lease_job_failed", lease=name)
            self.running.discard(name)
            if not held:
                log.warning("lease_lost", lease=name, holder=self.holder)
            elif ended and not stop.is_set():  # it stopped by itself: not again at once
                await _wait(stop, renew)
        await self.release(name)


async def _wait(
    stop: asyncio.Event, seconds: float, task: asyncio.Task[None] | None = None
) -> None:
    waits: list[asyncio.Future[object]] = [asyncio.ensure_future(stop.wait())]
    if task is not None:
        waits.append(task)  # type: ignore[arg-type]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waits[0].cancel()
