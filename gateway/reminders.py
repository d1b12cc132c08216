"""Reminders: on the first day of the acceptance window, at a daytime hour in the
supplier's time zone, every chat that wants reminders and has not sent readings for that
period yet is reminded — through the outbound queue, once per chat and period."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import structlog

from gateway.chats import ChatTransactor, ChatUnit
from gateway.domain.periods import place
from gateway.domain.store import Outbound
from gateway.settings import Settings

log = structlog.get_logger("gateway.reminders")

CHANNEL = "telegram"


def reminder_text(settings: Settings) -> str:
    window = settings.window
    return (
        f"Напоминание: с {window.start} по {window.end} число принимаются показания "
        "счётчиков. Пришлите их сообщением, например: 1234567890 12345 6789 — или "
        "отключите напоминания: /remind off"
    )


class Reminders:
    def __init__(
        self, db: ChatTransactor, settings: Settings, clock: Callable[[], datetime]
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock

    async def run_once(self) -> int:
        """Queue the reminders that are due now; how many were queued."""
        now = self._clock()
        local = now.astimezone(self._settings.zone)
        placement = place(local.date(), self._settings.window)
        if not placement.inside or placement.opens != local.date():
            return 0  # not the window's first day
        if local.hour < self._settings.telegram_reminder_hour:
            return 0
        kind = f"reminder:{placement.period}"
        text = reminder_text(self._settings)

        def queue(uow: ChatUnit) -> int:
            reminded = uow.outbound.recipients(CHANNEL, kind)
            due = [c for c in uow.chats.chats_to_remind(placement.period) if c not in reminded]
            for chat in due:
                uow.outbound.queue(Outbound(CHANNEL, chat, text, kind), now)
            return len(due)

        queued = await self._db.run(queue)
        if queued:
            log.info("reminders_queued", period=placement.period, chats=queued)
        return queued

    async def run_forever(self, stop: asyncio.Event, interval: float = 60.0) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # an outage: the next check tries again
                log.exception("reminders_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
