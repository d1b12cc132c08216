"""Mail for the email channel's tests: a real SMTP server (aiosmtpd) standing in for the
supplier's mail relay, catching what the gateway sends, and builders of the mail elders,
strangers and mail daemons send."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import make_msgid

from aiosmtpd.smtp import SMTP, Envelope, Session

ELDER = "elder@example.org"
MAIL_FROM = "pokazaniya@vodokanal.example"


@dataclass
class Caught:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        assert body is not None
        return str(body.get_content()).replace("\r\n", "\n")

    def attachment(self) -> bytes:
        parts = list(self.message.iter_attachments())
        assert len(parts) == 1, parts
        payload = parts[0].get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload


@dataclass
class CatchingRelay:
    """An SMTP relay on 127.0.0.1 that keeps every mail; :meth:`stop` takes it down (the
    port then refuses connections) and :meth:`start` brings it back on the same port."""

    port: int = 0
    caught: list[Caught] = field(default_factory=list)
    answer: str = "250 2.0.0 Ok: queued as TEST"
    _server: asyncio.Server | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content
        assert isinstance(data, bytes)
        async with self._arrived:
            self.caught.append(Caught(envelope.mail_from or "", list(envelope.rcpt_tos), data))
            self._arrived.notify_all()
        return self.answer

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="relay.test", loop=loop), "127.0.0.1", self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Caught]:
        """The mails caught once there are at least ``count``."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.caught) >= count), timeout
            )
        return list(self.caught)


def mail(
    body: str = "",
    *,
    sender: str = ELDER,
    subject: str = "Показания, Пушкинская 10",
    message_id: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    attachments: Sequence[tuple[str, bytes, str]] = (),
    charset: str = "utf-8",
) -> EmailMessage:
    """A mail as an elder's mail program writes it (``attachments``: name, data, MIME
    type), with a Message-ID and a Return-Path (the delivering server's)."""
    message = EmailMessage(policy=policy.SMTP)
    message["Return-Path"] = f"<{sender}>"
    message["From"] = f"Мария Иванова <{sender}>"
    message["To"] = MAIL_FROM
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain="example.org")
    for name, value in headers:
        message[name] = value
    message.set_content(body, charset=charset)
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


def xlsx(rows: Sequence[Sequence[object]]) -> bytes:
    """A workbook with one sheet of ``rows``, as Excel saves it."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
