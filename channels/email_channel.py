"""The email channel: one received mail in, its list run through the intake as the elder,
one report queued back. The transports (:mod:`channels.email_imap`, :mod:`channels.email_smtp`)
hand over raw bytes and mark the mail processed, or answer 250, only after
:meth:`MailChannel.receive` returned: by then its outcome is committed.

What a mail becomes, in this order:

1. a bounce, an auto-reply or mailing-list mail (:func:`~channels.email_safety.may_reply`):
   recorded as ``automatic``, not read, never answered (answering could start a mail loop);
2. a mail over the size limit (only its header was fetched): ``too_large``, answered once a
   day with the limits;
3. ``GATEWAY_EMAIL_AUTHSERV_ID`` set and the From address not shown genuine by the
   receiving server (:func:`~channels.email_safety.authenticated_sender`):
   ``not_authenticated``, not read, not answered (the From may be forged: answering would
   send mail to whoever was impersonated);
4. an address that is no elder's: ``not_authorized``, not read, answered once a day with
   how to become an elder;
5. an elder's mail: its text, CSV and XLSX attachments read into one list
   (:mod:`channels.email_content`), run through the intake's list entry point as that
   elder, and one report queued for the elder (In-Reply-To, References, Auto-Submitted).

A redelivery of the same mail (its Message-ID, or without one a digest of its bytes) is
recognised at each step: a list is answered from what was stored and gets no second report.
:class:`~gateway.domain.errors.StorageUnavailable` propagates: the transport must then leave
the mail for later (IMAP) or answer 451 (SMTP) so nothing is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import format_datetime, make_msgid

import structlog

from channels.email_content import body_of, content_of, parse_bytes, size_text
from channels.email_safety import (
    authenticated_sender,
    from_address,
    header_text,
    may_reply,
    parse_path,
)
from gateway.domain.errors import ErrorCode, StorageUnavailable
from gateway.domain.lists import REPORT_KIND
from gateway.domain.model import InboundMessage
from gateway.domain.outbound import ChannelSender, SendResult
from gateway.domain.outcome import Outcome, OutcomeError, Status
from gateway.domain.ports import ListReporter, MailDesk, Notify, OnList
from gateway.domain.privacy import mask_sender
from gateway.domain.store import Outbound

log = structlog.get_logger("channels.email")

CHANNEL = "email"
# The external id column holds 128 characters: a longer Message-ID is kept as a digest.
_MAX_ID = 128

STRANGER_TEXT = (
    "Здравствуйте!\n\n"
    "Ваше письмо получено, но адрес {address} не записан у поставщика как адрес старшего "
    "по дому, поэтому показания из письма не приняты.\n\n"
    "Чтобы передавать показания дома одним письмом, попросите поставщика записать ваш "
    "адрес старшим по дому (назовите адрес дома). Жильцы могут передавать показания и "
    "сами — по SMS или через Telegram-бот.\n\n"
    "Это письмо отправлено автоматически; такой ответ приходит не чаще раза в день.\n"
)
TOO_LARGE_TEXT = (
    "Здравствуйте!\n\n"
    "Ваше письмо больше {message_limit}, поэтому его не удалось прочитать, и показания из "
    "него не приняты.\n\n"
    "Пришлите список текстом письма или файлом CSV или XLSX (Excel) до {attachment_limit}; "
    "фотографии и сканы не прикладывайте.\n\n"
    "Это письмо отправлено автоматически; такой ответ приходит не чаще раза в день.\n"
)


@dataclass(frozen=True, slots=True)
class MailRules:
    """The channel's settings: the reply address, the limits, the trusted authserv-id."""

    mail_from: str
    max_message_bytes: int
    max_attachment_bytes: int
    authserv_id: str = ""


class MailChannel:
    """Turns one received mail into records and at most one answer (see the module)."""

    def __init__(
        self,
        rules: MailRules,
        *,
        on_list: OnList,
        desk: MailDesk,
        report: ListReporter,
        clock: Callable[[], datetime],
        notify: Notify | None = None,
    ) -> None:
        """``notify`` sends queued answers at once (else the outbound loop sends them)."""
        self._rules = rules
        self._on_list = on_list
        self._desk = desk
        self._report = report
        self._clock = clock
        self._notify = notify
        self._sending: set[asyncio.Task[None]] = set()

    async def receive(
        self, raw: bytes, *, envelope_from: str | None = None, truncated: bool = False
    ) -> None:
        """Handle one mail; its outcome is committed when this returns. ``envelope_from``
        is SMTP's ``MAIL FROM`` (None for mail fetched from a box); ``truncated``: only
        the header was fetched, the mail being over the size limit. Raises
        :class:`StorageUnavailable` when nothing could be stored: hand it over again later."""
        try:
            await self._receive(raw, envelope_from, truncated or len(raw) > self._max_bytes)
        except StorageUnavailable:
            raise
        except Exception:  # a mail no rule foresaw: recorded as failed, never a crash loop
            log.exception("mail_failed", size=len(raw))
            await self._record_failure(raw, envelope_from)

    async def aclose(self) -> None:
        """Wait for the answers being sent now (they stay queued if this is cancelled)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    @property
    def _max_bytes(self) -> int:
        return self._rules.max_message_bytes

    async def _receive(self, raw: bytes, envelope_from: str | None, too_large: bool) -> None:
        if too_large:
            message: Message = BytesHeaderParser(policy=policy.default).parsebytes(raw)
        else:
            message = await asyncio.to_thread(parse_bytes, raw)
        address = (from_address(message) or "").lower()
        inbound = InboundMessage(
            channel=CHANNEL,
            sender=address or _envelope(envelope_from),
            text="",
            received_at=self._clock(),
            external_id=_external_id(message, raw),
        )
        fields = {"sender": mask_sender(inbound.sender), "size": len(raw)}

        replyable, why = may_reply(message, envelope_from=envelope_from)
        if not replyable:
            log.info("mail_automatic", reason=why, **fields)
            await self._refuse(inbound, message, ErrorCode.AUTOMATIC, why)
            return
        genuine, why = authenticated_sender(message, self._rules.authserv_id or None)
        if too_large:
            log.info("mail_too_large", limit=self._max_bytes, **fields)
            text = TOO_LARGE_TEXT.format(
                message_limit=size_text(self._max_bytes),
                attachment_limit=size_text(self._rules.max_attachment_bytes),
            )
            answer = self._answer(message, address, "too_large", text) if genuine else None
            await self._refuse(inbound, message, ErrorCode.TOO_LARGE, "too large", answer)
            return
        if not genuine:
            log.warning("mail_not_authenticated", reason=why, **fields)
            await self._refuse(inbound, message, ErrorCode.NOT_AUTHENTICATED, why)
            return
        if not await self._desk.is_elder(address):
            log.info("mail_from_stranger", **fields)
            answer = self._answer(
                message, address, "elder_howto", STRANGER_TEXT.format(address=address)
            )
            await self._refuse(inbound, message, ErrorCode.NOT_AUTHORIZED, "no elder", answer)
            return
        await self._list(inbound, message, address)

    async def _list(self, inbound: InboundMessage, message: Message, address: str) -> None:
        assert isinstance(message, EmailMessage)
        limit = self._rules.max_attachment_bytes
        content = await asyncio.to_thread(content_of, message, max_attachment_bytes=limit)
        inbound = InboundMessage(
            inbound.channel, inbound.sender, content.text, inbound.received_at, inbound.external_id
        )
        result = await self._on_list.handle_list(inbound)
        if result.rate_limited:
            log.info("mail_rate_limited", sender=mask_sender(address))
            return

        def compose() -> str:
            report = self._report(
                result, subject=content.subject, notes=content.notes(), locate=content.locate
            )
            return self._reply(
                message, address, report.text, (report.table_name, report.table)
            ).as_string(policy=policy.SMTP)

        text = await asyncio.to_thread(compose)
        ids = await self._desk.report(
            Outbound(CHANNEL, address, text, REPORT_KIND, result.message_id)
        )
        log.info(
            "mail_list_reported",
            sender=mask_sender(address),
            lines=len(result.lines),
            queued=bool(ids),
            ignored_attachments=len(content.ignored),
        )
        self._send(ids)

    async def _refuse(
        self,
        inbound: InboundMessage,
        message: Message,
        code: ErrorCode,
        why: str,
        answer: tuple[Outbound, str] | None = None,
    ) -> None:
        """Record a mail that is not read as a list (its text: the body, for the audit),
        with the answer's text as its reply."""
        reply = None if answer is None else answer[1]
        body = ""
        if code is not ErrorCode.TOO_LARGE and isinstance(message, EmailMessage):
            body = await asyncio.to_thread(body_of, message)
        outcome = Outcome(Status.REJECTED, None, reply, error=OutcomeError(code.value, why))
        recorded = InboundMessage(
            inbound.channel, inbound.sender, body, inbound.received_at, inbound.external_id
        )
        self._send(await self._desk.refuse(recorded, outcome, answer and answer[0]))

    async def _record_failure(self, raw: bytes, envelope_from: str | None) -> None:
        """The audit row of a mail whose handling failed, without the external id, so a
        redelivery is handled afresh once the cause is fixed."""
        try:
            message = BytesHeaderParser(policy=policy.default).parsebytes(raw)
            sender = (from_address(message) or "").lower()
        except Exception:
            sender = ""
        failed = InboundMessage(
            CHANNEL, sender or _envelope(envelope_from), "", self._clock(), None
        )
        outcome = Outcome(
            Status.REJECTED, None, None, error=OutcomeError(ErrorCode.INTERNAL.value, "internal")
        )
        await self._desk.refuse(failed, outcome, None)

    def _answer(
        self, original: Message, address: str, kind: str, text: str
    ) -> tuple[Outbound, str]:
        """An answer of ``kind`` to queue, and its text."""
        reply = self._reply(original, address, text, None).as_string(policy=policy.SMTP)
        return Outbound(CHANNEL, address, reply, kind), text

    def _reply(
        self,
        original: Message,
        address: str,
        text: str,
        attachment: tuple[str, bytes] | None,
    ) -> EmailMessage:
        """An automatic reply to ``original`` (RFC 3834: Auto-Submitted, threaded by
        In-Reply-To and References), plain text with an optional CSV attachment."""
        subject = header_text(original, "Subject") or ""
        subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
        reply = new_mail(self._rules.mail_from, address, subject, self._clock())
        original_id = header_text(original, "Message-ID")
        if original_id:
            reply["In-Reply-To"] = original_id
            references = header_text(original, "References") or ""
            reply["References"] = f"{references} {original_id}".strip()
        reply.replace_header("Auto-Submitted", "auto-replied")
        reply.set_content(text, cte="base64")
        if attachment is not None:
            name, data = attachment
            reply.add_attachment(data, maintype="text", subtype="csv", filename=name)
        return reply

    def _send(self, ids: list[int]) -> None:
        """Send the queued answers now, without holding the mail's transport for it."""
        if not ids or self._notify is None:
            return
        task = asyncio.create_task(self._notify_quietly(ids))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _notify_quietly(self, ids: list[int]) -> None:
        assert self._notify is not None
        try:
            await self._notify(ids)
        except Exception:  # still queued: the outbound loop sends it
            log.exception("mail_answer_not_sent_now", ids=ids)


def new_mail(mail_from: str, to: str, subject: str, now: datetime) -> EmailMessage:
    """The headers of a mail the gateway sends on its own (``Auto-Submitted:
    auto-generated``; an answer replaces it with ``auto-replied``). ``MIME-Version`` comes
    first: an outbound row that begins with it is a complete mail (:class:`MailOutbox`)."""
    mail = EmailMessage(policy=policy.SMTP)
    mail["MIME-Version"] = "1.0"
    mail["From"] = mail_from
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = format_datetime(now)
    domain = mail_from.rpartition("@")[2].strip("> ") or None
    mail["Message-ID"] = make_msgid("gateway", domain=domain)
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Auto-Response-Suppress"] = "All"  # Exchange: no out-of-office answers to it
    return mail


COMPLETE_MAIL = "MIME-Version:"
NOTICE_SUBJECT = "Приём показаний счётчиков"


class MailOutbox:
    """The email channel's :class:`~gateway.domain.outbound.ChannelSender`: a queued row is
    either a complete mail the channel composed (a report, an answer: it begins with
    ``MIME-Version:``) or the plain text of a notice queued by the rest of the gateway (an
    operator's review decision), which is sent as a mail of its own."""

    def __init__(self, relay: ChannelSender, mail_from: str, clock: Callable[[], datetime]) -> None:
        self._relay = relay
        self._mail_from = mail_from
        self._clock = clock

    async def send(self, recipient: str, text: str) -> SendResult:
        if not text.startswith(COMPLETE_MAIL):
            mail = new_mail(self._mail_from, recipient, NOTICE_SUBJECT, self._clock())
            mail.set_content(text + "\n", cte="base64")
            text = mail.as_string(policy=policy.SMTP)
        return await self._relay.send(recipient, text)


def _external_id(message: Message, raw: bytes) -> str:
    """The mail's identity across deliveries: its Message-ID, or a digest of its bytes."""
    message_id = header_text(message, "Message-ID")
    if message_id:
        message_id = message_id.strip()
        if len(message_id) <= _MAX_ID:
            return message_id
        return "sha256:" + hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _envelope(envelope_from: str | None) -> str:
    """The SMTP envelope sender's address, lower-cased (``""`` for a bounce or none)."""
    return parse_path(envelope_from or "").lower()
