"""The ``gateway`` command as users and scripts run it (a real process, a real SQLite file)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ACCOUNTS, METERS, TARIFFS, upgrade_database


def run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    for kind, text in (("accounts", ACCOUNTS), ("meters", METERS), ("tariffs", TARIFFS)):
        (tmp_path / f"{kind}.csv").write_text(text, encoding="utf-8")
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    asyncio.run(upgrade_database(url))  # what `gateway db upgrade` does
    return {
        **os.environ,
        "GATEWAY_DATABASE_URL": url,
        "GATEWAY_CONFIG": str(Path(__file__).parents[2] / "config" / "gateway.toml"),
        "GATEWAY_LOG_FORMAT": "json",
        # A process runs on today's date: a window of the whole month keeps the replies
        # these tests expect the same on any day (the window has tests of its own).
        "GATEWAY_WINDOW_START": "1",
        "GATEWAY_WINDOW_END": "31",
    }


def test_import_prints_a_summary_and_exits_zero(env: dict[str, str], tmp_path: Path) -> None:
    files = [f"--{k}={tmp_path / f'{k}.csv'}" for k in ("accounts", "meters", "tariffs")]

    result = run(["import", *files], env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"accounts: 4 added, 0 updated, 0 unchanged, 0 rejected ({tmp_path / 'accounts.csv'})",
        f"meters: 7 added, 0 updated, 0 unchanged, 0 rejected ({tmp_path / 'meters.csv'})",
        f"tariffs: 7 added, 0 updated, 0 unchanged, 0 rejected ({tmp_path / 'tariffs.csv'})",
    ]


def test_import_with_a_bad_row_exits_one_and_names_the_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(ACCOUNTS + "4444444444,x,b,,lots,,\n", encoding="utf-8")

    result = run(["import", f"--accounts={bad}"], env)

    assert result.returncode == 1
    assert f"{bad}:6: debt is not a number: 'lots'" in result.stderr
    assert "accounts: 4 added" in result.stdout


def test_sms_json_reads_stdin_in_order_one_outcome_per_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    files = [f"--{k}={tmp_path / f'{k}.csv'}" for k in ("accounts", "meters", "tariffs")]
    assert run(["import", *files], env).returncode == 0

    result = run(["sms", "--json"], env, stdin="1234567891 4600\n1234567891 4600\nпривет\n")

    assert result.returncode == 0, result.stderr
    outcomes = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["status"] for o in outcomes] == ["accepted", "duplicate", "rejected"]
    assert outcomes[0]["readings"] == [
        {
            "meter": "611002",
            "service": "electricity",
            "zone": "single",
            "value": "4600",
            "previous": "4521",
            "consumption": "79",
        }
    ]
    # 79 × 6.43 = 507.97
    assert outcomes[0]["charge"]["total"] == "507.97"
    assert outcomes[2]["error"]["code"] == "not_readings"
    # Logs are JSON events on standard error, never mixed into the outcomes.
    events = [json.loads(line)["event"] for line in result.stderr.splitlines()]
    assert events.count("message_handled") == 3


def test_sms_text_argument_prints_the_reply(env: dict[str, str], tmp_path: Path) -> None:
    files = [f"--{k}={tmp_path / f'{k}.csv'}" for k in ("accounts", "meters", "tariffs")]
    assert run(["import", *files], env).returncode == 0

    result = run(["sms", "--from", "+79120000002", "1234567891 4600"], env)

    assert result.stdout == "Принято, ЛС 1234567891: ЭЭ 4600. Предварительно к оплате 507,97 ₽.\n"
    assert "+79120000002" not in result.stderr
    assert "+7***0002" in result.stderr


def test_readings_json_lists_the_account_history(env: dict[str, str], tmp_path: Path) -> None:
    files = [f"--{k}={tmp_path / f'{k}.csv'}" for k in ("accounts", "meters", "tariffs")]
    assert run(["import", *files], env).returncode == 0
    run(["sms", "1234567890 12345 6789"], env)

    result = run(["readings", "1234567890", "--json"], env)

    history = json.loads(result.stdout)
    assert history["account"] == "1234567890"
    assert [(r["zone"], r["value"], r["consumption"]) for r in history["readings"]] == [
        ("day", "12345", "345"),
        ("night", "6789", "289"),
    ]


def test_readings_of_an_unknown_account_exits_one(env: dict[str, str]) -> None:
    result = run(["readings", "0000000000"], env)

    assert result.returncode == 1
    assert "unknown account 0000000000" in result.stderr


def test_a_database_from_an_older_version_is_refused_with_a_clear_message(
    env: dict[str, str], tmp_path: Path
) -> None:
    import sqlite3

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY)")

    result = run(["readings", "1"], {**env, "GATEWAY_DATABASE_URL": f"sqlite:///{old}"})

    assert result.returncode == 2
    assert "its tables are not the gateway's (missing accounts, billing_readings," in result.stderr
    assert "readings.consumption" in result.stderr
    assert "delete" not in result.stderr


def test_review_commands_report_when_nothing_is_held(env: dict[str, str]) -> None:
    listed = run(["review", "list"], env)
    approved = run(["review", "approve", "7"], env)

    assert (listed.returncode, listed.stdout) == (0, "nothing is held for review\n")
    assert approved.returncode == 1
    assert "nothing of submission 7 is held" in approved.stderr


def _imported(env: dict[str, str], tmp_path: Path) -> None:
    files = [f"--{k}={tmp_path / f'{k}.csv'}" for k in ("accounts", "meters", "tariffs")]
    assert run(["import", *files], env).returncode == 0


def test_outbox_status_and_relay_once_to_the_embedded_billing(
    env: dict[str, str], tmp_path: Path
) -> None:
    _imported(env, tmp_path)
    run(["sms", "1234567890 12345 6789"], env)

    before = json.loads(run(["outbox", "status", "--json"], env).stdout)
    relayed = run(["outbox", "relay", "--once"], env)
    after = json.loads(run(["outbox", "status", "--json"], env).stdout)
    text = run(["outbox", "status"], env)

    assert (before["pending"], before["delivered"]) == (2, 0)
    assert before["oldest_pending_seconds"] >= 0
    assert (relayed.returncode, relayed.stdout) == (0, "delivered 2, retried 0, failed 0\n")
    assert after == {
        "pending": 0,
        "failed": 0,
        "delivered": 2,
        "oldest_pending_seconds": None,
        "failures": [],
    }
    assert text.stdout == "pending 0, failed 0, delivered 2; oldest pending —\n"


def test_relay_once_exits_one_when_billing_refuses_and_status_lists_the_row(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Billing answers 404 (a wrong GATEWAY_BILLING_URL): the rows are failed and shown."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"no such path")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _imported(env, tmp_path)
        run(["sms", "1234567891 4600"], env)
        billing = {**env, "GATEWAY_BILLING_URL": f"http://127.0.0.1:{server.server_port}"}

        relayed = run(["outbox", "relay", "--once"], billing)
        status = run(["outbox", "status"], billing)
    finally:
        server.shutdown()

    assert (relayed.returncode, relayed.stdout) == (1, "delivered 0, retried 0, failed 1\n")
    assert status.stdout.splitlines() == [
        "pending 0, failed 1, delivered 0; oldest pending —",
        "  failed 1 (reading-1): HTTP 404: no such path",
    ]


def test_review_list_approve_and_reject_from_the_command_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Held submissions made in the past (with a clock), decided by an operator now."""
    from gateway.bootstrap import gateway
    from gateway.settings import Settings
    from tests.conftest import Clock
    from tests.integration.test_intake import send
    from tests.integration.test_periods import _history, moscow_noon

    async def hold_two() -> None:
        settings = Settings.from_mapping(
            {"database_url": env["GATEWAY_DATABASE_URL"], "outlier_factor": "1.5"}
        )
        clock = Clock()
        async with gateway(settings, clock) as gw:
            await _history(gw, clock, tmp_path)
            assert (await send(gw, "1234567891 5530")).status == "held"
            clock.now = moscow_noon(20, 12)
            # 950 kWh in 61 days since October's 4600: above 1.5 × 9.84 a day.
            assert (await send(gw, "1234567891 5550")).status == "held"

    asyncio.run(hold_two())

    listed = json.loads(run(["review", "list", "--json"], env).stdout)
    text = run(["review", "list"], env).stdout.splitlines()
    first, second = (item["id"] for item in listed)
    approved = run(["review", "approve", str(first)], env)
    rejected = run(["review", "reject", str(second), "--reason", "Пришлите фото."], env)
    history = json.loads(run(["readings", "1234567891", "--json"], env).stdout)

    assert [(i["value"], i["consumption"], i["days"], i["period"]) for i in listed] == [
        ("5530", "930", 31, "2026-11"),
        ("5550", "950", 61, "2026-12"),
    ]
    assert text[0] == (
        f"{first}: ЛС 1234567891 meter 611002 single 5530 +930 (30.00/day over 31 d) "
        "period 2026-11 via sms"
    )
    assert approved.stdout == f"approved submission {first}: 1 reading(s) of ЛС 1234567891\n"
    assert rejected.stdout == f"rejected submission {second}: 1 reading(s) of ЛС 1234567891\n"
    assert [(r["value"], r["period"], r["status"]) for r in history["readings"]] == [
        ("4300", "2026-09", "accepted"),
        ("4600", "2026-10", "accepted"),
        ("5530", "2026-11", "accepted"),
        ("5550", "2026-12", "declined"),
    ]


def test_list_prints_one_outcome_per_data_line_and_a_summary(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "elders.csv").write_text("email,building\nelder@example.org,b1\n")
    files = [f"--{k}={tmp_path / f'{k}.csv'}" for k in ("accounts", "meters", "tariffs", "elders")]
    assert run(["import", *files], env).returncode == 0
    text = "Показания:\n1. кв. 2 — 1234567891 4600\n2. 0012345678 999990 311\n"

    result = run(["list", "--from", "elder@example.org", "--json", "-"], env, stdin=text)

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(o["line"], o["text"], o["status"], o["account"]) for o in lines] == [
        (2, "1. кв. 2 — 1234567891 4600", "accepted", "1234567891"),
        (3, "2. 0012345678 999990 311", "rejected", "0012345678"),
    ]
    assert lines[1]["error"]["code"] == "not_authorized"
    assert "gateway list: 2 lines: 1 accepted, 0 duplicates, 0 held, 1 rejected" in result.stderr


def test_list_without_json_prints_each_lines_reply(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "elders.csv").write_text("email,building\nelder@example.org,b1\n")
    files = [f"--{k}={tmp_path / f'{k}.csv'}" for k in ("accounts", "meters", "tariffs", "elders")]
    assert run(["import", *files], env).returncode == 0
    (tmp_path / "list.txt").write_text("кв. 2 — 1234567891 4600\n", encoding="utf-8")

    result = run(["list", "--from", "elder@example.org", str(tmp_path / "list.txt")], env)

    assert (
        result.stdout == "1: Принято, ЛС 1234567891: ЭЭ 4600. Предварительно к оплате 507,97 ₽.\n"
    )
