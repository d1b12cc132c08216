"""Singletons among several processes (gateway.leases), on SQLite and PostgreSQL: two
holders on one database stand for two gateway processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from gateway.leases import Leases
from gateway.settings import Settings
from gateway.storage import Database
from gateway.storage import tables as t
from tests.conftest import select_rows

TTL = 0.6


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url, settings.database_timeout)
    try:
        yield database
    finally:
        await database.dispose()


class Job:
    """A singleton's work: counts how often it is running, and in which process."""

    def __init__(self, name: str, running: list[str]) -> None:
        self.name = name
        self.running = running
        self.started = asyncio.Event()

    async def __call__(self, stop: asyncio.Event) -> None:
        self.running.append(self.name)
        self.started.set()
        try:
            await stop.wait()
        finally:
            self.running.remove(self.name)


async def test_one_holder_at_a_time_and_the_other_takes_over_when_it_expires(
    db: Database,
) -> None:
    a, b = Leases(db, "a", ttl=TTL), Leases(db, "b", ttl=TTL)

    assert await a.acquire("imap")
    assert not await b.acquire("imap")
    assert await a.acquire("imap")  # renewing
    await asyncio.sleep(TTL + 0.1)  # a died: no renewal
    assert await b.acquire("imap")
    assert not await a.acquire("imap")
    (row,) = await select_rows(db, t.leases)
    assert row["holder"] == "b"


async def test_the_job_runs_in_one_process_and_moves_when_its_holder_dies(db: Database) -> None:
    running: list[str] = []
    first, second = Job("a", running), Job("b", running)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    a = asyncio.create_task(Leases(db, "a", ttl=TTL).run("smpp", first, stop_a))
    await asyncio.wait_for(first.started.wait(), 5)
    b = asyncio.create_task(Leases(db, "b", ttl=TTL).run("smpp", second, stop_b))
    await asyncio.sleep(TTL * 1.5)
    assert running == ["a"]  # b waits

    a.cancel()  # the process is killed: no release
    with contextlib.suppress(asyncio.CancelledError):
        await a
    assert running == []  # its job ended with it, not left running without a lease
    await asyncio.wait_for(second.started.wait(), TTL * 4)
    assert running == ["b"]

    stop_b.set()
    await asyncio.wait_for(b, 5)
    assert running == []
    (row,) = await select_rows(db, t.leases)
    assert row["holder"] == "b"  # released: expired now, free for anyone


async def test_a_clean_stop_hands_over_at_once(db: Database) -> None:
    running: list[str] = []
    first, second = Job("a", running), Job("b", running)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    a = asyncio.create_task(Leases(db, "a", ttl=6).run("reminders", first, stop_a))
    await asyncio.wait_for(first.started.wait(), 5)
    b = asyncio.create_task(Leases(db, "b", ttl=6).run("reminders", second, stop_b))

    stop_a.set()
    await asyncio.wait_for(a, 5)
    await asyncio.wait_for(second.started.wait(), 4)  # within a renewal period, not 6 s
    assert running == ["b"]
    stop_b.set()
    await asyncio.wait_for(b, 5)


async def test_a_holder_that_loses_its_lease_stops_its_job(db: Database) -> None:
    running: list[str] = []
    job = Job("a", running)
    stop = asyncio.Event()
    leases = Leases(db, "a", ttl=TTL)
    task = asyncio.create_task(leases.run("imap", job, stop))
    await asyncio.wait_for(job.started.wait(), 5)
    assert leases.running == {"imap"}

    # Another process took it (the database was away longer than the lease).
    await db.run(
        lambda uow: uow.conn.execute(
            t.leases.update().values(holder="b", expires_at=t.leases.c.expires_at)
        )
    )
    for _ in range(50):
        if not running and not leases.running:
            break
        await asyncio.sleep(0.02)
    assert running == [] and leases.running == set()
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_job_that_fails_at_once_is_started_again_only_every_renewal(
    db: Database,
) -> None:
    starts: list[float] = []

    async def broken(stop: asyncio.Event) -> None:
        starts.append(asyncio.get_running_loop().time())
        raise RuntimeError("the SMSC's address is wrong")

    stop = asyncio.Event()
    task = asyncio.create_task(Leases(db, "a", ttl=TTL).run("smpp", broken, stop))
    await asyncio.sleep(TTL)
    stop.set()
    await asyncio.wait_for(task, 5)

    assert 1 <= len(starts) <= 4  # every TTL/3 at most, not in a tight loop
