"""The aiohttp application: health check plus every configured channel's routes."""

from __future__ import annotations

from aiohttp import web

from channels.sms_twilio import TwilioSmsChannel


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(sms: TwilioSmsChannel, max_body_bytes: int) -> web.Application:
    # aiohttp's own limit is a little above ours, so the channel answers 413 itself.
    app = web.Application(client_max_size=max_body_bytes * 2)
    app.add_routes([web.get("/healthz", health), *sms.routes()])
    return app
