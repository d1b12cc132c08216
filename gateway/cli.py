"""The ``gateway`` command (also ``python -m gateway``). Contracts: DESIGN.md / README."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from billing_bridge.charge import normative_charge
from gateway import logging as gateway_logging
from gateway.bootstrap import Gateway, database, gateway
from gateway.domain.errors import AccountNeeded, SchemaMismatch, StorageUnavailable
from gateway.domain.model import InboundMessage
from gateway.domain.outbound import Notice
from gateway.domain.store import StoredReading
from gateway.registry import ORDER, FileReport, import_file
from gateway.settings import Settings, SettingsError
from gateway.storage.outbound import SqlOutboundQueue
from gateway.storage.outbox_store import SqlOutboxStore

log = structlog.get_logger("gateway.cli")
# sysexits.h EX_TEMPFAIL: the database could not be reached; running again may succeed.
EXIT_TEMPFAIL = 75


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Meter-reading intake gateway.")
    sub = parser.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import", help="load or update the registry from CSV files")
    for kind in ORDER:
        imp.add_argument(f"--{kind}", type=Path, metavar="F", help=f"{kind} CSV file")

    serve = sub.add_parser("serve", help="run the HTTP server with every configured channel")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

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

    outbound = sub.add_parser(
        "outbound", help="messages sent after the reply (review decisions), per channel"
    )
    outbound_sub = outbound.add_subparsers(dest="action", required=True)
    send = outbound_sub.add_parser("send", help="send what is queued (gateway serve does too)")
    send.add_argument("--once", action="store_true", help="send what is due now and exit")
    queued = outbound_sub.add_parser("status", help="queued, sent and failed counts")
    queued.add_argument("--json", action="store_true")

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

    db = sub.add_parser("db", help="the database schema and its revisions")
    db_sub = db.add_subparsers(dest="action", required=True)
    db_sub.add_parser("upgrade", help="create the schema, or bring it to this gateway's revision")
    current = db_sub.add_parser("current", help="the revision the database is at")
    current.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.load(os.environ)
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    gateway_logging.configure(settings.log_format, settings.log_level)
    if args.command == "serve":
        return _serve(settings, args.host or settings.host, args.port or settings.port)
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
    needed, 2 when it cannot help (not the gateway's tables, or a newer gateway's)."""
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
    files = [(kind, getattr(args, kind)) for kind in ORDER if getattr(args, kind)]
    if not files:
        print(
            "gateway import: name at least one of --accounts --meters --tariffs --elders",
            file=sys.stderr,
        )
        return 2
    tty = sys.stderr.isatty()

    def progress(kind: str, done: int) -> None:
        if tty:
            print(f"\r{kind}: {done} rows", end="", file=sys.stderr, flush=True)

    reports: list[FileReport] = []
    for kind, path in files:
        if not path.exists():
            print(f"gateway import: {path}: no such file", file=sys.stderr)
            return 2
        country = gw.settings.default_country_code
        reports.append(await import_file(gw.db, kind, path, progress, country_code=country))
        if tty:
            print(file=sys.stderr)
    for report in reports:
        for error in report.errors:
            print(error, file=sys.stderr)
        print(report.summary())
    return 1 if any(r.errors for r in reports) else 0


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


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (it halves the event loop's share of each request)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serve(settings: Settings, host: str, port: int) -> int:
    async def app_factory() -> web.Application:
        ctx = gateway(settings)
        gw = await ctx.__aenter__()

        async def close(_app: web.Application) -> None:
            await ctx.__aexit__(None, None, None)

        app = gw.web_app()
        app.on_cleanup.append(close)
        log.info("serving", host=host, port=port, settings=settings.masked())
        return app

    try:
        web.run_app(
            app_factory(),
            host=host,
            port=port,
            print=None,
            access_log=None,
            loop=_event_loop(),
        )
    except (SchemaMismatch, StorageUnavailable) as exc:
        return _refused(exc)
    return 0
