"""The composition root: the only place that builds engines, services and channels."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from channels.sms_twilio import TwilioSmsChannel
from gateway.app import build_app
from gateway.intake import Clock, Intake
from gateway.settings import Settings
from gateway.storage import Database


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Gateway:
    settings: Settings
    db: Database
    intake: Intake
    clock: Clock

    def web_app(self) -> web.Application:
        sms = TwilioSmsChannel(
            self.intake,
            auth_token=self.settings.twilio_auth_token,
            public_url=self.settings.public_url,
            clock=self.clock,
            max_body_bytes=self.settings.max_body_bytes,
        )
        return build_app(sms, self.settings.max_body_bytes)


@asynccontextmanager
async def gateway(
    settings: Settings, clock: Callable[[], datetime] = utc_now
) -> AsyncIterator[Gateway]:
    """Open the database (creating the schema if needed) and wire the services."""
    db = Database(settings.database_url)
    try:
        await db.create_schema()
        yield Gateway(settings, db, Intake(db, settings, clock), clock)
    finally:
        await db.dispose()
