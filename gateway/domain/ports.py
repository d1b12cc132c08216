"""The interfaces channels and the intake meet at."""

from __future__ import annotations

from typing import Protocol

from gateway.domain.model import InboundMessage
from gateway.domain.outcome import Outcome


class OnInbound(Protocol):
    """Handle one message and return its outcome; the message is recorded with it
    before this returns. Channels call this and only render ``outcome.reply``."""

    async def __call__(self, message: InboundMessage) -> Outcome: ...


class Notifier(Protocol):
    """Sends a message to a sender on the channel they wrote from. Returns False (and logs
    why) when that channel cannot send on its own initiative or the send failed."""

    async def __call__(self, channel: str, recipient: str, text: str) -> bool: ...
