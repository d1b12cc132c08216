"""The ``gateway`` command (also ``python -m gateway``). Contracts: DESIGN.md / README."""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import json
import os
import re
import signal
import sqlite3
import stat
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import date, datetime, time
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import Connection, make_url

from billing_bridge.charge import normative_charge
from gateway import logging as gateway_logging
from gateway import workers
from gateway.bootstrap import Gateway, database, gateway
from gateway.domain.errors import AccountNeeded, SchemaMismatch, StorageUnavailable
from gateway.domain.inbound import e164
from gateway.domain.model import InboundMessage
from gateway.domain.outbound import Notice
from gateway.domain.store import StoredReading
from gateway.registry import (
    ENCODINGS,
    ORDER,
    FileCheck,
    FileReport,
    HeaderError,
    Ticker,
    check_file,
    count_lines,
    import_file,
)
from gateway.settings import Settings, SettingsError
from gateway.storage import tables as t
from gateway.storage.messages import MessageRecord
from gateway.storage.outbound import SqlOutboundQueue
from gateway.storage.outbox_store import SqlOutboxStore

log = structlog.get_logger("gateway.cli")
# sysexits.h EX_TEMPFAIL: the database could not be reached; running again may succeed.
EXIT_TEMPFAIL = 75
# The distribution the `gateway` command comes with (pyproject.toml's project name).
DISTRIBUTION = "meter-gateway"
# `gateway messages` without --limit.
MESSAGES_LIMIT = 50


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {text!r}")
    return number


_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DOTTED_DAY = re.compile(r"([0-9]{2})\.([0-9]{2})\.([0-9]{4})")


def _day(text: str) -> date:
    """``YYYY-MM-DD`` or ``DD.MM.YYYY``."""
    try:
        if _ISO_DAY.fullmatch(text):
            return date.fromisoformat(text)
        dotted = _DOTTED_DAY.fullmatch(text)
        if dotted:
            day, month, year = (int(part) for part in dotted.groups())
            return date(year, month, day)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD or DD.MM.YYYY: {text!r}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Meter-reading intake gateway.")
    parser.add_argument("--version", action="version", version=f"gateway {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import", help="load or update the registry from CSV files")
    for kind in ORDER:
        imp.add_argument(f"--{kind}", type=Path, metavar="F", help=f"{kind} CSV file")
    imp.add_argument(
        "--encoding",
        choices=ENCODINGS,
        help="read the files in this encoding (default: a byte-order mark, else detected)",
    )
    imp.add_argument(
        "--dry-run", action="store_true", help="check everything and report, write nothing"
    )

    serve = sub.add_parser("serve", help="run the HTTP server with every configured channel")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N server processes on the port (PostgreSQL at scale; SQLite takes turns)",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)

    sms = sub.add_parser("sms", help="run messages through the intake exactly as an SMS")
    sms.add_argument("--from", dest="sender", default="", metavar="PHONE")
    sms.add_argument("--json", action="store_true", help="print one outcome object per line")
    sms.add_argument("text", nargs="?", metavar="TEXT")

    outbox = sub.add_parser("outbox", help="the relay of accepted readings to billing")
    outbox_sub = outbox.add_subparsers(dest="action", required=True)
    relay = outbox_sub.add_parser("relay", help="deliver readings to billing")
    relay.add_argument("--once", action="store_true", help="deliver what is due now and exit")
    status = outbox_sub.add_parser("status", help="pending, failed and delivered counts")
    status.add_argument("--json", action="store_true")
    _retry_arguments(outbox_sub.add_parser("retry", help="queue failed rows for billing again"))

    outbound = sub.add_parser(
        "outbound", help="messages sent after the reply (review decisions), per channel"
    )
    outbound_sub = outbound.add_subparsers(dest="action", required=True)
    send = outbound_sub.add_parser("send", help="send what is queued (gateway serve does too)")
    send.add_argument("--once", action="store_true", help="send what is due now and exit")
    queued = outbound_sub.add_parser("status", help="queued, sent and failed counts")
    queued.add_argument("--json", action="store_true")
    _retry_arguments(outbound_sub.add_parser("retry", help="queue failed messages again"))

    review = sub.add_parser("review", help="decide on readings held as outliers")
    review_sub = review.add_subparsers(dest="action", required=True)
    review_list = review_sub.add_parser("list", help="held submissions, oldest first")
    review_list.add_argument("--json", action="store_true")
    approve = review_sub.add_parser("approve", help="accept a held submission and bill it")
    approve.add_argument("id", type=int, help="the submission (message) id from 'review list'")
    approve.add_argument(
        "--account", help="the account decided, when the submission (a list) holds several"
    )
    reject = review_sub.add_parser("reject", help="refuse a held submission")
    reject.add_argument("id", type=int)
    reject.add_argument("--reason", required=True, help="told to the customer")
    reject.add_argument("--account", help="the account decided, when the submission holds several")

    lst = sub.add_parser(
        "list", help="run an elder's group list through the intake, as the email channel would"
    )
    lst.add_argument("--from", dest="sender", required=True, metavar="EMAIL")
    lst.add_argument("--json", action="store_true", help="print one outcome object per line")
    lst.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="the list; - or none: stdin"
    )

    readings = sub.add_parser("readings", help="the history of an account's readings")
    readings.add_argument("account")
    readings.add_argument("--json", action="store_true")

    messages = sub.add_parser(
        "messages", help="what was sent to the gateway and what it answered, newest first"
    )
    messages.add_argument("--phone", help="from this phone, however written")
    messages.add_argument("--account", help="recorded with this account")
    messages.add_argument("--channel", help="sms, smpp, telegram, email")
    messages.add_argument(
        "--since", type=_day, metavar="DATE", help="YYYY-MM-DD or DD.MM.YYYY, local time"
    )
    messages.add_argument(
        "--limit", type=_positive, default=MESSAGES_LIMIT, metavar="N", help="default 50"
    )
    messages.add_argument("--json", action="store_true", help="one JSON object per line")

    db = sub.add_parser("db", help="the database schema and its revisions")
    db_sub = db.add_subparsers(dest="action", required=True)
    db_sub.add_parser("upgrade", help="create the schema, or bring it to this gateway's revision")
    current = db_sub.add_parser("current", help="the revision the database is at")
    current.add_argument("--json", action="store_true")
    backup = db_sub.add_parser(
        "backup", help="copy a SQLite database while the gateway may be serving"
    )
    backup.add_argument("file", type=Path, metavar="FILE")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    return parser


def _retry_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?", metavar="ID", help="the failed row")
    which.add_argument("--failed", action="store_true", help="every failed row")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.load(os.environ)
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    serving = args.command == "serve"
    gateway_logging.configure(settings.log_format, settings.log_level, for_good=serving)
    if serving:
        host, port = args.host or settings.host, args.port or settings.port
        if args.workers < 1:
            print("gateway serve: --workers must be 1 or more", file=sys.stderr)
            return 2
        if args.workers > 1:
            return workers.supervise(args.workers, host, port, os.environ)
        return _serve(settings, host, port, reuse_port=args.reuse_port)
    if args.command == "db":
        return _guarded(_db(settings, args))
    handler = {
        "import": _import,
        "sms": _sms,
        "list": _list,
        "readings": _readings,
        "review": _review,
        "outbox": _outbox,
        "outbound": _outbound,
        "messages": _messages,
    }[args.command]
    return _guarded(_with_gateway(settings, handler, args))


def _guarded(command: Coroutine[Any, Any, int]) -> int:
    """Run a command; a schema this gateway cannot use or an unreachable database is
    one line on standard error and an exit code, never a traceback."""
    try:
        return asyncio.run(command)
    except (SchemaMismatch, StorageUnavailable) as exc:
        return _refused(exc)


def _refused(exc: SchemaMismatch | StorageUnavailable) -> int:
    """The one line and the exit code for a database a command cannot use."""
    if isinstance(exc, SchemaMismatch):
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    print(f"gateway: the database is unavailable ({exc}); try again later", file=sys.stderr)
    return EXIT_TEMPFAIL


async def _with_gateway(settings: Settings, handler: object, args: argparse.Namespace) -> int:
    async with gateway(settings) as gw:
        result: int = await handler(gw, args)  # type: ignore[operator]
        return result


async def _db(settings: Settings, args: argparse.Namespace) -> int:
    """``gateway db upgrade``; ``gateway db current``: the revision (``none`` before the
    first), `` (head)`` when it is this gateway's; exit 1 when ``gateway db upgrade`` is
    needed, 2 when it cannot help (not the gateway's tables, or a newer gateway's);
    ``gateway db backup``: :func:`_backup`."""
    if args.action == "backup":
        return await _backup(settings, args.file, args.force)
    async with database(settings) as db:
        if args.action == "upgrade":
            upgraded = await db.upgrade_schema()
            log.info(
                "schema_upgraded",
                database=db.safe_url,
                before=upgraded.before.status.value,
                revision=upgraded.revision,
            )
            print(upgraded.describe())
            return 0
        found = await db.schema_state()
    if args.json:
        print(
            json.dumps(
                {
                    "revision": found.revision,
                    "head": found.head,
                    "status": found.status.value,
                    "up_to_date": found.up_to_date,
                }
            )
        )
    else:
        print(f"{found.revision or 'none'}{' (head)' if found.up_to_date else ''}")
    if found.up_to_date:
        return 0
    print(f"gateway db current: database {db.safe_url}: {found.describe()}", file=sys.stderr)
    return 1 if found.upgradable else 2


async def _import(gw: Gateway, args: argparse.Namespace) -> int:
    """Check every file named (encoding, header, every row), then import them in order.
    A file that cannot be imported at all (its encoding or header) means nothing is
    written (exit 2); a bad row is reported and skipped (exit 1). ``--dry-run`` stops
    after the checks, which then also read the database: what would change, and meters
    of unknown accounts."""
    files = [(kind, getattr(args, kind)) for kind in ORDER if getattr(args, kind)]
    if not files:
        print(
            "gateway import: name at least one of --accounts --meters --tariffs --elders",
            file=sys.stderr,
        )
        return 2
    for _kind, path in files:
        if not path.exists():
            print(f"gateway import: {path}: no such file", file=sys.stderr)
            return 2
    tty = sys.stderr.isatty()
    country = gw.settings.default_country_code
    checks: list[FileCheck] = []
    refused: list[str] = []
    accounts: frozenset[str] = frozenset()
    for kind, path in files:
        try:
            total = count_lines(path, args.encoding) if tty else 0
            check = await check_file(
                kind,
                path,
                db=gw.db if args.dry_run else None,
                accounts=accounts,
                country_code=country,
                encoding=args.encoding,
                tick=_checking(tty, path, total),
            )
        except HeaderError as exc:
            refused.append(str(exc))
            continue
        if tty:
            print(file=sys.stderr)
        if kind == "accounts":
            accounts = check.accounts
        checks.append(check)
    if refused:
        for line in refused:
            print(line, file=sys.stderr)
        print(
            f"gateway import: nothing was written: {len(refused)} of {len(files)} file(s) "
            "cannot be imported as they are",
            file=sys.stderr,
        )
        return 2
    reports: list[FileReport] = []
    if args.dry_run:
        reports = [check.report for check in checks]
    else:
        for (kind, path), check in zip(files, checks, strict=True):
            report = await import_file(
                gw.db,
                kind,
                path,
                country_code=country,
                encoding=args.encoding,
                tick=_importing(tty, path, check.report.rows),
            )
            if tty:
                print(file=sys.stderr)
            reports.append(report)
    for report in reports:
        for note in report.notes:
            print(note, file=sys.stderr)
        for error in report.errors:
            print(error, file=sys.stderr)
        print(report.summary())
    if args.dry_run:
        print("dry run: nothing written")
    if any(r.header_error for r in reports):  # a file changed between check and import
        return 2
    return 1 if any(r.errors for r in reports) else 0


def _checking(tty: bool, path: Path, lines: int) -> Ticker | None:
    """Progress of the check of a file, on a terminal: the line it has reached."""
    return _ticker(tty, lambda _rows, line: f"{path.name}: checking line {line:,}/{lines:,}")


def _importing(tty: bool, path: Path, rows: int) -> Ticker | None:
    """Progress of the import of a file, on a terminal: rows read of those it has."""
    return _ticker(tty, lambda done, _line: f"{path.name}: {done:,}/{rows:,} rows")


def _ticker(tty: bool, text: Callable[[int, int], str]) -> Ticker | None:
    """One line on standard error, rewritten in place; nothing when not a terminal."""
    if not tty:
        return None

    def tick(rows: int, line: int) -> None:
        print(f"\r{text(rows, line)}", end="", file=sys.stderr, flush=True)

    return tick


async def _sms(gw: Gateway, args: argparse.Namespace) -> int:
    texts = [args.text] if args.text is not None else (line.rstrip("\n") for line in sys.stdin)
    for text in texts:
        message = InboundMessage(
            channel="sms", sender=args.sender, text=text, received_at=gw.clock()
        )
        outcome = await gw.intake(message)
        if args.json:
            print(json.dumps(outcome.to_json(), ensure_ascii=False), flush=True)
        else:
            print(outcome.reply or f"({outcome.status.value}: no reply)", flush=True)
    return 0


async def _list(gw: Gateway, args: argparse.Namespace) -> int:
    """One outcome per data line (with ``line`` and ``text``), then the summary on
    standard error. Exit 1 when the list was refused as a whole (rate limited)."""
    if args.file == "-":
        text = sys.stdin.read()
    else:
        path = Path(args.file)
        if not path.exists():
            print(f"gateway list: {path}: no such file", file=sys.stderr)
            return 2
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
    message = InboundMessage(channel="email", sender=args.sender, text=text, received_at=gw.clock())
    result = await gw.intake.handle_list(message)
    for line in result.lines:
        if args.json:
            print(json.dumps(line.to_json(), ensure_ascii=False))
        else:
            reply = line.outcome.reply or f"({line.outcome.status.value}: no reply)"
            print(f"{line.line}: {reply}")
    if result.rate_limited:
        print("gateway list: rate limited: the list was recorded, not processed", file=sys.stderr)
        return 1
    print(f"gateway list: {result.summary()}", file=sys.stderr)
    return 0


async def _readings(gw: Gateway, args: argparse.Namespace) -> int:
    account, rows, tariffs = await gw.db.run(
        lambda uow: (
            uow.registry.load_account(args.account),
            uow.readings.history(args.account),
            uow.registry.load_tariffs(),
        )
    )
    if account is None:
        print(f"gateway readings: unknown account {args.account}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "account": account.number,
                    "readings": [
                        {
                            "meter": r.meter,
                            "service": r.service,
                            "zone": r.zone,
                            "value": format(r.value, "f"),
                            "previous": None if r.previous is None else format(r.previous, "f"),
                            "consumption": format(r.consumption, "f"),
                            "taken_at": r.taken_at.isoformat(),
                            "period": r.period,
                            "channel": r.channel,
                            "status": r.status,
                        }
                        for r in rows
                    ],
                },
                ensure_ascii=False,
            )
        )
        return 0
    print(f"ЛС {account.number}")
    for reg in account.ordered_registers:
        base = reg.previous
        last = f"{base.value} ({base.taken_on})" if base else "—"
        print(
            f"  meter {reg.meter} {reg.service.value}/{reg.zone.value} digits {reg.capacity}"
            f" last {last}"
        )
    today = gw.clock().astimezone(gw.settings.zone).date()
    services = [r.service for r in account.ordered_registers]
    normative = normative_charge(services, account.residents, tariffs, today)
    if normative is not None:
        print(f"  without readings, by the normative ({account.residents} residents): {normative}")
    if not rows:
        print("  no readings received yet")
    for r in rows:
        local = r.taken_at.astimezone(gw.settings.zone)
        print(
            f"  {local:%Y-%m-%d %H:%M} {r.meter} {r.zone:<7} {r.value:>12} "
            f"+{r.consumption} for {r.period} via {r.channel} [{r.status}]"
        )
    return 0


async def _outbox(gw: Gateway, args: argparse.Namespace) -> int:
    store = SqlOutboxStore(gw.db)
    if args.action == "retry":
        retried = await store.retry(gw.clock(), None if args.failed else args.id)
        if retried.refused is not None:
            print(f"gateway outbox retry: {retried.refused}", file=sys.stderr)
            return 1
        for row, later in retried.overtaken:
            print(
                f"outbox row {row}: billing already has outbox row {later}, a later reading "
                "of the same register: it gets this one after it",
                file=sys.stderr,
            )
        log.info("outbox_requeued", rows=len(retried.ids), row=args.id)
        print(f"re-queued {len(retried.ids)} row(s) for billing")
        return 0
    if args.action == "relay":
        async with gw.relay() as relay:
            if args.once:
                report = await relay.run_once()
                print(report)
                return 1 if report.failed else 0
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await relay.run_forever(stop, gw.settings.relay_interval)
            return 0
    state = await store.status(gw.clock())
    if args.json:
        print(
            json.dumps(
                {
                    "pending": state.pending,
                    "failed": state.failed,
                    "delivered": state.delivered,
                    "oldest_pending_seconds": state.oldest_pending_seconds,
                    "failures": [
                        {"id": i, "idempotency_key": k, "error": e} for i, k, e in state.failures
                    ],
                },
                ensure_ascii=False,
            )
        )
        return 0
    print(
        f"pending {state.pending}, failed {state.failed}, delivered {state.delivered}; "
        f"oldest pending {_age(state.oldest_pending_seconds)}"
    )
    for i, key, error in state.failures:
        print(f"  failed {i} ({key}): {error}")
    return 0


async def _outbound(gw: Gateway, args: argparse.Namespace) -> int:
    if args.action == "retry":
        row_id = None if args.failed else args.id
        requeued, refused = await gw.db.run(lambda uow: _requeue_outbound(uow.conn, row_id))
        if refused is not None:
            print(f"gateway outbound retry: {refused}", file=sys.stderr)
            return 1
        idle = sorted({channel for _i, channel in requeued} - set(gw.outbound.channels))
        for channel in idle:
            print(
                f"no {channel} sender is configured: its messages stay queued until one is",
                file=sys.stderr,
            )
        log.info("outbound_requeued", rows=len(requeued), row=row_id)
        print(f"re-queued {len(requeued)} message(s)")
        return 0
    if args.action == "send":
        if args.once:
            attempted = await gw.outbound.run_once()
            print(f"attempted {attempted}")
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await gw.outbound.run_forever(stop, gw.settings.relay_interval)
        return 0
    state = await SqlOutboundQueue(gw.db).status(gw.clock())
    if args.json:
        print(
            json.dumps(
                {
                    "queued": state.queued,
                    "sent": state.sent,
                    "failed": state.failed,
                    "oldest_queued_seconds": state.oldest_queued_seconds,
                    "channels": sorted(gw.outbound.channels),
                    "problems": [
                        {"id": i, "channel": c, "kind": k, "attempts": n, "error": e}
                        for i, c, k, n, e in state.problems
                    ],
                },
                ensure_ascii=False,
            )
        )
        return 0
    channels = ", ".join(sorted(gw.outbound.channels)) or "none configured"
    print(
        f"queued {state.queued}, sent {state.sent}, failed {state.failed}; "
        f"oldest queued {_age(state.oldest_queued_seconds)}; channels: {channels}"
    )
    for i, channel, kind, attempts, error in state.problems:
        print(f"  {i} ({channel} {kind}, {attempts} attempt(s)): {error}")
    return 0


_ob = t.outbound.c


def _requeue_outbound(
    conn: Connection, row_id: int | None
) -> tuple[list[tuple[int, str]], str | None]:
    """Queue failed outbound messages again (row ``row_id``, or every failed one): each
    ``queued``, due at once, its attempts and last error kept. Returns (id, channel) of
    each, or why nothing was re-queued when the one row asked for is not failed."""
    failed = _ob.status == "failed"
    if row_id is not None:
        failed = failed & (_ob.id == row_id)
    requeued = sorted(
        (int(i), str(channel))
        for i, channel in conn.execute(
            t.outbound.update()
            .where(failed)
            .values(status="queued", next_attempt_at=None, lease_until=None)
            .returning(_ob.id, _ob.channel)
        )
    )
    if row_id is not None and not requeued:
        status = conn.scalar(select(_ob.status).where(_ob.id == row_id))
        if status is None:
            return [], f"no outbound message {row_id}"
        return [], f"outbound message {row_id} is {status}, not failed"
    return requeued, None


def _age(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.0f} s"


async def _review(gw: Gateway, args: argparse.Namespace) -> int:
    review = gw.review
    if args.action == "list":
        held = await review.held()
        if args.json:
            print(json.dumps([_held_json(h) for h in held], ensure_ascii=False))
            return 0
        if not held:
            print("nothing is held for review")
        for h in held:
            per_day = "" if not h.days else f" ({h.consumption / h.days:.2f}/day over {h.days} d)"
            print(
                f"{h.message_id}: ЛС {h.account} meter {h.meter} {h.zone} {h.value} "
                f"+{h.consumption}{per_day} period {h.period} via {h.channel}"
            )
        return 0
    try:
        if args.action == "approve":
            decided = await review.approve(args.id, args.account)
        else:
            decided = await review.reject(args.id, args.reason, args.account)
    except AccountNeeded as exc:
        print(f"gateway review: {exc}", file=sys.stderr)
        return 2
    if not decided:
        print(f"gateway review: nothing of submission {args.id} is held", file=sys.stderr)
        return 1
    verb = "approved" if args.action == "approve" else "rejected"
    print(f"{verb} submission {args.id}: {len(decided)} reading(s) of ЛС {decided[0].account}")
    # On standard error, like `gateway list`'s summary: standard output stays one line.
    print(_NOTICES[decided.notice].format(detail=decided.detail), file=sys.stderr)
    return 0


# What `gateway review approve|reject` says of telling the customer.
_NOTICES = {
    Notice.TOLD: "the customer was told by {detail}",
    Notice.QUEUED: "the customer will be told: queued ({detail}); `gateway serve` retries it",
    Notice.FAILED: "the customer could not be told: {detail}",
    Notice.NOT_TOLD: "the customer will not be told: {detail}",
}


def _held_json(h: StoredReading) -> dict[str, object]:
    return {
        "id": h.message_id,
        "reading_id": h.reading_id,
        "account": h.account,
        "meter": h.meter,
        "service": h.service,
        "zone": h.zone,
        "value": format(h.value, "f"),
        "previous": None if h.previous is None else format(h.previous, "f"),
        "consumption": format(h.consumption, "f"),
        "days": h.days,
        "period": h.period,
        "taken_at": h.taken_at.isoformat(),
        "channel": h.channel,
    }


async def _messages(gw: Gateway, args: argparse.Namespace) -> int:
    """``gateway messages``: what was sent to the gateway and what it answered, newest
    first, with every filter given; one line each, or one JSON object each."""
    zone = gw.settings.zone
    sender = None if args.phone is None else e164(args.phone, gw.settings.default_country_code)
    since = None if args.since is None else datetime.combine(args.since, time(), tzinfo=zone)
    found = await gw.db.run(
        lambda uow: uow.messages.look_up(
            sender=sender,
            account=args.account,
            channel=args.channel,
            since=since,
            limit=args.limit,
        )
    )
    for m in found:
        if args.json:
            print(json.dumps(_message_json(m), ensure_ascii=False))
            continue
        local = m.received_at.astimezone(zone)
        status = m.status if m.error_code is None else f"{m.status}/{m.error_code}"
        reply = "—" if m.reply is None else _one_line(m.reply)
        print(
            f"{m.id}  {local:%Y-%m-%d %H:%M}  {m.channel}  {m.sender or '—'}  {status}  "
            f"{_one_line(m.text)} → {reply}"
        )
    if not found and not args.json:
        print("no messages match")
    return 0


def _message_json(m: MessageRecord) -> dict[str, object]:
    return {
        "id": m.id,
        "channel": m.channel,
        "sender": m.sender,
        "received_at": m.received_at.isoformat(),
        "text": m.text,
        "status": m.status,
        "error_code": m.error_code,
        "account": m.account,
        "reply": m.reply,
    }


_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
TEXT_WIDTH = 80


def _one_line(text: str, width: int = TEXT_WIDTH) -> str:
    """A text on one line (its line breaks shown as ↵), cut to ``width`` characters."""
    flat = _LINE_BREAKS.sub(" ↵ ", text.strip()).replace("\t", " ")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


async def _backup(settings: Settings, target: Path, force: bool) -> int:
    """``gateway db backup FILE``: a consistent copy of a SQLite database, made online
    (see :func:`_copy_sqlite`); on PostgreSQL, one line naming ``pg_dump -Fc``."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        print(
            "gateway db backup: the database is PostgreSQL: back it up with pg_dump -Fc "
            "(e.g. pg_dump -Fc -f FILE DBNAME)",
            file=sys.stderr,
        )
        return 2
    name = url.database or ""
    if name in ("", ":memory:") or name.startswith("file::memory:"):
        print("gateway db backup: an in-memory database has nothing to back up", file=sys.stderr)
        return 2
    source = Path(name)
    if not source.is_file():
        print(f"gateway db backup: {source}: no such database file", file=sys.stderr)
        return 2
    if target.exists() and target.resolve() == source.resolve():
        print(f"gateway db backup: {target} is the database itself", file=sys.stderr)
        return 2
    if not target.parent.is_dir():
        print(f"gateway db backup: {target.parent}: no such directory", file=sys.stderr)
        return 2
    if target.exists() and not force:
        print(f"gateway db backup: {target} exists: give --force to replace it", file=sys.stderr)
        return 2
    try:
        pages = await asyncio.to_thread(
            _copy_sqlite, source, target, force, settings.database_timeout
        )
    except FileExistsError:
        print(f"gateway db backup: {target} exists: give --force to replace it", file=sys.stderr)
        return 2
    except (sqlite3.Error, OSError) as exc:
        print(f"gateway db backup: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_TEMPFAIL if isinstance(exc, sqlite3.OperationalError) else 1
    size = target.stat().st_size
    log.info("database_backed_up", database=str(source), target=str(target), bytes=size)
    print(f"backed up {source} to {target}: {pages:,} pages, {size:,} bytes")
    return 0


def _copy_sqlite(source: Path, target: Path, force: bool, timeout: float) -> int:
    """Copy with SQLite's online backup API, the whole database in one step: one read
    transaction, so the copy is the database as it was at one moment, and (in WAL mode,
    the gateway's) writers go on meanwhile. Written to a temporary file beside
    ``target``, then renamed onto it: ``target`` is never half written. Without
    ``force``, ``target`` is claimed first (``FileExistsError`` if it exists). Returns
    the number of pages copied."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    claimed = False
    if not force:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        claimed = True
    try:
        temporary.unlink(missing_ok=True)
        # mode=rw: never create a database where there is none.
        src = sqlite3.connect(f"file:{quote(str(source))}?mode=rw", uri=True, timeout=timeout)
        try:
            dst = sqlite3.connect(temporary)
            try:
                src.backup(dst)
                pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
            finally:
                dst.close()
        finally:
            src.close()
        # The copy holds what the database holds: no one may read it who may not read that.
        os.chmod(temporary, stat.S_IMODE(source.stat().st_mode))
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        if claimed:
            target.unlink(missing_ok=True)
        raise
    return pages


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (it halves the event loop's share of each request)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


# Seconds requests in flight get to finish after SIGTERM (then the jobs stop).
SHUTDOWN_TIMEOUT = 30.0


def _settle_heap() -> None:
    """Move what start-up built out of the garbage collector's way. The modules, the
    grammar's tables, the compiled statements and the application live as long as the
    process, yet every full collection walked all of them: under load one took about
    50 ms (and stalled every request in flight) for nothing it could free. Frozen, a
    full collection walks only what was made since."""
    gc.collect()
    gc.freeze()


def _serve(settings: Settings, host: str, port: int, *, reuse_port: bool = False) -> int:
    async def app_factory() -> web.Application:
        ctx = gateway(settings)
        gw = await ctx.__aenter__()

        async def close(_app: web.Application) -> None:
            await ctx.__aexit__(None, None, None)

        app = gw.web_app()
        app.on_cleanup.append(close)
        log.info("serving", host=host, port=port, settings=settings.masked())
        _settle_heap()
        return app

    try:
        web.run_app(
            app_factory(),
            host=host,
            port=port,
            print=None,
            access_log=None,
            loop=_event_loop(),
            reuse_port=reuse_port or None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
    except (SchemaMismatch, StorageUnavailable) as exc:
        return _refused(exc)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"gateway serve: {host}:{port} is in use (another gateway?); "
                "choose another with --port or GATEWAY_PORT",
                file=sys.stderr,
            )
            return 2
        raise
    return 0
