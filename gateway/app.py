"""The aiohttp application: liveness and readiness checks plus every configured channel's
routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from channels.sms_twilio import TwilioSmsChannel

Probe = Callable[[], Awaitable[bool]]


async def health(_request: web.Request) -> web.Response:
    """Liveness: the process answers. It says nothing of the database, so an orchestrator
    does not restart a healthy gateway during a database outage."""
    return web.json_response({"status": "ok"})


def readiness(database_ready: Probe) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Readiness: 200 while the database answers, 503 while it does not (a load balancer
    sends traffic elsewhere meanwhile)."""

    async def ready(_request: web.Request) -> web.Response:
        if await database_ready():
            return web.json_response({"status": "ready", "database": "ok"})
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)

    return ready


def build_app(
    sms: TwilioSmsChannel,
    max_body_bytes: int,
    database_ready: Probe,
    extra_routes: Sequence[web.RouteDef] = (),
) -> web.Application:
    # aiohttp's own limit is a little above ours, so the channel answers 413 itself.
    app = web.Application(client_max_size=max_body_bytes * 2)
    app.add_routes(
        [
            web.get("/healthz", health),
            web.get("/readyz", readiness(database_ready)),
            *sms.routes(),
            *extra_routes,
        ]
    )
    return app
