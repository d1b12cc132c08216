"""Operators' commands (issue 13): ``gateway --version``, ``gateway messages``,
``gateway outbox|outbound retry``, ``gateway db backup``, and ``gateway import``'s
header check, ``--dry-run``, ``--encoding`` and progress, as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import socket
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from gateway.bootstrap import Gateway
from gateway.domain.model import InboundMessage
from gateway.domain.store import Outbound
from gateway.settings import Settings
from gateway.storage import tables as t
from gateway.storage.outbox_store import SqlOutboxStore
from tests.conftest import ACCOUNTS, METERS, Clock, select_rows, upgrade_database
from tests.integration.test_cli import run


def cli_env(database_url: str) -> dict[str, str]:
    # Whatever Twilio settings the developer's environment holds are not the test's.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_TWILIO_")}
    return {
        **inherited,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_CONFIG": str(Path(__file__).parents[2] / "config" / "gateway.toml"),
        "GATEWAY_LOG_FORMAT": "json",
    }


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    """A SQLite database at this gateway's revision, with nothing in it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    asyncio.run(upgrade_database(url))
    return cli_env(url)


def sqlite_count(env: dict[str, str], table: str) -> int:
    path = env["GATEWAY_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_version_prints_the_installed_distributions_version() -> None:
    result = run(["--version"], dict(os.environ))

    assert (result.returncode, result.stdout) == (
        0,
        f"gateway {metadata.version('meter-gateway')}\n",
    )


# ----- gateway messages ----------------------------------------------------------------------


async def send(gw: Gateway, clock: Clock, at: datetime, sender: str, text: str) -> None:
    clock.now = at
    await gw.intake(InboundMessage(channel="sms", sender=sender, text=text, received_at=at))


# Moscow is UTC+3: 21:10 UTC on the 21st is 00:10 on the 22nd there.
M1 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
M2 = datetime(2026, 11, 21, 20, 30, tzinfo=UTC)
M3 = datetime(2026, 11, 21, 21, 10, tzinfo=UTC)
LONG = "привет\nэто я, " + "очень " * 20 + "длинное сообщение"


async def some_messages(gw: Gateway, clock: Clock) -> None:
    await send(gw, clock, M1, "+79120000002", "1234567891 4600")
    await send(gw, clock, M2, "89120000001", "1234567890 1")
    await send(gw, clock, M3, "+7 912 000-00-02", LONG)


# The SQL is the same on both back ends (the JSON test and look_up run on both): the
# text format once is enough, and keeps this file quick.
sqlite_only = pytest.mark.parametrize("blank_database_url", ["sqlite"], indirect=True)


@sqlite_only
async def test_messages_prints_one_line_each_newest_first_with_local_times(
    gw: Gateway, clock: Clock, settings: Settings
) -> None:
    await some_messages(gw, clock)

    result = await asyncio.to_thread(run, ["messages"], cli_env(settings.database_url))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "3  2026-11-22 00:10  sms  +79120000002  rejected/not_readings  "
        "привет ↵ это я, очень очень очень очень очень очень очень очень очень очень оче… → "
        "Показания: ЛС и значения через пробел, напр. 1234567890 12345 6789 (день ночь) …",
        "2  2026-11-21 23:30  sms  +79120000001  rejected/value_count  1234567890 1 → "
        "ЛС 1234567890: нужно 2 показания (день, ночь), напр. 1234567890 12345 6789",
        "1  2026-11-20 12:00  sms  +79120000002  accepted  1234567891 4600 → "
        "Принято, ЛС 1234567891: ЭЭ 4600. Предварительно к оплате 507,97 ₽.",
    ]


async def test_messages_json_by_phone_however_written_since_a_local_date(
    gw: Gateway, clock: Clock, settings: Settings
) -> None:
    """--since is midnight in the supplier's zone: 00:10 there on the 22nd is in, 23:30
    on the 21st is out (in UTC both are on the 21st)."""
    await some_messages(gw, clock)
    (stored,) = [m for m in await select_rows(gw.db, t.messages) if m["id"] == 3]
    args = ["messages", "--phone", "8 (912) 000-00-02", "--since", "22.11.2026", "--json"]

    result = await asyncio.to_thread(run, args, cli_env(settings.database_url))

    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {
            "id": 3,
            "channel": "sms",
            "sender": "+79120000002",
            "received_at": "2026-11-21T21:10:00+00:00",
            "text": LONG,
            "status": "rejected",
            "error_code": "not_readings",
            "account": None,
            "reply": stored["reply"],
        }
    ]


async def test_look_up_filters_by_account_channel_and_limit_newest_first(
    gw: Gateway, clock: Clock
) -> None:
    await some_messages(gw, clock)
    at = M3 + timedelta(hours=1)
    await gw.intake(InboundMessage("email", "Someone@Example.org", "1234567890 1", at))
    await gw.intake(InboundMessage("email", "someone@example.org", "1234567890 2", at))

    found = await gw.db.run(
        lambda uow: {
            "account": [m.id for m in uow.messages.look_up(account="1234567890")],
            "channel": [m.id for m in uow.messages.look_up(channel="email")],
            "limit": [m.id for m in uow.messages.look_up(limit=2)],
            "since": [m.id for m in uow.messages.look_up(since=M2, channel="sms")],
            "none": [m.id for m in uow.messages.look_up(sender="+79990000000")],
        }
    )

    assert found == {
        "account": [5, 4, 2],  # an email's outcome names the account it tried
        "channel": [5, 4],  # the same received_at: the later id first
        "limit": [5, 4],
        "since": [3, 2],
        "none": [],
    }


# ----- gateway outbox retry, gateway outbound retry ---------------------------------------


async def fail_rows(gw: Gateway, table: Any, **values: Any) -> None:
    await gw.db.run(lambda uow: uow.conn.execute(update(table).values(status="failed", **values)))


async def test_outbox_retry_requeues_failed_rows_keeping_attempts_and_error(
    gw: Gateway, clock: Clock
) -> None:
    """Row 1 and its correction, row 2 (delivered), of one register: billing gets row 1
    after row 2, which the operator is told. Row 3 (another register) stays failed
    when only row 1 is asked for."""
    await send(gw, clock, M1, "+79120000002", "1234567891 4600")
    await send(gw, clock, M1 + timedelta(hours=1), "+79120000002", "1234567891 4610")
    await send(gw, clock, M1 + timedelta(hours=2), "", "1234567890 12345 6789")
    await fail_rows(gw, t.outbox, attempts=3, last_error="HTTP 400: bad meter")
    await gw.db.run(
        lambda uow: uow.conn.execute(
            update(t.outbox).where(t.outbox.c.id == 2).values(status="delivered")
        )
    )
    store = SqlOutboxStore(gw.db)
    clock.now = now = M1 + timedelta(days=1)

    missing = await store.retry(now, 99)
    one = await store.retry(now, 1)
    again = await store.retry(now, 1)
    rows = {r["id"]: r for r in await select_rows(gw.db, t.outbox)}

    assert (missing.ids, missing.refused) == ([], "no outbox row 99")
    assert (one.ids, one.overtaken, one.refused) == ([1], [(1, 2)], None)
    assert (again.ids, again.refused) == ([], "outbox row 1 is pending, not failed")
    assert {k: rows[1][k] for k in ("status", "attempts", "last_error", "next_attempt_at")} == {
        "status": "pending",
        "attempts": 3,
        "last_error": "HTTP 400: bad meter",
        "next_attempt_at": now,
    }
    assert [rows[i]["status"] for i in (2, 3, 4)] == ["delivered", "failed", "failed"]

    every = await store.retry(now)
    async with gw.relay() as relay:
        report = await relay.run_once()
    delivered = {r["id"]: r for r in await select_rows(gw.db, t.outbox)}

    assert (every.ids, every.overtaken) == ([3, 4], [])
    assert (report.delivered, report.failed) == (3, 0)
    assert [(r["status"], r["attempts"]) for r in delivered.values()] == [
        ("delivered", 3),
        ("delivered", 3),
        ("delivered", 3),
        ("delivered", 3),
    ]


@sqlite_only  # SqlOutboxStore.retry runs on both back ends above
async def test_cli_outbox_retry_prints_how_many_and_exits_one_for_a_row_not_failed(
    gw: Gateway, clock: Clock, settings: Settings
) -> None:
    await send(gw, clock, M1, "", "1234567890 12345 6789")
    await fail_rows(gw, t.outbox, attempts=1, last_error="HTTP 404: no such path")
    env = cli_env(settings.database_url)

    retried = await asyncio.to_thread(run, ["outbox", "retry", "--failed"], env)
    refused = await asyncio.to_thread(run, ["outbox", "retry", "2"], env)

    assert (retried.returncode, retried.stdout) == (0, "re-queued 2 row(s) for billing\n")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert "gateway outbox retry: outbox row 2 is pending, not failed" in refused.stderr
    assert [r["status"] for r in await select_rows(gw.db, t.outbox)] == ["pending", "pending"]


async def test_cli_outbound_retry_requeues_failed_messages_and_names_unsent_channels(
    gw: Gateway, clock: Clock, settings: Settings
) -> None:
    for recipient in ("+79120000001", "+79120000002"):
        item = Outbound("sms", recipient, "ЛС 1234567891: проверено", "review_approved")
        await gw.db.run(lambda uow, item=item: uow.outbound.queue(item, clock()))
    await fail_rows(gw, t.outbound, attempts=10, last_error="gave up after 10 attempts: 503")
    env = cli_env(settings.database_url)

    one = await asyncio.to_thread(run, ["outbound", "retry", "1"], env)
    missing = await asyncio.to_thread(run, ["outbound", "retry", "7"], env)
    rows = await select_rows(gw.db, t.outbound)

    assert (one.returncode, one.stdout) == (0, "re-queued 1 message(s)\n")
    # No Twilio REST settings in this environment: no sms sender.
    assert "no sms sender is configured: its messages stay queued until one is" in one.stderr
    assert (missing.returncode, missing.stdout) == (1, "")
    assert "gateway outbound retry: no outbound message 7" in missing.stderr
    assert [(r["status"], r["attempts"], r["next_attempt_at"], r["last_error"]) for r in rows] == [
        ("queued", 10, None, "gave up after 10 attempts: 503"),
        ("failed", 10, None, "gave up after 10 attempts: 503"),
    ]


# ----- gateway db backup ---------------------------------------------------------------------


def test_db_backup_copies_sqlite_consistently_while_another_process_writes(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    database = sqlite_env["GATEWAY_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        with closing(sqlite3.connect(database, timeout=5)) as conn:
            n = 0
            while not stop.is_set():
                n += 1
                conn.execute(
                    "INSERT INTO opt_outs (phone, since) VALUES (?, ?)",
                    (f"+7{n:010}", "2026-11-20 09:00:00"),
                )
                conn.commit()
                written.append(n)

    writer = threading.Thread(target=write)
    writer.start()
    target = tmp_path / "copy.db"
    try:
        while len(written) < 50:  # the writer is under way
            stop.wait(0.01)
        copied = run(["db", "backup", str(target)], sqlite_env)
    finally:
        stop.set()
        writer.join()
    refused = run(["db", "backup", str(target)], sqlite_env)
    before = target.stat().st_mtime_ns
    forced = run(["db", "backup", str(target), "--force"], sqlite_env)

    assert copied.returncode == 0, copied.stderr
    assert copied.stdout.startswith(f"backed up {database} to {target}: ")
    with closing(sqlite3.connect(target)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        in_copy = conn.execute("SELECT count(*) FROM opt_outs").fetchone()[0]
    assert 50 <= in_copy <= len(written)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert f"gateway db backup: {target} exists: give --force to replace it" in refused.stderr
    assert forced.returncode == 0, forced.stderr
    assert target.stat().st_mtime_ns != before
    with closing(sqlite3.connect(target)) as conn:
        assert conn.execute("SELECT count(*) FROM opt_outs").fetchone()[0] == len(written)
    assert sorted(p.name for p in tmp_path.iterdir() if "copy" in p.name) == ["copy.db"]


@pytest.mark.postgres
def test_db_backup_on_postgresql_names_pg_dump_and_exits_two(
    postgres_database: str | None, tmp_path: Path
) -> None:
    if postgres_database is None:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")

    result = run(["db", "backup", str(tmp_path / "x.dump")], cli_env(postgres_database))

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == (
        "gateway db backup: the database is PostgreSQL: back it up with pg_dump -Fc "
        "(e.g. pg_dump -Fc -f FILE DBNAME)"
    )
    assert not (tmp_path / "x.dump").exists()


# ----- gateway import ------------------------------------------------------------------------


def test_import_with_a_header_error_in_one_file_writes_nothing_of_any(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(ACCOUNTS, encoding="utf-8")
    meters = tmp_path / "meters.csv"
    meters.write_text(METERS.replace(",zone,", ",zome,", 1), encoding="utf-8")

    result = run(["import", f"--accounts={accounts}", f"--meters={meters}"], sqlite_env)

    assert (result.returncode, result.stdout) == (2, "")
    assert [line for line in result.stderr.splitlines() if not line.startswith("{")] == [
        f'{meters}:1: no column zone (is "zome" meant to be zone?); expected columns: '
        "account,meter,service,zone,digits,verified_until,last_value,last_date "
        "(account, meter, service, zone, digits required)",
        "gateway import: nothing was written: 1 of 2 file(s) cannot be imported as they are",
    ]
    assert sqlite_count(sqlite_env, "accounts") == 0


def test_import_dry_run_in_koi8_r_reports_every_file_and_writes_nothing(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    """The meters' accounts are only in the accounts file of the same run: known."""
    accounts = tmp_path / "accounts.csv"
    accounts.write_bytes(ACCOUNTS.replace("debt", "debt,note").encode("koi8-r"))
    meters = tmp_path / "meters.csv"
    meters.write_text(METERS + "1234567890,9,electricity,single,6.1,,,\n", encoding="utf-8")
    args = ["import", f"--accounts={accounts}", f"--meters={meters}", "--dry-run"]

    result = run([*args, "--encoding", "koi8-r"], sqlite_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"accounts: 4 added, 0 updated, 0 unchanged, 0 rejected ({accounts})",
        f"meters: 8 added, 0 updated, 0 unchanged, 0 rejected ({meters})",
        "dry run: nothing written",
    ]
    assert f"{accounts}:1: columns that are not accounts columns, ignored: 'note'" in (
        result.stderr
    )
    assert (sqlite_count(sqlite_env, "accounts"), sqlite_count(sqlite_env, "registers")) == (0, 0)


def run_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``gateway`` with standard error on a pseudo-terminal; (exit code, standard
    output, what the terminal showed)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # the terminal's other side is closed: the process has ended
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    return process.wait(timeout=60), out, shown.decode()


def test_import_shows_progress_with_a_total_on_a_terminal_only(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "accounts.csv"
    rows = "".join(f"{7000000000 + i},addr,b1,,0,,,\n" for i in range(2500))
    path.write_text("account,address,building,phone,debt,receipt_code,last_bill_total\n" + rows)

    code, out, shown = run_on_a_terminal(["import", f"--accounts={path}"], sqlite_env)

    assert code == 0, shown
    assert out == f"accounts: 2500 added, 0 updated, 0 unchanged, 0 rejected ({path})\n"
    assert "\raccounts.csv: checking line 1,001/2,501" in shown
    assert "\raccounts.csv: checking line 2,501/2,501" in shown
    for done in ("1,000", "2,000", "2,500"):
        assert f"\raccounts.csv: {done}/2,500 rows" in shown
    again = run(["import", f"--accounts={path}"], sqlite_env)
    assert (again.returncode, "rows" in again.stderr) == (0, False)


def test_a_taken_port_is_one_clear_line(sqlite_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(["serve", "--port", str(port)], sqlite_env)

    assert result.returncode == 2
    assert f"gateway serve: 127.0.0.1:{port} is in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_setting_is_one_clear_line(sqlite_env: dict[str, str]) -> None:
    result = run(["readings", "1234567890"], {**sqlite_env, "GATEWAY_DATABSE_URL": "x"})

    assert result.returncode == 2
    assert "GATEWAY_DATABSE_URL (did you mean GATEWAY_DATABASE_URL?)" in result.stderr
    assert "Traceback" not in result.stderr
