"""A loopback TCP proxy a test controls, put in front of a real server to cause outages.

``cut()`` closes every connection and refuses new ones (a database that went away);
``stall()`` keeps connections open but forwards nothing (a database that hangs: only
timeouts end the wait); ``restore()`` forwards again.
"""

from __future__ import annotations

import asyncio
import contextlib
from enum import Enum


class Mode(Enum):
    FORWARD = "forward"
    STALL = "stall"
    CUT = "cut"


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._mode = Mode.FORWARD
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._port = 0

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        await self._stop_listening()
        self._drop_connections()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        self._mode = Mode.CUT
        await self._stop_listening()
        self._drop_connections()

    async def stall(self) -> None:
        """Accept and keep connections, but forward nothing either way."""
        self._mode = Mode.STALL
        if self._server is None:
            await self.start()

    async def restore(self) -> None:
        """Forward again; connections opened while stalled are dropped (their state is
        unknown), so clients reconnect."""
        was = self._mode
        self._mode = Mode.FORWARD
        if was is Mode.STALL:
            self._drop_connections()
        if self._server is None:
            await self.start()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _drop_connections(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                transport = writer.transport
                transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self._mode is not Mode.FORWARD:
            return  # stalled: hold the connection, forward nothing
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                while self._mode is Mode.STALL:
                    await asyncio.sleep(0.05)
                if self._mode is Mode.CUT:
                    break
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.transport.abort()
