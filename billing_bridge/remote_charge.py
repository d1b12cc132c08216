"""Billing's own preliminary charge: ``POST {billing_charge_url}`` with the accepted
readings; its answer replaces the local calculation when it comes within the timeout.

Request: ``{"account", "date", "readings": [{"meter", "service", "zone", "value",
"previous", "consumption"}]}``; response: ``{"lines": [{"meter", "zone", "consumption",
"tariff", "amount"}], "debt", "total"}``, numbers as decimal strings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import structlog

from gateway.domain.outcome import Charge, ChargeLine, ReadingLine

log = structlog.get_logger("billing_bridge.remote_charge")


class RemoteCharge:
    """One HTTP session for the gateway's life: its connections are kept between replies,
    so a quote costs billing's answer, not a new connection. ``close`` ends it."""

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __call__(
        self, account: str, readings: Sequence[ReadingLine], on: date
    ) -> Charge | None:
        body = {
            "account": account,
            "date": on.isoformat(),
            "readings": [r.to_json() for r in readings],
        }
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._session.post(self._url, json=body) as response,
            ):
                if response.status != 200:
                    log.warning("remote_charge_refused", status=response.status)
                    return None
                return _charge(await response.json(content_type=None))
        except TimeoutError:
            log.warning("remote_charge_late", timeout=self._timeout)
        except (aiohttp.ClientError, ValueError, KeyError, TypeError, InvalidOperation) as exc:
            log.warning("remote_charge_failed", error=repr(exc))
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _charge(data: dict[str, Any]) -> Charge:
    lines = tuple(
        ChargeLine(
            meter=str(line["meter"]),
            zone=str(line["zone"]),
            consumption=Decimal(str(line["consumption"])),
            tariff=None if line.get("tariff") is None else Decimal(str(line["tariff"])),
            amount=None if line.get("amount") is None else Decimal(str(line["amount"])),
        )
        for line in data["lines"]
    )
    return Charge(lines, Decimal(str(data["debt"])), Decimal(str(data["total"])))
