"""Billing's HTTP API: ``POST {GATEWAY_BILLING_URL}/readings`` with the outbox payload and
an ``Idempotency-Key`` derived from the reading.

| billing answers | verdict |
| --- | --- |
| 2xx | delivered |
| 409, 422 (it has that key already) | delivered |
| 429, 5xx (Retry-After honoured) | retry |
| network error, timeout, refused | retry |
| any other 4xx | failed: kept and shown by ``gateway outbox status`` |
"""

from __future__ import annotations

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


def classify(status: int, body: str, retry_after: str | None) -> Delivery:
    detail = f"HTTP {status}: {body}".strip()
    if 200 <= status < 300 or status in (409, 422):
        return Delivery(Verdict.DELIVERED, detail)
    if status == 429 or status >= 500:
        return Delivery(Verdict.RETRY, detail, _seconds(retry_after))
    return Delivery(Verdict.FAILED, detail)


def _seconds(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None  # an HTTP date: fall back to our own back-off
