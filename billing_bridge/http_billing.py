"""Billing's HTTP API: ``POST {GATEWAY_BILLING_URL}/readings`` with the outbox payload and
an ``Idempotency-Key`` derived from the reading.

| billing answers | verdict |
| --- | --- |
| 2xx | delivered |
| 409, 422 (it has that key already) | delivered |
| 429, 5xx (Retry-After honoured: seconds or an HTTP date) | retry |
| network error, timeout, refused | retry |
| any other 4xx | failed: kept and shown by ``gateway outbox status`` |
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from gateway.domain.outbox import Delivery, OutboxItem, Verdict


class HttpBilling:
    def __init__(self, base_url: str, timeout: float) -> None:
        self._url = base_url.rstrip("/") + "/readings"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def deliver(self, item: OutboxItem) -> Delivery:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {"Idempotency-Key": item.idempotency_key}
        try:
            async with self._session.post(self._url, json=item.payload, headers=headers) as r:
                body = (await r.text())[:200]
                return classify(r.status, body, r.headers.get("Retry-After"))
        except TimeoutError:
            return Delivery(Verdict.RETRY, "timeout")
        except aiohttp.ClientError as exc:
            return Delivery(Verdict.RETRY, f"network: {exc.__class__.__name__}: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def classify(
    status: int, body: str, retry_after: str | None, now: datetime | None = None
) -> Delivery:
    """The verdict on billing's answer; ``now`` (wall time) reads a Retry-After date."""
    detail = f"HTTP {status}: {body}".strip()
    if 200 <= status < 300 or status in (409, 422):
        return Delivery(Verdict.DELIVERED, detail)
    if status == 429 or status >= 500:
        return Delivery(Verdict.RETRY, detail, retry_after_seconds(retry_after, now))
    return Delivery(Verdict.FAILED, detail)


def retry_after_seconds(header: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (RFC 9110: delay-seconds or an HTTP date); None when absent
    or unreadable, so the relay's own back-off applies."""
    if header is None or not header.strip():
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by convention
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
