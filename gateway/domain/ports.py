"""The interfaces channels and the intake meet at."""

from __future__ import annotations

from typing import Protocol

from gateway.domain.model import InboundMessage
from gateway.domain.outcome import Outcome


class OnInbound(Protocol):
    """Handle one message and return its outcome; the message is recorded with it
    before this returns. Channels call this and only render ``outcome.reply``."""

    async def __call__(self, message: InboundMessage) -> Outcome: ...
