"""Twilio Programmable Messaging webhook: ``POST /sms/twilio`` → TwiML reply.

The signature is checked with Twilio's ``RequestValidator`` against the configured public
URL plus the request path (behind a proxy ``request.url`` is not what Twilio signed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

import aiohttp
import structlog
from aiohttp import web
from twilio.request_validator import RequestValidator, compare

from gateway.domain.errors import StorageUnavailable
from gateway.domain.model import InboundMessage
from gateway.domain.outbound import SendResult, SendVerdict
from gateway.domain.ports import OnInbound

CHANNEL = "sms"
PATH = "/sms/twilio"
log = structlog.get_logger("channels.sms_twilio")


# Characters XML 1.0 does not allow in a document (which make Twilio drop the reply),
# and the C1 controls it discourages.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
FORM = "application/x-www-form-urlencoded"
# What Twilio is told when a message could not be stored: retry (with the connection
# overrides #rc=…&rp=… on the webhook URL, or the Fallback URL).
RETRY_AFTER_SECONDS = "5"


_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def twiml(reply: str | None) -> str:
    """A TwiML document with ``reply`` as its message, whatever characters it holds:
    byte for byte what twilio's ``MessagingResponse`` writes (a test holds it to that),
    without building an element tree for one element on every request."""
    if not reply:
        return f"{_XML_DECLARATION}<Response />"
    text = escape(_NOT_XML.sub("", reply))
    message = f"<Message>{text}</Message>" if text else "<Message />"
    return f"{_XML_DECLARATION}<Response>{message}</Response>"


class TwilioSmsChannel:
    def __init__(
        self,
        on_inbound: OnInbound,
        *,
        auth_token: str,
        public_url: str,
        clock: Callable[[], datetime],
        max_body_bytes: int,
    ) -> None:
        self._on_inbound = on_inbound
        self._validator = RequestValidator(auth_token) if auth_token else None
        self._public_url = public_url.rstrip("/")
        self._clock = clock
        self._max_body = max_body_bytes
        if self._validator is None:
            log.warning("sms_channel_disabled", reason="GATEWAY_TWILIO_AUTH_TOKEN is not set")

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > self._max_body:
            return web.Response(status=413, text="body too large")
        if request.content_type != FORM:
            log.warning("sms_refused", reason="unsupported media type")
            return web.Response(status=415, text=f"expected {FORM}")
        body = await _read_body(request, self._max_body)
        if body is None:
            return web.Response(status=413, text="body too large")
        if self._validator is None:
            log.warning("sms_refused", reason="no Twilio auth token configured")
            return web.Response(status=403, text="sms channel is not configured")
        form = _parse_form(body)
        signature = request.headers.get("X-Twilio-Signature", "")
        url = self._public_url + request.path_qs
        if not signature or not _signed(self._validator, url, form, signature):
            log.warning("sms_refused", reason="bad signature", url=url)
            return web.Response(status=403, text="invalid signature")
        message = InboundMessage(
            channel=CHANNEL,
            sender=form.get("From", ""),
            text=form.get("Body", ""),
            received_at=self._clock(),
            external_id=form.get("MessageSid") or None,
        )
        try:
            outcome = await self._on_inbound(message)
        except StorageUnavailable:
            # Not stored: Twilio must deliver it again (the intake logged why).
            return web.Response(
                status=503,
                text="temporarily unavailable",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        return web.Response(text=twiml(outcome.reply), content_type="text/xml")


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body, however many packets it came in; None when over ``limit``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _signed(validator: RequestValidator, url: str, form: dict[str, str], signature: str) -> bool:
    """Whether Twilio signed this request. The URL Twilio requested is tried first: one
    HMAC, where the validator's own check always computes two (the URL with and without
    its port) and is kept for everything else."""
    if compare(_signature(validator.token, url, form), signature):
        return True
    return bool(validator.validate(url, form, signature))


def _signature(token: bytes, url: str, form: dict[str, str]) -> str:
    """Twilio's signature of a form POST: HMAC-SHA1 of the URL followed by each parameter's
    name and value in name order, in Base64 — ``RequestValidator.compute_signature`` for
    a form of single values, without its per-parameter set and sort (a test holds the two
    equal)."""
    signed = url + "".join([name + form[name] for name in sorted(form)])
    digest = hmac.new(token, signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _parse_form(body: bytes) -> dict[str, str]:
    """``dict(parse_qsl(body, keep_blank_values=True))`` of the body read as UTF-8 (a test
    holds the two equal), without its checks and per-field work that a form of a few
    plain fields does not need: a field is unquoted only when it has something to
    unquote."""
    form = {}
    for field in body.decode("utf-8", errors="replace").split("&"):
        if field:
            name, _, value = field.partition("=")
            form[_unquoted(name)] = _unquoted(value)
    return form


def _unquoted(text: str) -> str:
    if "+" in text:
        text = text.replace("+", " ")
    return unquote(text) if "%" in text else text


class TwilioRestSender:
    """Sends an SMS through Twilio's REST API (``POST /2010-04-01/Accounts/{Sid}/Messages.json``).

    ``api_base`` points at Twilio, or at a loopback fake in tests."""

    def __init__(
        self, *, account_sid: str, auth_token: str, from_number: str, api_base: str
    ) -> None:
        self._url = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._headers = {"Authorization": aiohttp.encode_basic_auth(account_sid, auth_token)}
        self._from = from_number
        self.configured = bool(account_sid and auth_token and from_number)

    async def send(self, to: str, body: str) -> SendResult:
        """Create the message. 201: sent (Twilio's message SID); 401 (wrong credentials),
        429, 5xx or no answer: try again later (Retry-After honoured); any other answer:
        refused for good, with Twilio's error code and message (a bad number, an
        unverified sender…)."""
        form = {"To": to, "From": self._from, "Body": body}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                session.post(self._url, data=form, headers=self._headers) as response,
            ):
                answer = await _json(response)
                if response.status in (200, 201):
                    return SendResult(SendVerdict.SENT, str(answer.get("sid", "")))
                detail = f"HTTP {response.status}"
                if answer.get("code") or answer.get("message"):
                    detail += f": {answer.get('code', '')} {answer.get('message', '')}".rstrip()
                # 401: the credentials are wrong — an operator's fix, not the message's.
                if response.status in (401, 429) or response.status >= 500:
                    wait = _seconds(response.headers.get("Retry-After"))
                    return SendResult(SendVerdict.RETRY, detail, wait)
                return SendResult(SendVerdict.FAILED, detail)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult(SendVerdict.RETRY, f"{type(exc).__name__}: {exc}".rstrip(": "))


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """Twilio's JSON answer, or nothing when it sent something else."""
    try:
        answer = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return {}
    return answer if isinstance(answer, dict) else {}


def _seconds(header: str | None) -> float | None:
    try:
        return max(0.0, float(header)) if header else None
    except ValueError:
        return None
