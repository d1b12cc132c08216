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
    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout

    async def __call__(
        self, account: str, readings: Sequence[ReadingLine], on: date
    ) -> Charge | None:
        body = {
            "account": account,
            "date": on.isoformat(),
            "readings": [r.to_json() for r in readings],
        }
        try:
            async with asyncio.timeout(self._timeout):
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(self._url, json=body) as response,
                ):
                    if response.status != 200:
                        log.warning("remote_charge_refused", status=response.status)
                        return None
                    return _charge(await response.json())
        except TimeoutError:
            log.warning("remote_charge_late", timeout=self._timeout)
        except (aiohttp.ClientError, ValueError, KeyError, TypeError, InvalidOperation) as exc:
            log.warning("remote_charge_failed", error=repr(exc))
        return None


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
