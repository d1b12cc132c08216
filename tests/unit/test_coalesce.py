"""The coalescer behind the intake's batches and SQLite's group commit: calls that arrive
while a batch is processed make the next batch, and with a linger a batch waits for the
callers the previous one answered (gateway.coalesce).

Nothing here depends on timing but the one test of a linger that runs out, which only
asserts that it does end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from gateway.coalesce import Coalescer, Settled


@pytest.fixture(autouse=True)
async def no_linger_left() -> AsyncIterator[None]:
    """A test's last batch may still be lingering (for callers that are done) when the test
    ends: cut it short, as a process's end does."""
    yield
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current]
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)


class Recorder:
    """A process function that answers each call with its item and records its batches."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def __call__(self, items: list[int]) -> Sequence[Settled]:
        self.batches.append(items)
        await asyncio.sleep(0)  # as a hop to the database would
        return [(True, item) for item in items]


async def callers(coalescer: Coalescer[int, int], count: int, rounds: int) -> None:
    """``count`` callers, each calling ``rounds`` times, one call after another, coming
    back after a different number of event loop turns (caller i after i turns): as a
    provider's connections do, each sending its next request once answered."""

    async def caller(index: int) -> None:
        for call in range(rounds):
            assert await coalescer.submit(index * 100 + call) == index * 100 + call
            for _ in range(index):
                await asyncio.sleep(0)

    await asyncio.gather(*(caller(i) for i in range(count)))


async def test_without_a_linger_callers_that_come_back_apart_split_the_batches() -> None:
    """What the linger is for: without it, callers coming back a turn apart miss the
    batch that started at once, and the load splits into smaller batches."""
    process = Recorder()
    await callers(Coalescer(process, limit=64), count=6, rounds=4)
    assert len(process.batches[0]) == 6  # all arrived before the first batch began
    assert max(len(batch) for batch in process.batches[1:]) < 6


async def test_a_linger_waits_for_the_callers_the_last_batch_answered() -> None:
    """A linger far longer than the test: only the callers' return ends each wait."""
    process = Recorder()
    await callers(Coalescer(process, limit=64, linger=60.0), count=6, rounds=4)
    assert [len(batch) for batch in process.batches] == [6, 6, 6, 6]
    assert [sorted(batch) for batch in process.batches] == [
        [i * 100 + call for i in range(6)] for call in range(4)
    ]


async def test_a_batch_of_one_call_is_not_followed_by_a_wait() -> None:
    """Light load: one call at a time, each answered and the next processed at once, even
    with a linger of a minute."""
    process = Recorder()
    coalescer = Coalescer(process, limit=64, linger=60.0)
    for item in range(3):
        assert await asyncio.wait_for(coalescer.submit(item), timeout=5) == item
    assert process.batches == [[0], [1], [2]]


async def test_a_linger_ends_when_the_callers_do_not_come_back() -> None:
    """After a batch of three, one caller comes back: it is processed once the linger
    runs out, alone, and the coalescer takes new calls after that."""
    process = Recorder()
    coalescer = Coalescer(process, limit=64, linger=0.05)
    assert await asyncio.gather(*(coalescer.submit(i) for i in range(3))) == [0, 1, 2]
    assert await asyncio.wait_for(coalescer.submit(3), timeout=5) == 3
    assert await asyncio.wait_for(coalescer.submit(4), timeout=5) == 4
    assert process.batches == [[0, 1, 2], [3], [4]]


async def test_a_lingering_batch_still_holds_at_most_its_limit() -> None:
    """Six callers, a limit of four: every call answered once, no batch over four. (The
    linger is short: at the end, a batch waits for callers that are done.)"""
    process = Recorder()
    await callers(Coalescer(process, limit=4, linger=0.01), count=6, rounds=3)
    assert all(len(batch) <= 4 for batch in process.batches)
    assert sorted(item for batch in process.batches for item in batch) == sorted(
        i * 100 + call for i in range(6) for call in range(3)
    )


async def test_a_failing_batch_fails_each_of_its_calls_and_the_next_batch_goes_on() -> None:
    attempts: list[list[int]] = []

    async def process(items: list[int]) -> Sequence[Settled]:
        attempts.append(items)
        if len(attempts) == 1:
            raise RuntimeError("database away")
        return [(True, item) for item in items]

    coalescer = Coalescer(process, limit=64, linger=60.0)
    results = await asyncio.gather(*(coalescer.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    # The three callers come back: the linger gathers them into one batch.
    assert await asyncio.gather(*(coalescer.submit(i) for i in range(3, 6))) == [3, 4, 5]
    assert attempts == [[0, 1, 2], [3, 4, 5]]
