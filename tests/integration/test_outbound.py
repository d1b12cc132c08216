"""The outbound queue: a review decision told through a loopback Twilio REST fake that
answers as configured, retries with back-off on the test clock, giving up, a crashing
sender, the queue's status, and the ``gateway outbound``/``gateway review`` commands."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from channels.sms_twilio import TwilioRestSender
from gateway.bootstrap import Gateway, gateway
from gateway.domain.outbound import Notice, SendResult, SendVerdict
from gateway.domain.store import Outbound
from gateway.outbound import OutboundPolicy, OutboundSender
from gateway.review import Decided
from gateway.settings import Settings
from gateway.storage import tables as t
from gateway.storage.outbound import SqlOutboundQueue
from tests.conftest import (
    ACCOUNTS,
    METERS,
    TARIFFS,
    TWILIO_SID,
    Answer,
    Clock,
    FakeTwilio,
    select_rows,
)
from tests.integration.test_cli import run
from tests.integration.test_intake import send
from tests.integration.test_periods import _history, moscow_noon

SID = TWILIO_SID
FROM = "+79000000000"
CUSTOMER = "+79121234567"
BAD_NUMBER = "The 'To' number +79121234567 is not a valid phone number."


@asynccontextmanager
async def holding(
    settings: Settings, clock: Clock, tmp_path: Path, api_base: str | None
) -> AsyncIterator[Gateway]:
    """A gateway (Twilio's REST API at ``api_base``, or none) whose account 1234567891 has
    one submission from ``CUSTOMER`` held for review."""
    if api_base is not None:
        settings = replace(
            settings, twilio_account_sid=SID, twilio_from=FROM, twilio_api_base=api_base
        )
    async with gateway(settings, clock) as gw:
        await _history(gw, clock, tmp_path)
        outcome = await send(gw, "1234567891 5530", sender=CUSTOMER)
        assert outcome.status == "held"
        yield gw


@pytest.fixture
async def held(
    settings: Settings, clock: Clock, tmp_path: Path, twilio: FakeTwilio
) -> AsyncIterator[Gateway]:
    async with holding(settings, clock, tmp_path, twilio.url) as gw:
        yield gw


async def outbound_rows(gw: Gateway) -> list[dict[str, Any]]:
    return await select_rows(gw.db, t.outbound)


async def approve_the_held(gw: Gateway) -> tuple[int, Decided]:
    (item,) = await gw.review.held()
    return item.message_id, await gw.review.approve(item.message_id)


async def test_approving_tells_the_customer_at_once_and_records_the_sent_notice(
    held: Gateway, twilio: FakeTwilio, clock: Clock
) -> None:
    message_id, decided = await approve_the_held(held)

    assert (decided.notice, decided.detail) == (Notice.TOLD, "sms")
    (row,) = await outbound_rows(held)
    assert {k: row[k] for k in ("status", "attempts", "provider_id", "sent_at", "last_error")} == {
        "status": "sent",
        "attempts": 1,
        "provider_id": twilio.sids[0],
        "sent_at": clock.now,
        "last_error": None,
    }
    assert (row["kind"], row["message_id"], row["channel"], row["recipient"]) == (
        "review_approved",
        message_id,
        "sms",
        CUSTOMER,
    )
    assert len(twilio.posts) == 1
    assert (twilio.posts[0]["To"], twilio.posts[0]["Body"]) == (CUSTOMER, row["text"])
    # Sent: the loop has nothing left to send.
    clock.advance(hours=1)
    assert await held.outbound.run_once() == 0
    assert len(twilio.posts) == 1


async def test_a_phone_that_sent_stop_is_not_told_of_the_decision_over_twilio(
    held: Gateway, twilio: FakeTwilio
) -> None:
    stopped = await send(held, "СТОП", sender=CUSTOMER)
    assert stopped.reply is not None and "отключены" in stopped.reply

    _, decided = await approve_the_held(held)

    assert decided.notice is Notice.FAILED and "СТОП" in decided.detail
    assert twilio.posts == []  # held back: a notification, not a reply
    (row,) = await outbound_rows(held)
    assert row["status"] == "failed"

    await send(held, "СТАРТ", sender=CUSTOMER)
    assert await select_rows(held.db, t.opt_outs) == []


async def test_the_held_reply_promises_the_decision_when_sms_can_send(
    settings: Settings, clock: Clock, tmp_path: Path, twilio: FakeTwilio
) -> None:
    configured = replace(
        settings, twilio_account_sid=SID, twilio_from=FROM, twilio_api_base=twilio.url
    )
    async with gateway(configured, clock) as gw:
        await _history(gw, clock, tmp_path)

        outcome = await send(gw, "1234567891 5530", sender=CUSTOMER)

    assert outcome.reply is not None
    assert outcome.reply.endswith("обычного. Сообщим о решении.")


async def test_a_503_queues_the_notice_and_the_loop_sends_it_after_the_back_off(
    held: Gateway, twilio: FakeTwilio, clock: Clock
) -> None:
    twilio.answers = [Answer(503)]
    decided_at = clock.now

    _, decided = await approve_the_held(held)

    assert decided.notice is Notice.QUEUED
    assert decided.detail.startswith("sms: HTTP 503")
    (row,) = await outbound_rows(held)
    assert (row["status"], row["attempts"], row["next_attempt_at"], row["sent_at"]) == (
        "queued",
        1,
        decided_at + timedelta(seconds=30),
        None,
    )
    assert row["last_error"].startswith("HTTP 503")

    assert await held.outbound.run_once() == 0  # not due yet
    assert len(twilio.posts) == 1

    clock.advance(seconds=31)
    assert await held.outbound.run_once() == 1

    (row,) = await outbound_rows(held)
    assert (row["status"], row["attempts"], row["provider_id"], row["sent_at"]) == (
        "sent",
        2,
        twilio.sids[0],
        clock.now,
    )
    assert len(twilio.posts) == 2


async def test_a_429_with_retry_after_waits_as_long_as_twilio_asks(
    held: Gateway, twilio: FakeTwilio, clock: Clock
) -> None:
    twilio.answers = [Answer(429, 20429, "Too Many Requests", retry_after="120")]
    decided_at = clock.now

    _, decided = await approve_the_held(held)

    assert decided.notice is Notice.QUEUED
    (row,) = await outbound_rows(held)
    assert (row["status"], row["next_attempt_at"], row["last_error"]) == (
        "queued",
        decided_at + timedelta(seconds=120),
        "HTTP 429: 20429 Too Many Requests",
    )
    clock.advance(seconds=31)  # the back-off alone would be over
    assert await held.outbound.run_once() == 0
    clock.advance(seconds=90)
    assert await held.outbound.run_once() == 1
    assert [r["status"] for r in await outbound_rows(held)] == ["sent"]


async def test_a_400_invalid_number_fails_for_good_and_is_not_sent_again(
    held: Gateway, twilio: FakeTwilio, clock: Clock
) -> None:
    twilio.answers = [Answer(400, 21211, BAD_NUMBER)]

    _, decided = await approve_the_held(held)

    assert (decided.notice, decided.detail) == (Notice.FAILED, f"sms: HTTP 400: 21211 {BAD_NUMBER}")
    (row,) = await outbound_rows(held)
    assert (row["status"], row["attempts"], row["last_error"], row["next_attempt_at"]) == (
        "failed",
        1,
        f"HTTP 400: 21211 {BAD_NUMBER}",
        None,
    )
    clock.advance(days=1)
    assert await held.outbound.run_once() == 0
    assert len(twilio.posts) == 1
    # The decision stands, whatever became of the notice.
    assert await held.review.held() == []


async def test_wrong_credentials_keep_the_notice_queued_until_fixed(
    held: Gateway, twilio: FakeTwilio, clock: Clock
) -> None:
    """401 is the operator's configuration, not the message: retried, never failed."""
    twilio.answers = [Answer(401, 20003, "Authenticate")]

    _, decided = await approve_the_held(held)

    assert decided.notice is Notice.QUEUED
    (row,) = await outbound_rows(held)
    assert (row["status"], row["last_error"]) == ("queued", "HTTP 401: 20003 Authenticate")


async def test_without_twilio_rest_the_customer_is_not_told_and_nothing_is_queued(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    async with gateway(settings, clock) as gw:
        await _history(gw, clock, tmp_path)
        outcome = await send(gw, "1234567891 5530", sender=CUSTOMER)
        assert outcome.status == "held"

        _, decided = await approve_the_held(gw)

        assert (decided.notice, decided.detail) == (Notice.NOT_TOLD, "sms cannot send")
        assert len(decided) == 1
        assert await outbound_rows(gw) == []
        assert gw.outbound.channels == frozenset()
    # The held reply promised nothing it could not keep.
    assert outcome.reply is not None
    assert outcome.reply.endswith("обычного.")


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_twilio_unreachable_queues_the_notice_with_the_error_class(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    api_base = f"http://127.0.0.1:{closed_port()}"
    async with holding(settings, clock, tmp_path, api_base) as gw:
        decided_at = clock.now

        _, decided = await approve_the_held(gw)

        assert decided.notice is Notice.QUEUED
        (row,) = await outbound_rows(gw)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == (
        "queued",
        1,
        decided_at + timedelta(seconds=30),
    )
    assert row["last_error"].startswith("ClientConnectorError"), row["last_error"]
    assert "ClientConnectorError" in decided.detail


@dataclass
class Scripted:
    """A channel sender answering per recipient: a result, or an exception it raises."""

    answers: dict[str, SendResult | Exception]
    calls: list[str] = field(default_factory=list)

    async def send(self, recipient: str, text: str) -> SendResult:
        self.calls.append(recipient)
        answer = self.answers[recipient]
        if isinstance(answer, Exception):
            raise answer
        return answer


async def queue(gw: Gateway, clock: Clock, recipient: str, kind: str = "review_approved") -> int:
    item = Outbound("sms", recipient, f"ЛС 1234567891: {kind}", kind)
    return await gw.db.run(lambda uow: uow.outbound.queue(item, clock()))


def by_id(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in rows}


@dataclass
class Slow:
    """A channel whose provider takes ``seconds`` per message."""

    seconds: float
    sent: list[str] = field(default_factory=list)

    async def send(self, recipient: str, text: str) -> SendResult:
        await asyncio.sleep(self.seconds)
        self.sent.append(recipient)
        return SendResult(SendVerdict.SENT, f"id-{len(self.sent)}")


async def test_each_channel_drains_on_its_own_while_the_server_runs(
    gw: Gateway, clock: Clock
) -> None:
    """`gateway serve`'s loop: a slow channel does not hold up another's messages."""
    slow, quick = Slow(30.0), Scripted({CUSTOMER: SendResult(SendVerdict.SENT, "SM1")})
    outbound = OutboundSender(SqlOutboundQueue(gw.db), {"telegram": slow, "sms": quick}, clock)
    await gw.db.run(
        lambda uow: uow.outbound.queue(Outbound("telegram", "42", "…", "reminder"), clock())
    )
    sms = await queue(gw, clock, CUSTOMER)
    stop = asyncio.Event()
    loop = asyncio.create_task(outbound.run_forever(stop, interval=0.05))
    try:
        for _ in range(100):  # up to 5 s
            if by_id(await outbound_rows(gw))[sms]["status"] == "sent":
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        loop.cancel()  # the slow channel is still sending
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert by_id(await outbound_rows(gw))[sms]["status"] == "sent"
    assert quick.calls == [CUSTOMER] and slow.sent == []


async def test_retries_give_up_after_max_attempts(gw: Gateway, clock: Clock) -> None:
    sender = Scripted({CUSTOMER: SendResult(SendVerdict.RETRY, "HTTP 503")})
    outbound = OutboundSender(
        SqlOutboundQueue(gw.db), {"sms": sender}, clock, OutboundPolicy(max_attempts=2)
    )
    row_id = await queue(gw, clock, CUSTOMER)

    assert await outbound.run_once() == 1
    (row,) = await outbound_rows(gw)
    assert (row["id"], row["status"], row["attempts"]) == (row_id, "queued", 1)

    clock.advance(seconds=31)
    assert await outbound.run_once() == 1

    (row,) = await outbound_rows(gw)
    assert (row["status"], row["attempts"], row["last_error"], row["next_attempt_at"]) == (
        "failed",
        2,
        "gave up after 2 attempts: HTTP 503",
        None,
    )
    clock.advance(hours=2)
    assert await outbound.run_once() == 0
    assert sender.calls == [CUSTOMER, CUSTOMER]


async def test_retries_give_up_with_twilio_s_rest_sender_too(
    gw: Gateway, clock: Clock, twilio: FakeTwilio
) -> None:
    twilio.answers = [Answer(503), Answer(503, retry_after="5")]
    rest = TwilioRestSender(
        account_sid=SID, auth_token="test-auth-token", from_number=FROM, api_base=twilio.url
    )
    outbound = OutboundSender(
        SqlOutboundQueue(gw.db), {"sms": rest}, clock, OutboundPolicy(max_attempts=2)
    )
    await queue(gw, clock, CUSTOMER)

    assert await outbound.run_once() == 1
    clock.advance(seconds=31)
    assert await outbound.run_once() == 1

    (row,) = await outbound_rows(gw)
    assert (row["status"], row["attempts"]) == ("failed", 2)
    assert row["last_error"].startswith("gave up after 2 attempts: HTTP 503")
    assert len(twilio.posts) == 2


async def test_a_crashing_sender_does_not_stop_the_queue(gw: Gateway, clock: Clock) -> None:
    crashing, first, second = "+79120000011", "+79120000012", "+79120000013"
    sender = Scripted(
        {
            crashing: RuntimeError("sender bug"),
            first: SendResult(SendVerdict.SENT, "SM-1"),
            second: SendResult(SendVerdict.SENT, "SM-2"),
        }
    )
    outbound = OutboundSender(SqlOutboundQueue(gw.db), {"sms": sender}, clock)
    ids = [await queue(gw, clock, r) for r in (crashing, first, second)]
    queued_at = clock.now

    assert await outbound.run_once() == 3

    assert sender.calls == [crashing, first, second]
    rows = by_id(await outbound_rows(gw))
    crashed = rows[ids[0]]
    assert (
        crashed["status"],
        crashed["attempts"],
        crashed["last_error"],
        crashed["next_attempt_at"],
        crashed["lease_until"],
    ) == ("queued", 1, "RuntimeError", queued_at + timedelta(seconds=30), None)
    assert [(rows[i]["status"], rows[i]["provider_id"]) for i in ids[1:]] == [
        ("sent", "SM-1"),
        ("sent", "SM-2"),
    ]

    # Retried when due, like any other RETRY.
    sender.answers[crashing] = SendResult(SendVerdict.SENT, "SM-0")
    clock.advance(seconds=31)
    assert await outbound.run_once() == 1
    assert by_id(await outbound_rows(gw))[ids[0]]["status"] == "sent"


async def test_status_counts_rows_and_lists_the_problems(gw: Gateway, clock: Clock) -> None:
    queue_state = SqlOutboundQueue(gw.db)
    empty = await queue_state.status(clock())
    assert (empty.queued, empty.sent, empty.failed, empty.oldest_queued_seconds) == (
        0,
        0,
        0,
        None,
    )
    assert empty.problems == []

    ok, later, refused, fresh = "+79120000021", "+79120000022", "+79120000023", "+79120000024"
    sender = Scripted(
        {
            ok: SendResult(SendVerdict.SENT, "SM-ok"),
            later: SendResult(SendVerdict.RETRY, "HTTP 503"),
            refused: SendResult(SendVerdict.FAILED, f"HTTP 400: 21211 {BAD_NUMBER}"),
        }
    )
    outbound = OutboundSender(queue_state, {"sms": sender}, clock)
    ok_id = await queue(gw, clock, ok)
    later_id = await queue(gw, clock, later, "review_rejected")
    refused_id = await queue(gw, clock, refused)
    assert await outbound.run_once() == 3
    clock.advance(seconds=20)  # not due again yet: later stays queued
    fresh_id = await queue(gw, clock, fresh)
    clock.advance(seconds=280)

    state = await queue_state.status(clock())

    assert (state.queued, state.sent, state.failed) == (2, 1, 1)
    # The oldest queued row is `later`, queued 300 s ago (the fresh one: 280 s).
    assert state.oldest_queued_seconds == pytest.approx(300.0)
    assert state.problems == [
        (later_id, "sms", "review_rejected", 1, "HTTP 503"),
        (refused_id, "sms", "review_approved", 1, f"HTTP 400: 21211 {BAD_NUMBER}"),
    ]
    assert fresh_id not in {p[0] for p in state.problems}
    assert ok_id not in {p[0] for p in state.problems}


# The `gateway` command in a process of its own, on the test's database.


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    # Whatever Twilio settings the developer's environment holds are not the test's.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_TWILIO_")}
    return {
        **inherited,
        "GATEWAY_DATABASE_URL": settings.database_url,
        "GATEWAY_CONFIG": str(Path(__file__).parents[2] / "config" / "gateway.toml"),
        "GATEWAY_LOG_FORMAT": "json",
        **extra,
    }


def test_cli_outbound_status_json_on_a_fresh_database(settings: Settings, tmp_path: Path) -> None:
    env = cli_env(settings)
    for kind, text in (("accounts", ACCOUNTS), ("meters", METERS), ("tariffs", TARIFFS)):
        (tmp_path / f"{kind}.csv").write_text(text, encoding="utf-8")
    files = [f"--{k}={tmp_path / f'{k}.csv'}" for k in ("accounts", "meters", "tariffs")]
    imported = run(["import", *files], env)
    assert imported.returncode == 0, imported.stderr

    result = run(["outbound", "status", "--json"], env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        '{"queued": 0, "sent": 0, "failed": 0, "oldest_queued_seconds": null, '
        '"channels": [], "problems": []}'
    ]
    twilio = {
        "GATEWAY_TWILIO_ACCOUNT_SID": SID,
        "GATEWAY_TWILIO_AUTH_TOKEN": "test-auth-token",
        "GATEWAY_TWILIO_FROM": FROM,
    }
    configured = run(["outbound", "status", "--json"], cli_env(settings, **twilio))
    assert configured.returncode == 0, configured.stderr
    assert '"channels": ["sms"]' in configured.stdout


def test_cli_review_approve_without_twilio_says_the_customer_will_not_be_told(
    settings: Settings, tmp_path: Path
) -> None:
    async def hold() -> int:
        clock = Clock(moscow_noon(20, 11))
        async with holding(settings, clock, tmp_path, None) as gw:
            (item,) = await gw.review.held()
            return item.message_id

    message_id = asyncio.run(hold())

    result = run(["review", "approve", str(message_id)], cli_env(settings))

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"approved submission {message_id}: 1 reading(s) of ЛС 1234567891\n"
    assert "the customer will not be told: sms cannot send" in result.stderr
