"""The aiohttp application: liveness, readiness and metrics, every configured channel's
routes, and one access log line per request.

Every request gets a request id — the ``X-Request-Id`` header a proxy set (nginx's
``$request_id``), or a new one — sent back in ``X-Request-Id`` and bound into every event
logged while the request is handled, so one grep finds all of them."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog
from aiohttp import web

from channels.sms_twilio import TwilioSmsChannel
from gateway import metrics

log = structlog.get_logger("gateway.access")

Probe = Callable[[], Awaitable[bool]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = "X-Request-Id"
# What a request id from outside may be (else a new one is made): no log injection.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def new_request_id() -> str:
    """32 hexadecimal digits, like ``uuid.uuid4().hex``. Request ids need to be unique,
    not secret: 128 bits from the random module's generator (seeded from the system's
    randomness, and again in a forked child), without uuid4's system call per request."""
    return f"{random.getrandbits(128):032x}"


@dataclass(frozen=True)
class Probes:
    """What the checks ask: the database answers, its schema is this gateway's, which
    links are up (only the configured ones), and how to refresh the metrics' gauges."""

    database: Probe
    version: str = "unknown"
    schema: Probe | None = None
    links: Callable[[], Mapping[str, bool]] = dict
    refresh_metrics: Callable[[], Awaitable[None]] | None = None


def health(version: str) -> Handler:
    async def healthy(_request: web.Request) -> web.StreamResponse:
        """Liveness: the process answers (its version too). It says nothing of the
        database, so an orchestrator does not restart a healthy gateway during an outage."""
        return web.json_response({"status": "ok", "version": version})

    return healthy


def readiness(probes: Probes) -> Handler:
    """Readiness: 200 while the database answers with this gateway's schema and every
    configured link (SMPP bind, IMAP, Telegram) is up; 503 with what is not, otherwise (a
    load balancer sends traffic elsewhere meanwhile)."""

    async def ready(_request: web.Request) -> web.StreamResponse:
        database = await probes.database()
        body: dict[str, object] = {"database": "ok" if database else "unreachable"}
        ok = database
        if database and probes.schema is not None and not await probes.schema():
            body["schema"] = "not current: run gateway db upgrade"
            ok = False
        links = dict(probes.links())
        if links:
            body["links"] = {name: "up" if up else "down" for name, up in links.items()}
            ok = ok and all(links.values())
        body["status"] = "ready" if ok else "unavailable"
        return web.json_response(body, status=200 if ok else 503)

    return ready


def metrics_endpoint(probes: Probes) -> Handler:
    async def exposition(_request: web.Request) -> web.StreamResponse:
        if probes.refresh_metrics is not None:
            try:
                await probes.refresh_metrics()
            except Exception:  # the database is away: the counters are still worth having
                log.warning("metrics_refresh_failed")
        metrics.links(probes.links())
        data, content_type = metrics.render()
        response = web.Response(body=data)
        response.content_type = content_type.split(";")[0]
        return response

    return exposition


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One ``request`` event per request, with the request id bound into every event."""
    given = request.headers.get(REQUEST_ID, "")
    request_id = given if _REQUEST_ID.fullmatch(given) else new_request_id()
    started = time.perf_counter()
    status = 500
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await handler(request)
            status = response.status
            response.headers[REQUEST_ID] = request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[REQUEST_ID] = request_id
            raise
        finally:
            log.info(
                "request",
                method=request.method,
                path=request.path,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


def build_app(
    sms: TwilioSmsChannel,
    max_body_bytes: int,
    probes: Probes | Probe,
    extra_routes: Sequence[web.RouteDef] = (),
) -> web.Application:
    if not isinstance(probes, Probes):
        probes = Probes(database=probes)
    # aiohttp's own limit is a little above ours, so the channel answers 413 itself.
    app = web.Application(client_max_size=max_body_bytes * 2, middlewares=[access_log])
    app.add_routes(
        [
            web.get("/healthz", health(probes.version)),
            web.get("/readyz", readiness(probes)),
            web.get("/metrics", metrics_endpoint(probes)),
            *sms.routes(),
            *extra_routes,
        ]
    )
    return app
