"""The SMTP receiver (aiosmtpd): mail delivered straight to the gateway (``GATEWAY_SMTP_LISTEN``).

It is meant to sit behind the supplier's mail server — a Postfix transport, a forwarding
rule — on loopback or a private network: it accepts mail for any recipient and offers no
TLS or AUTH of its own. The final reply to DATA is given only when the mail's outcome is
committed: ``250`` then, ``451`` (try again later) when it could not be stored, so the
sending server keeps the mail and retries. A mail over the size limit is refused with
``552`` — at ``MAIL FROM`` when the client declares its ``SIZE``, else at the end of DATA —
and is never held in memory beyond the limit.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.domain.errors import StorageUnavailable

log = structlog.get_logger("channels.email_smtp")

STORED = "250 2.0.0 OK: received"
TRY_LATER = "451 4.3.0 Not stored: try again later"


class OnReceived(Protocol):
    async def __call__(self, raw: bytes, *, envelope_from: str | None = None) -> None: ...


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:2525`` for IPv6) as a host and a port."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"not host:port: {listen!r}")
    return host.strip("[]"), int(port)


class _Handler:
    def __init__(self, on_received: OnReceived) -> None:
        self._on_received = on_received

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):  # only with decode_data=True, which is not used
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            await self._on_received(raw, envelope_from=envelope.mail_from or "")
        except StorageUnavailable:
            log.warning("smtp_not_stored", size=len(raw))
            return TRY_LATER
        except Exception:  # never a crash: the sending server keeps the mail and retries
            log.exception("smtp_receive_failed", size=len(raw))
            return TRY_LATER
        return STORED


class SmtpReceiver:
    """Listens on ``host:port`` while :meth:`run` runs."""

    def __init__(self, listen: str, max_bytes: int, on_received: OnReceived) -> None:
        self._host, self._port = parse_listen(listen)
        self._max_bytes = max_bytes
        self._handler = _Handler(on_received)
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose, when configured as 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        hostname = socket.gethostname()  # not getfqdn(): no DNS lookup at start

        def protocol() -> SMTP:
            return SMTP(
                self._handler,
                data_size_limit=self._max_bytes,
                enable_SMTPUTF8=True,
                hostname=hostname,
                ident="meter-reading gateway",
                loop=loop,
            )

        self._server = await loop.create_server(protocol, self._host, self._port)
        log.info("smtp_listening", host=self._host, port=self.port, max_bytes=self._max_bytes)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until ``stop`` is set."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
