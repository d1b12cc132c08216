"""The email channel's sender: hands a rendered message to an SMTP relay (submission).

The queued text is a complete RFC 5322 message (headers and MIME body, rendered with
``email.policy.SMTP``) and the recipient the bare address it goes to; the envelope sender
is the configured ``mail_from``. One connection per message: reports are rare.

What the relay answers decides the verdict. Whatever the operator can fix (the relay is
down or slow, TLS or STARTTLS is wrong, the credentials are refused, a 4xx at any stage)
is tried again later, so no report is lost to a misconfiguration; a 5xx to the recipient
or to the message itself is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Literal

import aiosmtplib
import structlog

from gateway.domain.outbound import SendResult, SendVerdict
from gateway.domain.privacy import mask_sender

log = structlog.get_logger("channels.email_relay")

RelayTls = Literal["ssl", "starttls", "none"]
DEFAULT_PORTS: dict[str, int] = {"ssl": 465, "starttls": 587, "none": 25}
# The longest detail kept of an accepted message (the queue stores 128 characters of it)
# and of a refusal.
SENT_DETAIL_MAX = 128
ERROR_DETAIL_MAX = 300
# Seconds a polite QUIT may take after the message was accepted.
QUIT_TIMEOUT = 2.0
# What an address on an SMTP command line must not hold (it would end the address or the
# command): whitespace, controls, angle brackets.
_NOT_MAILBOX = re.compile(r"[\s\x00-\x1f\x7f<>]")
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
CRLF = b"\r\n"
# Replies to RCPT TO that are the relay's policy about us, not about the mailbox:
# 530 authentication required (the user is not set) — the operator's to fix.
_RCPT_RETRY_CODES = frozenset({530})


@dataclass(slots=True)
class _Stage:
    """Where the SMTP exchange is, for the detail of what went wrong."""

    name: str = "connect"


class SmtpRelaySender:
    """Sends a rendered email through an SMTP relay (:class:`ChannelSender`).

    ``tls``: ``"ssl"`` is TLS from the first byte (port 465), ``"starttls"`` upgrades a
    plain connection and requires the relay to offer it (587), ``"none"`` is plain text
    (25), with credentials only to a loopback relay. ``timeout`` bounds the whole exchange
    with the relay, connection to QUIT. ``ssl_context`` (default: the system's trusted
    certificates, host name checked) verifies the relay."""

    def __init__(
        self,
        *,
        host: str,
        port: int = 0,
        user: str = "",
        password: str = "",
        tls: RelayTls = "starttls",
        mail_from: str = "",
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if tls not in DEFAULT_PORTS:
            raise ValueError(f"tls must be one of {', '.join(DEFAULT_PORTS)}, not {tls!r}")
        self._host = host
        self._port = port or DEFAULT_PORTS[tls]
        self._user = user
        self._password = password
        self._tls: RelayTls = tls
        self._mail_from = mail_from
        self._timeout = timeout
        self._ssl_context = ssl_context if ssl_context is not None else ssl.create_default_context()

    def __repr__(self) -> str:  # never the password
        return (
            f"SmtpRelaySender(host={self._host!r}, port={self._port}, tls={self._tls!r}, "
            f"user={self._user!r}, mail_from={self._mail_from!r})"
        )

    @property
    def configured(self) -> bool:
        """Whether there is a relay to send through and an address to send from."""
        return bool(self._host and self._mail_from)

    async def send(self, recipient: str, text: str) -> SendResult:
        """Deliver ``text`` (a rendered message) to ``recipient``; never raises."""
        stage = _Stage()
        try:
            result = await self._send(recipient, text, stage)
        except Exception as exc:  # a bug here must not lose the report
            log.exception("email_relay_crashed", stage=stage.name)
            result = SendResult(SendVerdict.RETRY, f"{stage.name}: {type(exc).__name__}")
        if result.verdict is SendVerdict.SENT:
            log.info(
                "email_relay_sent",
                recipient=mask_sender(recipient),
                relay=self._host,
                reply=result.detail,
            )
        else:
            log.warning(
                "email_relay_not_sent",
                recipient=mask_sender(recipient),
                relay=self._host,
                stage=stage.name,
                verdict=result.verdict.value,
                detail=result.detail,
            )
        return result

    async def _send(self, recipient: str, text: str, stage: _Stage) -> SendResult:
        stage.name = "config"
        if not self.configured:
            return SendResult(SendVerdict.RETRY, "email relay is not configured (host, mail_from)")
        if not recipient or _NOT_MAILBOX.search(recipient):
            return SendResult(SendVerdict.FAILED, "not a mailbox address")
        if self._user and self._tls == "none" and not _is_loopback(self._host):
            return SendResult(
                SendVerdict.FAILED,
                f"refusing to send relay credentials in clear text to {self._host} "
                '(tls "none"): use "starttls" or "ssl"',
            )
        utf8 = not (text.isascii() and recipient.isascii() and self._mail_from.isascii())
        data = text.encode("utf-8")

        smtp = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            timeout=self._timeout,
            use_tls=self._tls == "ssl",
            start_tls=False,  # done below, where a relay without it is told apart
            tls_context=self._ssl_context,
        )
        stage.name = "connect"
        try:
            async with asyncio.timeout(self._timeout):
                result = await self._transact(smtp, recipient, data, utf8, stage)
        except aiosmtplib.SMTPResponseException as exc:
            result = _refused(stage.name, exc.code, exc.message)
        except Exception as exc:  # network, timeout, TLS, protocol: all passing troubles
            result = SendResult(SendVerdict.RETRY, _trouble(stage.name, exc))
        if result.verdict is SendVerdict.SENT:
            # Accepted: whatever QUIT brings changes nothing.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(smtp.quit(), min(QUIT_TIMEOUT, self._timeout))
        smtp.close()
        return result

    async def _transact(
        self, smtp: aiosmtplib.SMTP, recipient: str, data: bytes, utf8: bool, stage: _Stage
    ) -> SendResult:
        """Connect, secure, log in and hand over one message; a refusal raises."""
        stage.name = "connect"
        await smtp.connect()
        stage.name = "ehlo"
        await _hello(smtp)
        if self._tls == "starttls":
            stage.name = "starttls"
            if not smtp.supports_extension("starttls"):
                return SendResult(SendVerdict.RETRY, "relay offers no STARTTLS")
            await smtp.starttls()
            stage.name = "ehlo"
            await _hello(smtp)  # what the relay offers over TLS (RFC 3207 4.2)
        if self._user:
            stage.name = "auth"
            if not smtp.supports_extension("auth"):
                return SendResult(SendVerdict.RETRY, "relay offers no AUTH")
            if not smtp.supported_auth_methods:
                offered = " ".join(smtp.server_auth_methods) or "none"
                return SendResult(
                    SendVerdict.RETRY, f"relay offers no AUTH method we speak ({offered})"
                )
            await smtp.login(self._user, self._password)

        stage.name = "mail"
        options: list[str] = []
        if utf8:
            if not smtp.supports_extension("smtputf8"):
                return SendResult(
                    SendVerdict.FAILED, "message is not ASCII and the relay offers no SMTPUTF8"
                )
            options.append("SMTPUTF8")
            if smtp.supports_extension("8bitmime"):
                options.append("BODY=8BITMIME")
        if smtp.supports_extension("size"):
            # RFC 1870: the octets as sent, CRLF line ends; lets the relay refuse early.
            options.insert(0, f"SIZE={len(_LINE_ENDS.sub(CRLF, data))}")
        encoding = "utf-8" if utf8 else "ascii"
        await smtp.mail(self._mail_from, options=options, encoding=encoding)
        stage.name = "rcpt"
        await smtp.rcpt(recipient, encoding=encoding)
        stage.name = "data"
        reply = await smtp.data(data)
        return SendResult(SendVerdict.SENT, _one_line(reply.message, SENT_DETAIL_MAX))


async def _hello(smtp: aiosmtplib.SMTP) -> None:
    """EHLO, or HELO from a relay that knows no ESMTP."""
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError:
        if not smtp.is_connected:
            raise
        await smtp.helo()


def _refused(stage: str, code: int, text: str) -> SendResult:
    """The verdict on a reply other than the one hoped for at ``stage``."""
    detail = _one_line(f"{stage}: {code} {text}", ERROR_DETAIL_MAX)
    if 500 <= code < 600:
        # The mailbox (RCPT TO) or the message (DATA; 552 too large at MAIL FROM, told by
        # SIZE) is refused for good; anything earlier is the relay's setup, or ours.
        if stage == "rcpt" and code not in _RCPT_RETRY_CODES:
            return SendResult(SendVerdict.FAILED, detail)
        if stage == "data" or (stage == "mail" and code == 552):
            return SendResult(SendVerdict.FAILED, detail)
    return SendResult(SendVerdict.RETRY, detail)


def _trouble(stage: str, exc: BaseException) -> str:
    """``connect: ConnectionRefusedError``: the stage and what went wrong, by type, with the
    reason of a DNS or TLS error or of aiosmtplib's own complaint; never an exception's
    message at large (a ValueError names the address it refused, and this detail is logged
    unmasked)."""
    if isinstance(exc, TimeoutError):  # aiosmtplib's, or the whole exchange's deadline
        return f"{stage}: timeout"
    cause = exc
    # aiosmtplib wraps what connecting raised (refused, reset, a TLS handshake error).
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        cause = exc.__cause__ or exc
    detail = f"{stage}: {type(cause).__name__}"
    if isinstance(cause, socket.gaierror) and cause.strerror:  # a host name DNS does not know
        detail += f" ({cause.strerror})"
    elif isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
        detail += f" ({cause.verify_message})"
    elif isinstance(cause, ssl.SSLError) and cause.reason:
        detail += f" ({cause.reason})"
    elif isinstance(exc, aiosmtplib.SMTPException) and cause is exc and stage != "auth":
        detail += f" ({exc.message})"
    return _one_line(detail, ERROR_DETAIL_MAX)


def _one_line(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
