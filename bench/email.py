"""One elder's email with an N-line list, end to end: delivered over SMTP to the gateway's
receiver, read, run through the intake in batches, the report composed, queued and sent
through an SMTP relay, until the relay has it.

    .venv/bin/python -m bench.email [--lines N] [--as body|csv|xlsx] [--database-url URL]

The registry of ``bench.lists`` (N accounts in the elder's building) is imported into a
fresh database (SQLite in a temporary directory, or a scratch PostgreSQL database on the
server of ``--database-url``). The relay is a real aiosmtpd server on loopback. Prints a
markdown row per run: the time to the SMTP ``250`` (the list stored) and to the report at
the relay. Target: 10,000 lines under 5 s to the report.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, select

from bench.lists import ELDER, registry_files
from bench.webhook import scratch_database
from channels.email_smtp import SmtpReceiver
from gateway.bootstrap import gateway
from gateway.registry import import_file
from gateway.settings import Settings
from gateway.storage import tables as t

MAIL_FROM = "pokazaniya@vodokanal.example"


class Relay:
    """A loopback SMTP relay that sets an event when the report arrives."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.size = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.size = len(envelope.original_content or b"")
        self.arrived.set()
        return "250 2.0.0 Ok"


def elder_mail(lines: int, kind: str) -> bytes:
    rows = [(i + 1, f"7{i:09d}", 200 + i % 50) for i in range(lines)]
    message = EmailMessage(policy=policy.SMTP)
    message["Return-Path"] = f"<{ELDER}>"
    message["From"] = f"Старшая по дому <{ELDER}>"
    message["To"] = MAIL_FROM
    message["Subject"] = "Показания дома"
    message["Message-ID"] = f"<bench-{time.time_ns()}@example.org>"
    if kind == "body":
        body = "Показания дома:\n" + "\n".join(f"кв. {a} — {n} {v}" for a, n, v in rows)
        message.set_content(body)
    elif kind == "csv":
        message.set_content("Показания во вложении.")
        table = "кв;лицевой счёт;показание\n" + "".join(f"{a};{n};{v}\n" for a, n, v in rows)
        message.add_attachment(
            table.encode("cp1251"), maintype="text", subtype="csv", filename="дом.csv"
        )
    else:
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet()
        sheet.append(["кв", "лицевой счёт", "показание"])
        for row in rows:
            sheet.append(list(row))
        data = io.BytesIO()
        book.save(data)
        message.set_content("Показания во вложении.")
        message.add_attachment(
            data.getvalue(),
            maintype="application",
            subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            filename="дом.xlsx",
        )
    return message.as_bytes(policy=policy.SMTP)


async def _run(url: str, lines: int, kind: str, folder: Path) -> tuple[float, float, int]:
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    relay = Relay()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(relay, loop=loop), "127.0.0.1", 0)
    settings = replace(
        Settings.from_mapping({"database_url": url}),
        mail_relay_host="127.0.0.1",
        mail_relay_port=server.sockets[0].getsockname()[1],
        mail_relay_tls="none",
        mail_from=MAIL_FROM,
        smtp_max_bytes=50 * 1024 * 1024,
        mail_attachment_max_bytes=50 * 1024 * 1024,
    )
    try:
        async with gateway(settings, lambda: now, upgrade=True) as gw:
            for name, path in registry_files(folder, lines).items():
                report = await import_file(gw.db, name, path)
                assert not report.errors, report.errors[:3]
            receiver = SmtpReceiver("127.0.0.1:0", settings.smtp_max_bytes, gw.mail.receive)
            await receiver.start()
            raw = elder_mail(lines, kind)
            started = time.perf_counter()
            await aiosmtplib.send(
                raw,
                sender=ELDER,
                recipients=[MAIL_FROM],
                hostname="127.0.0.1",
                port=receiver.port,
                timeout=120,
            )
            stored = time.perf_counter() - started
            await asyncio.wait_for(relay.arrived.wait(), 120)
            reported = time.perf_counter() - started
            stored_lines = await gw.db.run(
                lambda uow: uow.conn.scalar(select(func.count()).select_from(t.readings))
            )
            assert stored_lines == lines, f"{stored_lines} of {lines} lines stored"
            await receiver.stop()
            await gw.mail.aclose()
    finally:
        server.close()
    return stored, reported, relay.size


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--lines", type=int, default=10_000)
    cli.add_argument("--as", dest="kind", choices=("body", "csv", "xlsx"), action="append")
    cli.add_argument("--database-url", help="a PostgreSQL server to make a scratch database on")
    args = cli.parse_args()
    print("| backend | list | lines | 250 after (s) | report at the relay (s) | report size |")
    print("|---|---|---:|---:|---:|---:|")
    for kind in args.kind or ["body", "csv", "xlsx"]:
        with (
            tempfile.TemporaryDirectory() as tmp,
            scratch_database(args.database_url, Path(tmp)) as (url, backend),
        ):
            stored, reported, size = asyncio.run(_run(url, args.lines, kind, Path(tmp)))
        print(
            f"| {backend} | {kind} | {args.lines:,} | {stored:.2f} | {reported:.2f} "
            f"| {size / 1024:,.0f} KB |"
        )


if __name__ == "__main__":
    main()
