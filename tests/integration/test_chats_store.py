"""The chat channel's tables (``SqlChats``) on a real database (SQLite, and PostgreSQL when
configured): updates kept once, links, link attempts, preferences, who is reminded."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.bootstrap import Gateway
from gateway.domain.chats import (
    LOCK_WINDOW,
    MAX_WRONG_ANSWERS,
    ChatPrefs,
    LinkFacts,
    LinkMethod,
    locked_until,
)
from gateway.domain.model import InboundMessage
from gateway.domain.outcome import Outcome
from gateway.storage import tables as t
from gateway.storage.chats import SqlChats
from gateway.storage.database import UnitOfWork
from tests.conftest import START, Clock, select_rows
from tests.integration.test_intake import send

CHAT = "100000001"
OTHER = "100000002"

FACTS_0012345678 = LinkFacts(
    "0012345678", "ул. Ленина, 5, кв. 7", "+79120000004", "J1K2L3", Decimal("2210.90")
)
FACTS_1234567892 = LinkFacts(
    "1234567892", "ул. Пушкинская, 10, кв. 3", "+79120000003", "G7H8I9", Decimal("640.00")
)


async def send_in_chat(gw: Gateway, chat: str, text: str) -> Outcome:
    return await gw.intake(InboundMessage("telegram", chat, text, gw.clock()))


async def link(gw: Gateway, chat: str, *accounts: str) -> None:
    now = gw.clock()
    linked = await gw.db.run(lambda uow: [uow.chats.link(chat, a, now) for a in accounts])
    assert all(linked)


# ----- updates ---------------------------------------------------------------------------


async def test_a_repeated_update_id_is_reported_and_not_kept_twice(
    gw: Gateway, clock: Clock
) -> None:
    first = await gw.db.run(lambda uow: uow.chats.record_update(7, '{"update_id": 7}', START))
    clock.advance(minutes=1)
    again = await gw.db.run(
        lambda uow: uow.chats.record_update(7, '{"update_id": 7, "again": 1}', clock())
    )

    assert (first, again) == (True, False)
    assert await select_rows(gw.db, t.telegram_updates) == [
        {
            "update_id": 7,
            "payload": '{"update_id": 7}',
            "received_at": START,
            "processed_at": None,
        }
    ]


async def test_a_repeat_within_one_transaction_leaves_it_usable(gw: Gateway) -> None:
    """On PostgreSQL a failed insert would abort the transaction: the repeat must not."""

    def work(uow: UnitOfWork) -> tuple[list[bool], list[tuple[int, str]]]:
        chats = uow.chats
        kept = [
            chats.record_update(8, "a", START),
            chats.record_update(8, "b", START),
            chats.record_update(9, "c", START),
        ]
        return kept, chats.unprocessed(10)

    kept, pending = await gw.db.run(work)

    assert kept == [True, False, True]
    assert pending == [(8, "a"), (9, "c")]
    # Committed, not rolled back.
    assert [r["update_id"] for r in await select_rows(gw.db, t.telegram_updates)] == [8, 9]


async def test_a_repeat_racing_an_uncommitted_one_is_reported_after_it_commits(
    gw: Gateway,
) -> None:
    """PostgreSQL: the check finds nothing while another transaction holds the update
    uncommitted; the insert waits for it and, once it commits, does nothing."""
    if gw.db.is_sqlite:
        pytest.skip("SQLite has one writer: transactions never overlap")
    engine = create_async_engine(gw.settings.database_url)
    try:
        async with engine.connect() as holder:
            await holder.begin()
            assert await holder.run_sync(lambda c: SqlChats(c).record_update(10, "a", START))
            racing = asyncio.create_task(
                gw.db.run(
                    lambda uow: (
                        uow.chats.record_update(10, "b", START),
                        uow.chats.record_update(11, "c", START),
                        uow.chats.unprocessed(10),
                    )
                )
            )
            await asyncio.sleep(0.5)
            assert not racing.done()  # waiting on the holder's row, not failed
            await holder.commit()
            repeated, other, pending = await racing
    finally:
        await engine.dispose()

    assert (repeated, other) == (False, True)
    assert pending == [(10, "a"), (11, "c")]


async def test_unprocessed_updates_come_oldest_first_without_the_processed_ones(
    gw: Gateway, clock: Clock
) -> None:
    def keep(uow: UnitOfWork) -> None:
        for update_id in (30, 10, 20, 40):
            assert uow.chats.record_update(update_id, f"u{update_id}", START)

    await gw.db.run(keep)
    clock.advance(seconds=5)
    await gw.db.run(lambda uow: uow.chats.mark_processed(20, clock()))

    assert await gw.db.run(lambda uow: uow.chats.unprocessed(10)) == [
        (10, "u10"),
        (30, "u30"),
        (40, "u40"),
    ]
    assert await gw.db.run(lambda uow: uow.chats.unprocessed(2)) == [(10, "u10"), (30, "u30")]
    rows = {r["update_id"]: r for r in await select_rows(gw.db, t.telegram_updates)}
    assert rows[20]["processed_at"] == START + timedelta(seconds=5)
    assert rows[10]["processed_at"] is None


# ----- links -----------------------------------------------------------------------------


async def test_link_facts_are_the_registry_s(gw: Gateway) -> None:
    facts = await gw.db.run(lambda uow: uow.chats.link_facts("1234567890"))
    unknown = await gw.db.run(lambda uow: uow.chats.link_facts("9999999999"))

    assert facts == LinkFacts(
        "1234567890", "ул. Пушкинская, 10, кв. 1", "+79120000001", "A1B2C3", Decimal("1523.40")
    )
    assert facts is not None and isinstance(facts.last_bill_total, Decimal)
    assert unknown is None


async def test_linking_twice_reports_the_second_and_keeps_one_row(gw: Gateway) -> None:
    def twice(uow: UnitOfWork) -> tuple[bool, bool, list[LinkFacts]]:
        chats = uow.chats
        first = chats.link(CHAT, "1234567892", START)
        second = chats.link(CHAT, "1234567892", START + timedelta(minutes=1))
        return first, second, chats.linked(CHAT)  # the transaction is still usable

    first, second, linked = await gw.db.run(twice)
    later = await gw.db.run(lambda uow: uow.chats.link(CHAT, "1234567892", START))

    assert (first, second, later) == (True, False, False)
    assert linked == [FACTS_1234567892]
    assert await select_rows(gw.db, t.chat_links) == [
        {"chat": CHAT, "account": "1234567892", "linked_at": START}
    ]


async def test_linked_lists_the_chat_s_accounts_in_number_order(gw: Gateway) -> None:
    await link(gw, CHAT, "1234567892", "0012345678")
    await link(gw, OTHER, "1234567890")

    linked = await gw.db.run(lambda uow: uow.chats.linked(CHAT))
    nobody = await gw.db.run(lambda uow: uow.chats.linked("100000009"))

    assert linked == [FACTS_0012345678, FACTS_1234567892]
    assert all(isinstance(f.last_bill_total, Decimal) for f in linked)
    assert nobody == []
    # What the intake authorizes a chat by.
    assert await gw.db.run(lambda uow: uow.registry.chat_accounts(CHAT)) == {
        "0012345678",
        "1234567892",
    }


async def test_unlink_removes_one_link_and_reports_a_missing_one(gw: Gateway) -> None:
    await link(gw, CHAT, "1234567892", "0012345678")
    await link(gw, OTHER, "1234567892")

    removed = await gw.db.run(lambda uow: uow.chats.unlink(CHAT, "1234567892"))
    again = await gw.db.run(lambda uow: uow.chats.unlink(CHAT, "1234567892"))
    never = await gw.db.run(lambda uow: uow.chats.unlink(CHAT, "1234567890"))

    assert (removed, again, never) == (True, False, False)
    assert await gw.db.run(lambda uow: uow.chats.linked(CHAT)) == [FACTS_0012345678]
    assert await gw.db.run(lambda uow: uow.chats.linked(OTHER)) == [FACTS_1234567892]


# ----- link attempts ---------------------------------------------------------------------


async def test_wrong_answers_count_across_chats_after_since(gw: Gateway) -> None:
    hour = timedelta(hours=1)
    attempts = [
        ("1234567890", CHAT, LinkMethod.RECEIPT_CODE, False, START),
        ("1234567890", OTHER, LinkMethod.BILL_TOTAL, False, START + hour),
        ("1234567890", CHAT, LinkMethod.RECEIPT_CODE, True, START + 2 * hour),
        ("1234567891", CHAT, LinkMethod.CONTACT, False, START + 3 * hour),
        ("1234567890", OTHER, LinkMethod.CONTACT, False, START + 4 * hour),
    ]

    def record(uow: UnitOfWork) -> None:
        for attempt in attempts:
            uow.chats.record_attempt(*attempt)

    await gw.db.run(record)

    async def wrong(account: str, since: timedelta) -> list[datetime]:
        return await gw.db.run(lambda uow: uow.chats.wrong_answers(account, START + since))

    assert await wrong("1234567890", -hour) == [START, START + hour, START + 4 * hour]
    # Strictly after ``since``.
    assert await wrong("1234567890", timedelta(0)) == [START + hour, START + 4 * hour]
    assert await wrong("1234567890", 4 * hour) == []
    assert await wrong("1234567891", -hour) == [START + 3 * hour]
    assert await wrong("0012345678", -hour) == []
    rows = await select_rows(gw.db, t.link_attempts)
    assert [(r["account"], r["chat"], r["method"], r["ok"], r["at"]) for r in rows] == [
        (a, c, m.value, ok, at) for a, c, m, ok, at in attempts
    ]


async def test_five_wrong_answers_lock_linking_until_the_oldest_is_a_window_old(
    gw: Gateway,
) -> None:
    step = timedelta(minutes=10)

    def record(uow: UnitOfWork) -> None:  # from two chats, ten minutes apart
        for i in range(MAX_WRONG_ANSWERS):
            chat = CHAT if i % 2 else OTHER
            uow.chats.record_attempt(
                "1234567890", chat, LinkMethod.BILL_TOTAL, False, START + i * step
            )

    await gw.db.run(record)

    async def until(now: timedelta, wrong: int | None = None) -> datetime | None:
        found = await gw.db.run(
            lambda uow: uow.chats.wrong_answers("1234567890", START + now - LOCK_WINDOW)
        )
        if wrong is not None:
            assert len(found) == wrong
        return locked_until(found)

    four = await gw.db.run(lambda uow: uow.chats.wrong_answers("1234567890", START - LOCK_WINDOW))
    assert locked_until(four[:-1]) is None
    assert await until(MAX_WRONG_ANSWERS * step, MAX_WRONG_ANSWERS) == START + LOCK_WINDOW
    assert await until(LOCK_WINDOW - step) == START + LOCK_WINDOW
    # A window after the oldest, it no longer counts.
    assert await until(LOCK_WINDOW, MAX_WRONG_ANSWERS - 1) is None


# ----- preferences -----------------------------------------------------------------------


async def test_prefs_have_defaults_and_keep_what_was_set(gw: Gateway, clock: Clock) -> None:
    async def prefs(chat: str) -> ChatPrefs:
        return await gw.db.run(lambda uow: uow.chats.prefs(chat))

    assert await prefs(CHAT) == ChatPrefs(CHAT, reminders=True, blocked_at=None)

    await gw.db.run(lambda uow: uow.chats.set_reminders(CHAT, False, START))
    assert await prefs(CHAT) == ChatPrefs(CHAT, reminders=False)
    clock.advance(hours=1)
    await gw.db.run(lambda uow: uow.chats.set_reminders(CHAT, True, clock()))
    assert await prefs(CHAT) == ChatPrefs(CHAT, reminders=True)
    await gw.db.run(lambda uow: uow.chats.set_reminders(CHAT, False, clock()))
    clock.advance(hours=1)
    await gw.db.run(lambda uow: uow.chats.mark_blocked(CHAT, clock()))
    assert await prefs(CHAT) == ChatPrefs(CHAT, reminders=False, blocked_at=clock())
    # Blocked stays blocked whatever the reminders.
    await gw.db.run(lambda uow: uow.chats.set_reminders(CHAT, True, clock()))
    assert await prefs(CHAT) == ChatPrefs(CHAT, reminders=True, blocked_at=clock())

    # A chat without a row, blocked: the defaults besides.
    await gw.db.run(lambda uow: uow.chats.mark_blocked(OTHER, START))
    assert await prefs(OTHER) == ChatPrefs(OTHER, reminders=True, blocked_at=START)

    rows = await select_rows(gw.db, t.chats)
    assert [(r["chat"], r["created_at"]) for r in rows] == [(CHAT, START), (OTHER, START)]


async def test_chats_to_remind(gw: Gateway, clock: Clock) -> None:
    plain, on, off, blocked, unlinked, sent, later, two = (f"20000000{i}" for i in range(1, 9))
    await link(gw, plain, "1234567890")
    await link(gw, on, "1234567890")
    await gw.db.run(lambda uow: uow.chats.set_reminders(on, True, START))
    await link(gw, off, "1234567890")
    await gw.db.run(lambda uow: uow.chats.set_reminders(off, False, START))
    await link(gw, blocked, "1234567890")
    await gw.db.run(lambda uow: uow.chats.mark_blocked(blocked, START))
    await gw.db.run(lambda uow: uow.chats.set_reminders(unlinked, True, START))
    await link(gw, two, "1234567890", "0012345678")
    # A reading of the period sent from the chat: not reminded for that period.
    await link(gw, sent, "1234567891")
    assert (await send_in_chat(gw, sent, "1234567891 4600")).status == "accepted"
    # A reading of a linked account sent by SMS is not the chat's.
    assert (await send(gw, "1234567890 12345 6789", "+79120000001")).status == "accepted"
    # A reading of the next period.
    clock.advance(days=30)
    await link(gw, later, "1234567892")
    assert (await send_in_chat(gw, later, "1234567892 121 99")).status == "accepted"
    # A message without a reading counts for nothing.
    await send_in_chat(gw, plain, "привет")
    periods = {r["period"] for r in await select_rows(gw.db, t.readings)}
    assert periods == {"2026-11", "2026-12"}

    november = await gw.db.run(lambda uow: uow.chats.chats_to_remind("2026-11"))
    december = await gw.db.run(lambda uow: uow.chats.chats_to_remind("2026-12"))
    january = await gw.db.run(lambda uow: uow.chats.chats_to_remind("2027-01"))

    assert november == sorted([plain, on, later, two])
    assert december == sorted([plain, on, sent, two])
    assert january == sorted([plain, on, sent, later, two])
