"""Calls that arrive while the previous ones are being processed, processed together.

The one mechanism behind the SQLite group commit (units of work that share a transaction)
and the intake's batches (concurrent messages decided together, with one query for all
their accounts): nothing waits on a timer. The first call starts processing at once; the
calls that arrive meanwhile wait, and are processed together as soon as it ends. Under
light load every batch holds one call; under heavy load a batch holds what arrived during
the previous one, so per-batch costs are shared exactly when it pays.
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
        self, process: Callable[[list[T]], Awaitable[Sequence[Settled]]], limit: int
    ) -> None:
        self._process = process
        self._limit = limit
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._running = False

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
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
        finally:
            self._running = False
