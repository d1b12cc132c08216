"""Calls that arrive while the previous ones are being processed, processed together.

The one mechanism behind the SQLite group commit (units of work that share a transaction)
and the intake's batches (concurrent messages decided together, with one query for all
their accounts). The first call starts processing at once; the calls that arrive
meanwhile wait, and are processed together as soon as it ends. Under light load every
batch holds one call; under heavy load a batch holds what arrived during the previous
one, so per-batch costs are shared exactly when it pays.

With a ``linger``, a batch that follows a batch of several calls waits, at most that
long, until the callers that batch answered are back (besides the calls already
waiting), or the limit is reached. Callers answered by one batch usually come
back with their next call at once (a provider's connections, each sending its next
webhook when answered), but not before the next batch has started: without the wait, a
steady load splits into two halves that take turns, each batch holding half of what is
in flight. Under light load nothing waits: a batch of one call is followed by none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# What processing a batch gives back: per call, in order, (True, its result) or
# (False, the exception its caller gets).
Settled = tuple[bool, Any]


class Coalescer(Generic[T, R]):
    """Feeds ``process`` the calls of :meth:`submit` in batches of at most ``limit``, in
    arrival order, one batch at a time. ``process`` answers every call of its batch;
    should it raise instead, every call of the batch gets that exception."""

    def __init__(
        self,
        process: Callable[[list[T]], Awaitable[Sequence[Settled]]],
        limit: int,
        *,
        linger: float = 0.0,
    ) -> None:
        """``linger``: the most seconds a batch waits for the callers of the previous
        batch to come back (see the module's notes); 0 never waits."""
        self._process = process
        self._limit = limit
        self._linger = linger
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        # The task processing batches, while there are any (held: the loop keeps only a
        # weak reference to a task).
        self._drainer: asyncio.Task[None] | None = None
        # While a batch lingers: how many calls it waits for, and what wakes it.
        self._wanted = 0
        self._enough: asyncio.Future[None] | None = None

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        elif len(self._waiting) == self._wanted:
            assert self._enough is not None
            _settle(self._enough)
        return await future

    async def _drain(self) -> None:
        answered = 0
        while True:
            if self._linger and answered > 1 and len(self._waiting) < self._limit:
                await self._gather(min(answered + len(self._waiting), self._limit))
            if not self._waiting:
                break
            batch = self._waiting[: self._limit]
            self._waiting = self._waiting[self._limit :]
            try:
                settled: Sequence[Settled] = await self._process([item for item, _ in batch])
            except BaseException as exc:  # every caller of the batch gets it
                settled = [(False, exc)] * len(batch)
            for (_, future), (ok, value) in zip(batch, settled, strict=True):
                if future.done():  # its caller was cancelled meanwhile
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            answered = len(batch)

    async def _gather(self, wanted: int) -> None:
        """Wait until ``wanted`` calls are waiting, or for the linger at most."""
        loop = asyncio.get_running_loop()
        self._wanted, self._enough = wanted, loop.create_future()
        timer = loop.call_later(self._linger, _settle, self._enough)
        try:
            await self._enough
        finally:
            timer.cancel()
            self._wanted, self._enough = 0, None


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
