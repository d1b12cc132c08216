"""The SMTP relay sender against a real SMTP server (aiosmtpd) on the test's own loop:
plain, STARTTLS and implicit TLS, authentication, refusals at each stage, a relay that is
down or silent, and what the sender refuses to do."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import time
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from channels.email_relay import SmtpRelaySender
from gateway.domain.outbound import SendVerdict
from tests.tls import Certificate

HOST = "127.0.0.1"
MAIL_FROM = "gateway@supplier.test"
RECIPIENT = "elder@example.org"
USER = "relay-user"
PASSWORD = "s3cret-Pa55"


# --- the server -------------------------------------------------------------------------


@dataclass
class Delivered:
    mail_from: str | None
    rcpt_tos: list[str]
    mail_options: list[str]
    content: bytes
    login: bytes | None
    tls: bool


@dataclass
class Relay:
    """An aiosmtpd handler that records what it took, and answers MAIL FROM, RCPT TO and
    DATA with the replies set on it (``None``: accept)."""

    mail_reply: str | None = None
    rcpt_reply: str | None = None
    data_reply: str | None = None
    queued_as: str = "2.0.0 Ok: queued as ABC123"
    delivered: list[Delivered] = field(default_factory=list)
    logins: list[tuple[bytes, bool]] = field(default_factory=list)
    connections: int = 0

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        assert server.transport is not None
        self.delivered.append(
            Delivered(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                mail_options=list(envelope.mail_options),
                content=envelope.original_content or b"",
                login=login,
                tls=server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return f"250 {self.queued_as}"

    def authenticator(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        assert server.transport is not None
        tls = server.transport.get_extra_info("ssl_object") is not None
        self.logins.append((data.login if isinstance(data, LoginPassword) else b"", tls))
        # handled=False: aiosmtpd answers 535 itself (the default, True, answers nothing).
        return AuthResult(success=ok, handled=False, auth_data=data)


@asynccontextmanager
async def smtp_server(
    relay: Relay, *, ssl_context: ssl.SSLContext | None = None, **smtp: Any
) -> AsyncIterator[int]:
    """aiosmtpd on 127.0.0.1 and a free port (its number yielded); ``ssl_context``: implicit
    TLS; ``smtp``: aiosmtpd.smtp.SMTP's options."""
    loop = asyncio.get_running_loop()
    smtp.setdefault("hostname", "relay.test")

    def accept() -> SMTPServer:
        relay.connections += 1
        return SMTPServer(relay, loop=loop, **smtp)

    server = await loop.create_server(accept, HOST, 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def free_port() -> int:
    """A port nothing listens on (bound, then let go)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def report(body: str = "Your list was read.\n.a line that starts with a dot\nBye.\n") -> str:
    message = EmailMessage()
    message["From"] = f"Meter gateway <{MAIL_FROM}>"
    message["To"] = RECIPIENT
    message["Subject"] = "Re: readings for building 7"
    message["Message-ID"] = "<report-1@supplier.test>"
    message.set_content(body)
    return message.as_string(policy=email.policy.SMTP)


def sender(port: int, **options: Any) -> SmtpRelaySender:
    options.setdefault("tls", "none")
    options.setdefault("timeout", 5.0)
    return SmtpRelaySender(host=HOST, port=port, mail_from=MAIL_FROM, **options)


def same_message(content: bytes, text: str) -> None:
    got = email.message_from_bytes(content, policy=email.policy.default)
    want = email.message_from_string(text, policy=email.policy.default)
    assert got.items() == want.items()
    assert got.get_content() == want.get_content()


# --- delivery ---------------------------------------------------------------------------


async def test_plain_delivery_hands_over_the_envelope_and_the_message_as_rendered() -> None:
    relay = Relay()
    text = report()
    async with smtp_server(relay) as port:
        result = await sender(port).send(RECIPIENT, text)

    assert result.verdict is SendVerdict.SENT
    assert result.detail == "2.0.0 Ok: queued as ABC123"
    [got] = relay.delivered
    assert got.mail_from == MAIL_FROM
    assert got.rcpt_tos == [RECIPIENT]
    assert got.content == text.encode("ascii")  # dot-stuffing undone, CRLFs as rendered
    same_message(got.content, text)
    assert got.login is None and not got.tls
    assert not any(o.upper().startswith("SMTPUTF8") for o in got.mail_options)


async def test_the_servers_final_reply_is_the_detail_trimmed_to_128_characters() -> None:
    relay = Relay(queued_as="2.0.0 Ok: queued as " + "Q" * 300)
    async with smtp_server(relay) as port:
        result = await sender(port).send(RECIPIENT, report())
    assert result.verdict is SendVerdict.SENT
    assert result.detail.startswith("2.0.0 Ok: queued as QQQ")
    assert len(result.detail) == 128


async def test_starttls_with_login_delivers_over_tls(certificate: Certificate) -> None:
    relay = Relay()
    text = report()
    async with smtp_server(
        relay,
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=relay.authenticator,
        auth_require_tls=True,
    ) as port:
        result = await sender(
            port,
            tls="starttls",
            user=USER,
            password=PASSWORD,
            ssl_context=certificate.client_context(),
        ).send(RECIPIENT, text)

    assert result.verdict is SendVerdict.SENT, result.detail
    [got] = relay.delivered
    assert got.tls
    assert got.login == USER.encode()
    assert relay.logins == [(USER.encode(), True)]  # logged in once, over TLS
    same_message(got.content, text)


async def test_a_wrong_password_is_tried_again_and_never_shown(
    certificate: Certificate, logs: list[MutableMapping[str, Any]]
) -> None:
    relay = Relay()
    async with smtp_server(
        relay,
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=relay.authenticator,
    ) as port:
        result = await sender(
            port,
            tls="starttls",
            user=USER,
            password="wrong-" + PASSWORD,
            ssl_context=certificate.client_context(),
        ).send(RECIPIENT, report(body="secret meter readings\n"))

    assert result.verdict is SendVerdict.RETRY
    assert result.detail.startswith("auth: 535"), result.detail
    assert relay.logins and not relay.delivered
    seen = repr(logs) + result.detail
    assert logs, "the refusal is logged"
    for secret in (PASSWORD, "secret meter readings", RECIPIENT):
        assert secret not in seen
    assert "e***@example.org" in repr(logs)


async def test_a_certificate_the_sender_does_not_trust_is_tried_again(
    certificate: Certificate,
) -> None:
    relay = Relay()
    async with smtp_server(relay, tls_context=certificate.server_context()) as port:
        # The system's trusted certificates: the self-signed one is not among them.
        result = await sender(port, tls="starttls").send(RECIPIENT, report())
    assert result.verdict is SendVerdict.RETRY
    assert result.detail.startswith("starttls: SSLCertVerificationError"), result.detail
    assert not relay.delivered


async def test_implicit_tls_delivers(certificate: Certificate) -> None:
    relay = Relay()
    text = report()
    # aiosmtpd does not count implicit TLS as TLS for AUTH: it is told not to insist.
    async with smtp_server(
        relay,
        ssl_context=certificate.server_context(),
        authenticator=relay.authenticator,
        auth_require_tls=False,
    ) as port:
        result = await sender(
            port,
            tls="ssl",
            user=USER,
            password=PASSWORD,
            ssl_context=certificate.client_context(),
        ).send(RECIPIENT, text)

    assert result.verdict is SendVerdict.SENT, result.detail
    [got] = relay.delivered
    assert got.tls and got.login == USER.encode()
    same_message(got.content, text)


async def test_implicit_tls_to_a_plain_server_is_tried_again(certificate: Certificate) -> None:
    relay = Relay()
    async with smtp_server(relay) as port:
        started = time.monotonic()
        result = await sender(
            port, tls="ssl", ssl_context=certificate.client_context(), timeout=2.0
        ).send(RECIPIENT, report())
    assert result.verdict is SendVerdict.RETRY
    assert result.detail.startswith("connect: "), result.detail
    assert time.monotonic() - started < 2.5
    assert not relay.delivered


async def test_a_non_ascii_message_goes_with_smtputf8_when_the_relay_offers_it() -> None:
    relay = Relay()
    text = report().replace("Your list was read.", "Показания приняты.")
    async with smtp_server(relay, enable_SMTPUTF8=True) as port:
        result = await sender(port).send(RECIPIENT, text)
    assert result.verdict is SendVerdict.SENT, result.detail
    [got] = relay.delivered
    assert "SMTPUTF8" in [o.upper() for o in got.mail_options]
    assert got.content == text.encode("utf-8")


async def test_a_non_ascii_message_fails_when_the_relay_offers_no_smtputf8() -> None:
    relay = Relay()
    text = report().replace("Your list was read.", "Показания приняты.")
    async with smtp_server(relay) as port:
        result = await sender(port).send(RECIPIENT, text)
    assert result.verdict is SendVerdict.FAILED
    assert "SMTPUTF8" in result.detail
    assert not relay.delivered


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "reply", "verdict"),
    [
        ("rcpt", "550 5.1.1 no such user", SendVerdict.FAILED),
        ("rcpt", "551 5.1.6 user not local", SendVerdict.FAILED),
        ("rcpt", "553 5.1.3 bad address syntax", SendVerdict.FAILED),
        ("rcpt", "451 4.3.0 try again", SendVerdict.RETRY),
        ("rcpt", "530 5.7.0 authentication required", SendVerdict.RETRY),
        ("data", "552 5.3.4 message too large", SendVerdict.FAILED),
        ("data", "554 5.7.1 message rejected", SendVerdict.FAILED),
        ("data", "451 4.7.1 greylisted", SendVerdict.RETRY),
        ("mail", "553 5.7.1 sender not owned by user", SendVerdict.RETRY),
        ("mail", "421 4.3.2 shutting down", SendVerdict.RETRY),
    ],
)
async def test_a_refusal_is_final_or_not_by_its_code_and_stage(
    stage: str, reply: str, verdict: SendVerdict
) -> None:
    relay = Relay()
    setattr(relay, f"{stage}_reply", reply)
    async with smtp_server(relay) as port:
        result = await sender(port).send(RECIPIENT, report())
    assert result.verdict is verdict
    assert result.detail == f"{stage}: {reply}"
    assert not relay.delivered


async def test_a_message_over_the_announced_size_fails_at_mail_from() -> None:
    relay = Relay()
    async with smtp_server(relay, data_size_limit=200) as port:
        result = await sender(port).send(RECIPIENT, report())
    assert result.verdict is SendVerdict.FAILED
    assert result.detail.startswith("mail: 552"), result.detail


async def test_a_relay_without_starttls_is_a_misconfiguration_tried_again() -> None:
    relay = Relay()
    async with smtp_server(relay) as port:  # no tls_context: no STARTTLS offered
        result = await sender(port, tls="starttls", user=USER, password=PASSWORD).send(
            RECIPIENT, report()
        )
    assert result == type(result)(SendVerdict.RETRY, "relay offers no STARTTLS")
    assert relay.connections == 1 and not relay.logins and not relay.delivered


async def test_credentials_in_clear_text_to_a_remote_host_fail_without_connecting() -> None:
    remote = SmtpRelaySender(
        host="192.0.2.1",  # TEST-NET-1: connecting would hang until the timeout
        port=25,
        tls="none",
        user=USER,
        password=PASSWORD,
        mail_from=MAIL_FROM,
        timeout=10.0,
    )
    started = time.monotonic()
    result = await remote.send(RECIPIENT, report())
    assert time.monotonic() - started < 0.1
    assert result.verdict is SendVerdict.FAILED
    assert "clear text" in result.detail and "192.0.2.1" in result.detail
    assert PASSWORD not in result.detail and PASSWORD not in repr(remote)


async def test_credentials_in_clear_text_to_a_loopback_relay_are_allowed() -> None:
    relay = Relay()
    async with smtp_server(
        relay, authenticator=relay.authenticator, auth_require_tls=False
    ) as port:
        result = await sender(port, user=USER, password=PASSWORD).send(RECIPIENT, report())
    assert result.verdict is SendVerdict.SENT, result.detail
    assert relay.logins == [(USER.encode(), False)]


# --- a relay that is down or silent -----------------------------------------------------


async def test_a_relay_that_is_down_is_tried_again_at_once() -> None:
    port = free_port()
    started = time.monotonic()
    result = await sender(port, timeout=5.0).send(RECIPIENT, report())
    assert time.monotonic() - started < 1.0
    assert result.verdict is SendVerdict.RETRY
    assert result.detail == "connect: ConnectionRefusedError"


@asynccontextmanager
async def raw_server(
    on_connect: Any,
) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(loop.create_task(on_connect(reader, writer)))

    server = await asyncio.start_server(accepted, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.close()
        await server.wait_closed()


async def test_a_relay_that_never_answers_is_given_up_on_within_the_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            writer.close()

    async with raw_server(silent) as port:
        started = time.monotonic()
        result = await sender(port, timeout=0.5).send(RECIPIENT, report())
        elapsed = time.monotonic() - started
    assert result.verdict is SendVerdict.RETRY
    assert result.detail == "connect: timeout"
    assert 0.4 < elapsed < 2.0


async def test_the_timeout_bounds_the_whole_exchange_not_each_reply() -> None:
    """Every reply comes within the timeout, yet the exchange as a whole does not."""

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 slow.test ESMTP\r\n")
            while line := await reader.readline():
                await asyncio.sleep(0.3)
                command = line[:4].upper()
                if command == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                writer.write(b"354 go on\r\n" if command == b"DATA" else b"250 ok\r\n")
                await writer.drain()
        finally:
            writer.close()

    async with raw_server(slow) as port:
        started = time.monotonic()
        result = await sender(port, timeout=0.8).send(RECIPIENT, report())
        elapsed = time.monotonic() - started
    assert result.verdict is SendVerdict.RETRY
    assert result.detail.endswith(": timeout"), result.detail
    assert elapsed < 1.5


# --- configuration ----------------------------------------------------------------------


def test_default_ports_and_configured() -> None:
    assert SmtpRelaySender(host="h", tls="ssl")._port == 465
    assert SmtpRelaySender(host="h", tls="starttls")._port == 587
    assert SmtpRelaySender(host="h", tls="none")._port == 25
    assert SmtpRelaySender(host="h", port=2525)._port == 2525
    assert not SmtpRelaySender(host="h").configured
    assert not SmtpRelaySender(host="", mail_from=MAIL_FROM).configured
    assert SmtpRelaySender(host="h", mail_from=MAIL_FROM).configured


async def test_an_unconfigured_sender_keeps_the_message_for_later() -> None:
    result = await SmtpRelaySender(host="").send(RECIPIENT, report())
    assert result.verdict is SendVerdict.RETRY
    assert "not configured" in result.detail


async def test_a_recipient_that_is_no_mailbox_fails_without_connecting() -> None:
    port = free_port()  # nothing listens: a connection attempt would say so
    for bad in ("", "a@b.test\r\nRCPT TO:<x@y.test>", "<a@b.test>", "a b@c.test"):
        result = await sender(port).send(bad, report())
        assert result.verdict is SendVerdict.FAILED, bad
        assert result.detail == "not a mailbox address"
