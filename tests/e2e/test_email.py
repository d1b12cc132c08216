"""The email channel end to end, on SQLite and PostgreSQL: mail delivered over real SMTP to
the gateway's receiver (aiosmtpd) or fetched from a real Dovecot mailbox, its list run
through the intake as the elder, and the report caught by a real SMTP relay."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, replace
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from channels.email_imap import ImapConfig, ImapPoller
from channels.email_smtp import SmtpReceiver
from gateway.bootstrap import Gateway, gateway
from gateway.domain.errors import StorageUnavailable
from gateway.registry import import_file
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, load_registry, loopback, select_rows
from tests.dovecot import Dovecot, dovecot_fixture  # noqa: F401
from tests.fake_mail import ELDER, MAIL_FROM, CatchingRelay, Caught, mail, xlsx

LIST = """Добрый день! Показания по дому 10, Пушкинская.

1. кв. 1 — 1234567890 12345 6789
2) кв 2: 1234567891 4600
№3 квартира 3, 1234567892 121 99
4. 0012345678 999990 311
5. кв. 1 — 1234567890 1.2.3

С уважением, Иванова М.И.
"""
AUTHSERV = "mx.vodokanal.example"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ELDERS = f"email,building\n{ELDER},b1\n"


@dataclass
class Mail:
    gw: Gateway
    relay: CatchingRelay
    receiver: SmtpReceiver

    async def deliver(self, message: EmailMessage | bytes, sender: str = ELDER) -> str:
        """Deliver over SMTP as a mail server would; the final reply to DATA."""
        raw = message if isinstance(message, bytes) else message.as_bytes(policy=policy.SMTP)
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.receiver.port, timeout=30)
        async with client:
            await client.ehlo()
            await client.mail(sender)
            await client.rcpt(MAIL_FROM)
            try:
                response = await client.data(raw)
            except aiosmtplib.SMTPResponseException as exc:
                return f"{exc.code} {exc.message}"
        return f"{response.code} {response.message}"

    async def messages(self) -> list[dict[str, object]]:
        return [
            row for row in await select_rows(self.gw.db, t.messages) if row["channel"] == "email"
        ]


WAYS = ["smtp", "imap"]


async def arrive(box: Mail, dovecot: Dovecot, way: str, message: EmailMessage) -> None:
    """Deliver ``message`` over SMTP, or into the mailbox and let the poller fetch it."""
    if way == "smtp":
        assert (await box.deliver(message)).startswith("250")
        return
    await dovecot.append(message.as_bytes(policy=policy.SMTP))
    assert await poller(dovecot, box.gw).run_once() == 1
    assert await dovecot.uids() == []  # marked processed: moved to the done folder


def mail_settings(settings: Settings, relay: CatchingRelay, **extra: object) -> Settings:
    return replace(
        settings,
        mail_relay_host="127.0.0.1",
        mail_relay_port=relay.port,
        mail_relay_tls="none",
        mail_from=f"Приём показаний <{MAIL_FROM}>",
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
async def relay() -> AsyncIterator[CatchingRelay]:
    server = CatchingRelay()
    await server.start()
    yield server
    await server.stop()


async def add_elders(
    gw: Gateway, folder: Path, text: str = f"email,building\n{ELDER},b1\n"
) -> None:
    path = folder / "elders.csv"
    path.write_text(text, encoding="utf-8")
    assert (await import_file(gw.db, "elders", path)).errors == []


@pytest.fixture
async def box(
    settings: Settings,
    relay: CatchingRelay,
    clock: Clock,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Mail]:
    extra = getattr(request, "param", {})
    async with gateway(mail_settings(settings, relay, **extra), clock) as gw:
        await load_registry(gw, tmp_path)
        await add_elders(gw, tmp_path)
        receiver = SmtpReceiver("127.0.0.1:0", gw.settings.smtp_max_bytes, gw.mail.receive)
        await receiver.start()
        try:
            yield Mail(gw, relay, receiver)
        finally:
            await receiver.stop()
            await gw.mail.aclose()


def table(caught: Caught) -> list[list[str]]:
    data = caught.attachment()
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 with a byte-order mark, for Excel"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))


@pytest.mark.parametrize("way", WAYS)
async def test_a_list_in_the_body_is_stored_and_reported_line_by_line(
    box: Mail, dovecot: Dovecot, way: str
) -> None:
    original = mail(LIST, headers=[("References", "<earlier@example.org>")])

    await arrive(box, dovecot, way, original)

    (report,) = await box.relay.wait_for(1)
    assert report.rcpt_tos == [ELDER]
    assert report.mail_from == MAIL_FROM
    reply = report.message
    assert reply["To"] == ELDER
    assert reply["In-Reply-To"] == original["Message-ID"]
    references = reply["References"].split()  # a long header is folded
    assert references == ["<earlier@example.org>", original["Message-ID"]]
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["Subject"] == "Re: Показания, Пушкинская 10"
    text = report.text
    assert "Строк с показаниями: 5. Принято: 3, уже были приняты раньше: 0" in text
    assert "не принято: 2" in text
    # The charge of each account the list confirmed (1234567890: 345×6.80 + 289×3.45 + 100).
    assert "• ЛС 1234567890: 3443,05 ₽ (с долгом 100,00 ₽)" in text
    assert "• ЛС 1234567891: 507,97 ₽\n" in text  # 79 × 6.43
    # Every rejected line: its number, the line as written and why.
    assert re.search(
        r"• строка 6 \(текст письма, строка 6\): «4\. 0012345678 999990 311» — .+", text
    )
    assert re.search(r"• строка 7 .*«5\. кв\. 1 — 1234567890 1\.2\.3» — .+", text)

    rows = table(report)
    assert rows[0][:5] == ["строка", "файл", "строка в файле", "текст строки", "итог"]
    assert [(r[0], r[4], r[5], r[6]) for r in rows[1:]] == [
        ("3", "принято", "", "1234567890"),
        ("4", "принято", "", "1234567891"),
        ("5", "принято", "", "1234567892"),
        ("6", "не принято", "not_authorized", "0012345678"),
        ("7", "не принято", "unparseable", "1234567890"),
    ]
    assert rows[1][7] == "3443,05"

    (row,) = await box.messages()
    assert row["sender"] == ELDER and row["external_id"] == original["Message-ID"]
    readings = await select_rows(box.gw.db, t.readings)
    assert sorted({r["message_id"] for r in readings}) == [row["id"]]
    assert len(readings) == 5  # day, night, single, kitchen, bath


@pytest.mark.parametrize("way", WAYS)
async def test_the_same_mail_delivered_twice_is_stored_and_reported_once(
    box: Mail, dovecot: Dovecot, way: str
) -> None:
    original = mail(LIST)
    await arrive(box, dovecot, way, original)
    await box.relay.wait_for(1)

    await arrive(box, dovecot, way, original)
    await box.gw.outbound.run_once()
    await asyncio.sleep(0.2)

    assert len(box.relay.caught) == 1
    assert len(await box.messages()) == 1
    assert len(await select_rows(box.gw.db, t.readings)) == 5


@pytest.mark.parametrize("way", WAYS)
async def test_a_csv_attachment_in_windows_1251_is_read(
    box: Mail, dovecot: Dovecot, way: str
) -> None:
    data = "Квартира;Лицевой счёт;День;Ночь\n1;1234567890;12345;6789\n2;1234567891;4600;\n"
    original = mail(
        "Показания во вложении.",
        attachments=[("показания.csv", data.encode("cp1251"), "text/csv")],
    )

    await arrive(box, dovecot, way, original)

    (report,) = await box.relay.wait_for(1)
    rows = table(report)
    assert [(r[1], r[2], r[4], r[6]) for r in rows[1:]] == [
        ("показания.csv", "2", "принято", "1234567890"),
        ("показания.csv", "3", "принято", "1234567891"),
    ]
    assert "Принято: 2" in report.text


@pytest.mark.parametrize("way", WAYS)
async def test_an_xlsx_attachment_is_read_and_other_attachments_are_named(
    box: Mail, dovecot: Dovecot, way: str
) -> None:
    book = xlsx([["кв.", "ЛС", "Кухня", "Ванная"], [3, "1234567892", 121, 99]])
    original = mail(
        "",
        attachments=[
            ("дом10.xlsx", book, XLSX_TYPE),
            ("фото счётчика.jpg", b"\xff\xd8\xff\xe0 not really a photo", "image/jpeg"),
        ],
    )

    await arrive(box, dovecot, way, original)

    (report,) = await box.relay.wait_for(1)
    assert "Принято: 1" in report.text
    assert "Не прочитаны вложения:\n• фото счётчика.jpg — " in report.text
    readings = await select_rows(box.gw.db, t.readings)
    assert sorted(str(r["value"]) for r in readings) == ["121", "99"]


async def test_a_stranger_is_recorded_not_read_and_answered_once_a_day(
    box: Mail, clock: Clock
) -> None:
    stranger = "neighbour@example.net"
    assert (await box.deliver(mail(LIST, sender=stranger), stranger)).startswith("250")
    (answer,) = await box.relay.wait_for(1)
    assert answer.rcpt_tos == [stranger]
    assert "не записан у поставщика как адрес старшего по дому" in answer.text
    assert answer.message["Auto-Submitted"] == "auto-replied"

    clock.advance(hours=1)
    assert (await box.deliver(mail(LIST, sender=stranger), stranger)).startswith("250")
    clock.advance(days=1)
    assert (await box.deliver(mail(LIST, sender=stranger), stranger)).startswith("250")
    await box.relay.wait_for(2)
    await asyncio.sleep(0.2)

    assert len(box.relay.caught) == 2  # the first day's, and the next day's
    rows = await box.messages()
    assert [r["error_code"] for r in rows] == ["not_authorized"] * 3
    assert [r["reply"] is not None for r in rows] == [True, False, True]
    assert await select_rows(box.gw.db, t.readings) == []


@pytest.mark.parametrize("box", [{"email_authserv_id": AUTHSERV}], indirect=True)
async def test_forged_authentication_results_from_another_server_are_not_believed(
    box: Mail,
) -> None:
    forged = mail(
        LIST,
        headers=[
            ("Authentication-Results", "mx.evil.example; dmarc=pass header.from=example.org"),
            ("Authentication-Results", f"{AUTHSERV}; dkim=fail header.d=example.org"),
        ],
    )
    assert (await box.deliver(forged)).startswith("250")
    genuine = mail(
        LIST,
        headers=[("Authentication-Results", f"{AUTHSERV}; dkim=pass header.d=example.org")],
    )
    assert (await box.deliver(genuine)).startswith("250")

    (report,) = await box.relay.wait_for(1)
    assert report.message["In-Reply-To"] == genuine["Message-ID"]
    await asyncio.sleep(0.2)
    assert len(box.relay.caught) == 1  # nothing to the forged one
    rows = await box.messages()
    assert rows[0]["error_code"] == "not_authenticated" and rows[0]["reply"] is None
    assert rows[1]["error_code"] is None


@pytest.mark.parametrize(
    ("headers", "envelope", "reason"),
    [
        ([("Auto-Submitted", "auto-replied")], ELDER, "auto-submitted"),
        ([("Precedence", "bulk")], ELDER, "precedence"),
        ([("List-Id", "<dom10.lists.example.org>")], ELDER, "mailing list"),
        ([], "", "null envelope sender"),
    ],
    ids=["auto-reply", "bulk", "mailing-list", "bounce"],
)
async def test_automatic_mail_is_recorded_never_read_and_never_answered(
    box: Mail, headers: list[tuple[str, str]], envelope: str, reason: str
) -> None:
    assert (await box.deliver(mail(LIST, headers=headers), envelope)).startswith("250")

    await box.gw.outbound.run_once()
    (row,) = await box.messages()
    assert row["error_code"] == "automatic"
    assert reason in str(row["outcome"])
    assert await select_rows(box.gw.db, t.readings) == []
    assert await select_rows(box.gw.db, t.outbound) == []
    assert box.relay.caught == []


async def test_a_delivery_status_report_is_a_bounce(box: Mail) -> None:
    bounce = EmailMessage(policy=policy.SMTP)
    bounce["From"] = "Mail Delivery System <mailer-daemon@example.org>"
    bounce["To"] = MAIL_FROM
    bounce["Subject"] = "Undelivered Mail Returned to Sender"
    bounce["Message-ID"] = "<bounce-1@example.org>"
    bounce.set_content("1234567890 12345 6789")  # a quoted report: never read as a list
    bounce.make_mixed()
    bounce.replace_header("Content-Type", 'multipart/report; report-type="delivery-status"')

    assert (await box.deliver(bounce, "")).startswith("250")

    (row,) = await box.messages()
    assert row["error_code"] == "automatic"
    assert await select_rows(box.gw.db, t.readings) == []


@pytest.mark.parametrize("box", [{"smtp_max_bytes": 4096}], indirect=True)
async def test_mail_over_the_limit_is_refused_with_552(box: Mail) -> None:
    big = mail(LIST + "x" * 10_000)

    reply = await box.deliver(big)

    assert reply.startswith("552")
    assert await box.messages() == []


async def test_a_report_waits_for_the_relay_and_is_never_lost(box: Mail, clock: Clock) -> None:
    await box.relay.stop()  # the relay is down when the report is due

    assert (await box.deliver(mail(LIST))).startswith("250")
    await box.gw.mail.aclose()  # the first attempt failed

    (queued,) = await select_rows(box.gw.db, t.outbound)
    assert queued["status"] == "queued" and queued["attempts"] == 1
    assert queued["kind"] == "list_report"

    await box.relay.start()
    clock.advance(minutes=5)
    assert await box.gw.outbound.run_once() == 1

    (report,) = await box.relay.wait_for(1)
    assert "Принято: 3" in report.text
    (sent,) = await select_rows(box.gw.db, t.outbound)
    assert sent["status"] == "sent"


async def test_a_mail_not_stored_is_answered_451_so_the_server_retries(box: Mail) -> None:
    calls: list[bytes] = []

    async def database_down(raw: bytes, *, envelope_from: str | None = None) -> None:
        calls.append(raw)
        raise StorageUnavailable("database down")

    receiver = SmtpReceiver("127.0.0.1:0", 1_000_000, database_down)
    await receiver.start()
    try:
        down = Mail(box.gw, box.relay, receiver)
        assert (await down.deliver(mail(LIST))).startswith("451 4.3.0")
    finally:
        await receiver.stop()
    assert len(calls) == 1


# --- through a real mailbox (Dovecot) -------------------------------------------------


def poller(dovecot: Dovecot, gw: Gateway, **config: object) -> ImapPoller:
    settings = ImapConfig(
        host=dovecot.host,
        port=dovecot.port,
        user=dovecot.user,
        password=dovecot.password,
        tls="none",
        max_message_bytes=gw.settings.smtp_max_bytes,
        **{"done_folder": "Processed", **config},  # type: ignore[arg-type]
    )
    return ImapPoller(settings, gw.mail.receive)


async def test_a_mailbox_list_is_read_reported_and_moved_when_done(
    box: Mail, dovecot: Dovecot
) -> None:
    original = mail(LIST)
    await dovecot.append(original.as_bytes(policy=policy.SMTP))

    assert await poller(dovecot, box.gw, done_folder="Processed").run_once() == 1

    (report,) = await box.relay.wait_for(1)
    assert report.message["In-Reply-To"] == original["Message-ID"]
    assert await dovecot.uids() == []
    assert len(await dovecot.uids("Processed")) == 1


async def test_a_restart_in_the_middle_of_a_mailbox_skips_nothing_and_repeats_nothing(
    box: Mail, dovecot: Dovecot
) -> None:
    mails = [
        mail(f"{account} {value}")
        for account, value in [("1234567891", 4600), ("1234567891", 4610), ("1234567891", 4620)]
    ]
    for item in mails:
        await dovecot.append(item.as_bytes(policy=policy.SMTP))
    seen: list[bytes] = []

    async def then_the_database_goes(raw: bytes, *, truncated: bool) -> None:
        if len(seen) == 1:
            raise StorageUnavailable("database down")  # the gateway stops here
        seen.append(raw)
        await box.gw.mail.receive(raw, truncated=truncated)

    config = ImapConfig(
        dovecot.host, dovecot.user, dovecot.password, dovecot.port, tls="none", done_folder="Done"
    )
    with pytest.raises(StorageUnavailable):
        await ImapPoller(config, then_the_database_goes).run_once()
    # A new gateway process (a new poller) goes on where the first stopped.
    assert await poller(dovecot, box.gw, done_folder="Done").run_once() == 2

    await box.relay.wait_for(3)
    rows = await box.messages()
    assert [r["external_id"] for r in rows] == [m["Message-ID"] for m in mails]
    values = [str(r["value"]) for r in await select_rows(box.gw.db, t.readings)]
    assert values == ["4600", "4610", "4620"]


async def test_serve_starts_the_smtp_receiver_when_configured(
    settings: Settings, relay: CatchingRelay, clock: Clock, tmp_path: Path, unused_tcp_port: int
) -> None:
    configured = mail_settings(settings, relay, smtp_listen=f"127.0.0.1:{unused_tcp_port}")
    async with gateway(configured, clock) as gw:
        await load_registry(gw, tmp_path)
        await add_elders(gw, tmp_path)
        async with loopback(gw.web_app()):
            await aiosmtplib.send(
                mail(LIST), hostname="127.0.0.1", port=unused_tcp_port, sender=ELDER
            )
            (report,) = await relay.wait_for(1)
    assert "Принято: 3" in report.text


async def test_serve_polls_the_mailbox_when_configured(
    settings: Settings, relay: CatchingRelay, clock: Clock, tmp_path: Path, dovecot: Dovecot
) -> None:
    configured = mail_settings(
        settings,
        relay,
        imap_host=dovecot.host,
        imap_port=dovecot.port,
        imap_user=dovecot.user,
        imap_password=dovecot.password,
        imap_tls="none",
        imap_done_folder="Обработано",
    )
    async with gateway(configured, clock) as gw:
        await load_registry(gw, tmp_path)
        await add_elders(gw, tmp_path)
        async with loopback(gw.web_app()):
            await dovecot.append(mail(LIST).as_bytes(policy=policy.SMTP))
            (report,) = await relay.wait_for(1)  # IDLE woke the poller
    assert "Принято: 3" in report.text
    assert await dovecot.uids() == []


async def test_serve_without_a_way_in_starts_no_mail_and_says_so_once(
    gw: Gateway, logs: list[MutableMapping[str, Any]]
) -> None:
    async with loopback(gw.web_app()):
        pass
    assert [e["reason"] for e in logs if e["event"] == "email_off"] == [
        "neither GATEWAY_IMAP_HOST nor GATEWAY_SMTP_LISTEN is set"
    ]
    assert not [e for e in logs if e["event"] in ("smtp_listening", "imap_connected")]
    assert [e["reason"] for e in logs if e["event"] == "smpp_off"] == [
        "GATEWAY_SMPP_HOST is not set"
    ]
