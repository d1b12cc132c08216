"""The Telegram bot through the real aiogram stack: updates POSTed to `gateway serve`'s
webhook over HTTP (or fetched by long polling), the bot's calls going to a loopback fake
of the Bot API (tests/fake_telegram.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from channels.telegram import SECRET_HEADER, WEBHOOK_PATH, _split, history_text
from gateway.bootstrap import Gateway, gateway
from gateway.domain.outbound import Notice
from gateway.domain.store import StoredReading
from gateway.reminders import reminder_text
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, load_registry, loopback, select_rows
from tests.fake_telegram import (
    TOKEN,
    FakeBotApi,
    callback_update,
    command_update,
    contact_update,
    message_update,
    serve_fake_bot_api,
)
from tests.integration.test_intake import send
from tests.integration.test_periods import _history

SECRET = "test_webhook-secret"
CHAT, OTHER_CHAT = 5001, 5002
_update = count(1)


@dataclass
class Bot:
    """The gateway serving a bot, the fake Bot API it talks to, and a way to send it
    updates the way Telegram does."""

    gw: Gateway
    fake: FakeBotApi
    base: str
    session: aiohttp.ClientSession

    async def post(self, update: dict[str, Any], secret: str | None = SECRET) -> int:
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        async with self.session.post(
            self.base + WEBHOOK_PATH, json=update, headers=headers
        ) as response:
            return response.status

    async def say(self, text: str, chat: int = CHAT, user: int | None = None) -> str:
        """Send ``text`` (a command when it starts with /) and wait for the bot's answer."""
        before = len(self.fake.texts(chat))
        if text.startswith("/"):
            command, _, args = text.partition(" ")
            update = command_update(next(_update), chat, command, args, user)
        else:
            update = message_update(next(_update), chat, text, user)
        assert await self.post(update) == 200
        return await self.next_text(chat, before)

    async def press(self, data: str, chat: int = CHAT) -> str:
        """Press the inline button with ``data`` under the bot's last message."""
        before = len(self.fake.texts(chat))
        answered = [
            c.result
            for c in self.fake.calls_of("sendMessage")
            if c.ok and c.result["chat"]["id"] == chat
        ]
        message_id = answered[-1]["message_id"] if answered else 1
        assert await self.post(callback_update(next(_update), chat, data, message_id)) == 200
        return await self.next_text(chat, before)

    async def share(self, phone: str, contact_user: int | None, chat: int = CHAT) -> str:
        before = len(self.fake.texts(chat))
        update = contact_update(next(_update), chat, phone, contact_user, from_user_id=chat)
        assert await self.post(update) == 200
        return await self.next_text(chat, before)

    async def next_text(self, chat: int, before: int) -> str:
        texts = await self.fake.wait_for(lambda: self.fake.texts(chat)[before:])
        return str(texts[0])

    async def link(self, account: str, code: str, chat: int = CHAT) -> None:
        await self.say(f"/add {account}", chat)
        await self.press("link:receipt_code", chat)
        assert "привязан" in await self.say(code, chat)


def telegram_settings(settings: Settings, fake: FakeBotApi, **extra: Any) -> Settings:
    return replace(
        settings,
        telegram_token=TOKEN,
        telegram_api_base=fake.url,
        telegram_webhook_url="https://gateway.example.org/telegram/webhook",
        telegram_webhook_secret=SECRET,
        **extra,
    )


async def _serve(settings: Settings, clock: Clock, folder: Path) -> AsyncIterator[Bot]:
    async with serve_fake_bot_api() as fake:
        configured = telegram_settings(settings, fake)
        async with gateway(configured, clock, upgrade=True) as gw:
            await load_registry(gw, folder)
            async with loopback(gw.web_app()) as base, aiohttp.ClientSession() as session:
                yield Bot(gw, fake, base, session)


@pytest.fixture
async def bot(settings: Settings, clock: Clock, tmp_path: Path) -> AsyncIterator[Bot]:
    async for served in _serve(settings, clock, tmp_path):
        yield served


async def test_start_up_sets_the_menu_and_the_webhook_with_its_secret(bot: Bot) -> None:
    commands = bot.fake.my_commands()
    assert {c["command"] for c in commands} >= {"add", "accounts", "remove", "help"}
    assert all(c["description"] and c["description"][0].isupper() for c in commands)
    assert bot.fake.webhook["url"] == "https://gateway.example.org/telegram/webhook"
    assert bot.fake.webhook["secret_token"] == SECRET


async def test_start_greets_in_russian_and_help_shows_the_formats(bot: Bot) -> None:
    greeting = await bot.say("/start")
    shown = await bot.say("/help")

    assert greeting.startswith("Здравствуйте!") and "/add" in greeting
    assert "1234567890 12345 6789" in shown and "/accounts" in shown


async def test_a_wrong_or_missing_secret_is_refused_and_nothing_kept(bot: Bot) -> None:
    update = command_update(next(_update), CHAT, "/start")

    assert await bot.post(update, secret="wrong") == 401
    assert await bot.post(update, secret=None) == 401
    assert await select_rows(bot.gw.db, t.telegram_updates) == []
    assert bot.fake.texts(CHAT) == []


async def processed_updates(gw: Gateway, processed: int) -> list[dict[str, Any]]:
    """The kept updates, once ``processed`` of them are marked processed or after 5 s: an
    update is marked in a transaction of its own after its reply has gone out, so the
    reply can arrive first."""
    for _ in range(100):
        kept = await select_rows(gw.db, t.telegram_updates)
        if sum(row["processed_at"] is not None for row in kept) >= processed:
            break
        await asyncio.sleep(0.05)
    return kept


async def test_a_repeated_update_is_kept_once_and_answered_once(bot: Bot) -> None:
    update = command_update(next(_update), CHAT, "/start")

    assert await bot.post(update) == 200
    await bot.fake.wait_for(lambda: bot.fake.texts(CHAT))
    assert await bot.post(update) == 200
    await bot.say("/help")  # processed after the repeat: the repeat had its chance

    assert len([x for x in bot.fake.texts(CHAT) if x.startswith("Здравствуйте")]) == 1
    kept = await processed_updates(bot.gw, 2)
    assert len(kept) == 2 and all(row["processed_at"] is not None for row in kept)


async def test_linking_by_the_receipt_code_offers_only_the_known_ways(bot: Bot) -> None:
    asked = await bot.say("/add 1234567890")
    keyboard = bot.fake.sent(CHAT)[-1]["reply_markup"]["inline_keyboard"]
    question = await bot.press("link:receipt_code")
    linked = await bot.say(" a1b2c3 ")  # case and spaces do not matter

    assert "Как подтвердить" in asked
    assert [row[0]["callback_data"] for row in keyboard] == [
        "link:receipt_code",
        "link:bill_total",
        "link:contact",
    ]
    assert "код для добавления" in question
    assert linked.startswith("ЛС 1234567890 (ул. Пушкинская, 10, кв. 1) привязан")
    links = await select_rows(bot.gw.db, t.chat_links)
    assert [(r["chat"], r["account"]) for r in links] == [(str(CHAT), "1234567890")]


@pytest.mark.parametrize("total", ["1523.40", "1523,40", "1 523,40", "1523,40 ₽", "1523.4"])
async def test_linking_by_the_bill_total_as_people_write_it(bot: Bot, total: str) -> None:
    await bot.say("/add")
    await bot.say("1234567890")
    await bot.press("link:bill_total")

    assert "привязан" in await bot.say(total)


async def test_linking_by_sharing_ones_own_contact_but_not_someone_elses(bot: Bot) -> None:
    await bot.say("/add 1234567891")
    await bot.press("link:contact")
    share_button = bot.fake.sent(CHAT)[-1]["reply_markup"]["keyboard"][0][0]

    someone_else = await bot.share("+79120000002", contact_user=999)
    own = await bot.share("8 912 000-00-02", contact_user=CHAT)

    assert share_button["request_contact"] is True
    assert "чужой контакт" in someone_else
    assert "привязан" in own


async def test_five_wrong_answers_across_two_chats_lock_the_account(bot: Bot, clock: Clock) -> None:
    for chat in (CHAT, OTHER_CHAT, CHAT, OTHER_CHAT):
        await bot.say("/add 1234567892", chat)
        await bot.press("link:receipt_code", chat)
        assert "Осталось попыток" in await bot.say("WRONG", chat)
    await bot.say("/add 1234567892", CHAT)
    await bot.press("link:bill_total", CHAT)
    fifth = await bot.say("1,00", CHAT)
    third_chat = await bot.say("/add 1234567892", 5003)

    assert "Слишком много неверных ответов" in fifth
    assert "Слишком много неверных ответов" in third_chat
    attempts = await select_rows(bot.gw.db, t.link_attempts)
    assert [a["ok"] for a in attempts] == [False] * 5
    # The lock ends 24 h after the first wrong answer: then the right code works.
    clock.advance(hours=24, seconds=1)
    await bot.link("1234567892", "G7H8I9", chat=5003)


async def test_accounts_lists_the_links_and_remove_unlinks(bot: Bot) -> None:
    await bot.link("1234567890", "A1B2C3")
    await bot.link("1234567891", "D4E5F6")
    await bot.link("1234567890", "A1B2C3", chat=OTHER_CHAT)  # one account, two chats

    listed = await bot.say("/accounts")
    removed = await bot.say("/remove 1234567890")
    after = await bot.say("/accounts")

    assert listed == (
        "Ваши лицевые счета:\n• 1234567890 — ул. Пушкинская, 10, кв. 1\n"
        "• 1234567891 — ул. Пушкинская, 10, кв. 2"
    )
    assert removed == "ЛС 1234567890 отвязан."
    assert "1234567890" not in after and "1234567891" in after
    assert "1234567890" in await bot.say("/accounts", chat=OTHER_CHAT)  # still linked there


async def test_readings_for_a_linked_account_get_the_chat_statement(bot: Bot) -> None:
    await bot.link("1234567890", "A1B2C3")

    reply = await bot.say("1234567890 12345 6789")

    assert reply == (
        "Принято, ЛС 1234567890:\n"
        "• день (счётчик 517480): 12000 → 12345, расход 345 × 6,80 ₽ = 2346,00 ₽\n"
        "• ночь (счётчик 517480): 6500 → 6789, расход 289 × 3,45 ₽ = 997,05 ₽\n"
        "Долг: 100,00 ₽\n"
        "Итого к оплате (предварительно): 3443,05 ₽"
    )
    (message,) = await select_rows(bot.gw.db, t.messages)
    assert (message["channel"], message["sender"], message["status"]) == (
        "telegram",
        str(CHAT),
        "accepted",
    )


async def test_with_one_linked_account_its_number_may_be_left_out(bot: Bot) -> None:
    await bot.link("1234567891", "D4E5F6")

    assert (await bot.say("4600")).startswith("Принято, ЛС 1234567891:")


async def test_readings_for_an_account_not_linked_store_nothing(bot: Bot) -> None:
    reply = await bot.say("1234567890 12345 6789")

    assert reply == "ЛС 1234567890: нет доступа к этому ЛС. Сначала привяжите его командой /add."
    assert await select_rows(bot.gw.db, t.readings) == []


async def test_an_update_kept_but_not_processed_is_processed_at_start_up(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    """The process stopped after the 200: the next start processes the update."""
    async with serve_fake_bot_api() as fake:
        configured = telegram_settings(settings, fake)
        async with gateway(configured, clock, upgrade=True) as gw:
            await load_registry(gw, tmp_path)
            update = command_update(77, CHAT, "/start")
            assert await gw.desk.keep_update(77, json.dumps(update))
            async with loopback(gw.web_app()):
                await fake.wait_for(lambda: fake.texts(CHAT))
            (kept,) = await select_rows(gw.db, t.telegram_updates)
            assert kept["processed_at"] is not None


async def test_without_a_webhook_url_the_bot_long_polls(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    async with serve_fake_bot_api() as fake:
        configured = replace(
            telegram_settings(settings, fake), telegram_webhook_url="", telegram_webhook_secret=""
        )
        async with gateway(configured, clock, upgrade=True) as gw:
            await load_registry(gw, tmp_path)
            async with loopback(gw.web_app()):
                fake.push_update(command_update(501, CHAT, "/start"))
                greeting = await fake.wait_for(lambda: fake.texts(CHAT))
            assert greeting[0].startswith("Здравствуйте!")
            assert fake.calls_of("deleteWebhook")
            (kept,) = await select_rows(gw.db, t.telegram_updates)
            assert kept["update_id"] == 501


REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_dialog_state_lives_in_redis_when_configured(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except Exception:
        await redis.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"gateway-test-{uuid.uuid4().hex[:8]}"
    try:
        async with serve_fake_bot_api() as fake:
            configured = telegram_settings(settings, fake, redis_url=REDIS_URL, redis_prefix=prefix)
            async with gateway(configured, clock, upgrade=True) as gw:
                await load_registry(gw, tmp_path)
                async with loopback(gw.web_app()) as base, aiohttp.ClientSession() as session:
                    served = Bot(gw, fake, base, session)
                    await served.say("/add")
                    keys = [k.decode() async for k in redis.scan_iter(f"{prefix}:fsm:*")]
                    await served.say("1234567890")
                    await served.press("link:receipt_code")
                    linked = await served.say("A1B2C3")
        assert keys and all(str(CHAT) in k for k in keys)
        assert "привязан" in linked
    finally:
        stale = [k async for k in redis.scan_iter(f"{prefix}:*")]
        if stale:
            await redis.delete(*stale)
        await redis.aclose()


# 15 December 2026, 10:30 in Moscow: the first day of the window, after the reminder hour.
REMINDER_DAY = datetime(2026, 12, 15, 7, 30, tzinfo=UTC)


async def test_reminders_go_once_to_chats_that_want_them_and_have_not_sent(
    bot: Bot, clock: Clock
) -> None:
    await bot.link("1234567890", "A1B2C3", chat=CHAT)
    await bot.link("1234567891", "D4E5F6", chat=OTHER_CHAT)
    await bot.link("1234567892", "G7H8I9", chat=5003)
    await bot.say("/remind off", chat=5003)
    clock.now = REMINDER_DAY - timedelta(hours=1)
    assert (await bot.say("4600", chat=OTHER_CHAT)).startswith("Принято")  # December's
    before = {chat: len(bot.fake.texts(chat)) for chat in (CHAT, OTHER_CHAT, 5003)}

    assert await bot.gw.reminders.run_once() == 0  # 09:30: before the hour
    clock.now = REMINDER_DAY
    assert await bot.gw.reminders.run_once() == 1
    assert await bot.gw.reminders.run_once() == 0  # once per chat and period
    await bot.gw.outbound.run_once()

    assert bot.fake.texts(CHAT)[before[CHAT] :] == [reminder_text(bot.gw.settings)]
    assert len(bot.fake.texts(OTHER_CHAT)) == before[OTHER_CHAT]
    assert len(bot.fake.texts(5003)) == before[5003]


async def test_a_chat_that_blocked_the_bot_is_marked_and_not_reminded_again(
    bot: Bot, clock: Clock
) -> None:
    await bot.link("1234567890", "A1B2C3")
    bot.fake.block(CHAT)
    clock.now = REMINDER_DAY

    await bot.gw.reminders.run_once()
    await bot.gw.outbound.run_once()

    (row,) = [r for r in await select_rows(bot.gw.db, t.outbound) if r["kind"].startswith("rem")]
    assert row["status"] == "failed" and row["last_error"].startswith("403")
    assert (await bot.gw.desk.prefs(str(CHAT))).blocked_at is not None
    clock.now = REMINDER_DAY + timedelta(days=31)  # 15 January: the next window
    assert await bot.gw.reminders.run_once() == 0


async def test_telegram_429_is_retried_after_the_back_off(bot: Bot, clock: Clock) -> None:
    await bot.link("1234567890", "A1B2C3")
    clock.now = REMINDER_DAY
    bot.fake.fail_next("sendMessage", 429, retry_after=3)

    await bot.gw.reminders.run_once()
    await bot.gw.outbound.run_once()
    (row,) = [r for r in await select_rows(bot.gw.db, t.outbound) if r["kind"].startswith("rem")]
    assert (row["status"], row["last_error"]) == ("queued", "429 Too Many Requests")

    clock.advance(seconds=31)
    await bot.gw.outbound.run_once()
    (row,) = [r for r in await select_rows(bot.gw.db, t.outbound) if r["kind"].startswith("rem")]
    assert row["status"] == "sent"


async def test_history_shows_readings_of_every_channel_with_period_and_status(
    bot: Bot, clock: Clock
) -> None:
    await bot.link("1234567891", "D4E5F6")
    await send(bot.gw, "1234567891 4600", sender="+79120000002")  # by SMS
    clock.advance(minutes=5)
    await bot.say("4610")  # a correction, from the chat

    shown = await bot.say("/history")

    assert shown == (
        "ЛС 1234567891:\n"
        "Счётчик 611002 (однотарифный):\n"
        "  4610 — 20.11.2026, за 11.2026, принято (telegram)\n"
        "  4600 — 20.11.2026, за 11.2026, заменено (sms)"
    )


async def test_a_long_history_is_split_into_messages_telegram_takes(bot: Bot) -> None:
    readings = [
        StoredReading(
            i, i, "1234567891", "611002" + "9" * 50, "electricity", "single",
            Decimal(4600 + i), None, Decimal(1), None, datetime(2026, 11, 20, tzinfo=UTC),
            datetime(2026, 11, 20).date(), "2026-11", "sms", "", "accepted",
        )
        for i in range(400)
    ]  # fmt: skip
    text = "\n".join(history_text("1234567891", readings) for _ in range(20))
    parts = _split(text)

    assert len(parts) > 1 and all(len(p) <= 4096 for p in parts)
    assert "\n".join(parts) == text  # cut at line ends, nothing lost


async def test_tariffs_show_each_meters_last_reading_and_the_tariff_in_force(bot: Bot) -> None:
    await bot.link("1234567890", "A1B2C3")

    shown = await bot.say("/tariffs")

    assert shown == (
        "ЛС 1234567890:\n"
        "• день (счётчик 517480): 12000 от 20.10.2026, тариф 6,80 ₽\n"
        "• ночь (счётчик 517480): 6500 от 20.10.2026, тариф 3,45 ₽"
    )


async def test_guided_sending_asks_meter_by_meter_and_sends_on_confirmation(bot: Bot) -> None:
    await bot.link("1234567890", "A1B2C3")

    day = await bot.say("/send")
    not_a_number = await bot.say("двенадцать")
    lower = await bot.say("11000")
    night = await bot.say("12345")
    summary = await bot.say("6789")
    buttons = bot.fake.sent(CHAT)[-1]["reply_markup"]["inline_keyboard"][0]
    assert await select_rows(bot.gw.db, t.readings) == []  # nothing before confirming
    sent = await bot.press("send:confirm")

    assert day == (
        "Счётчик 517480, электроэнергия, день: последнее показание 12000 от 20.10.2026. "
        "Введите текущее показание:"
    )
    assert not_a_number.startswith("Это не число")
    assert lower == (
        "ЛС 1234567890: день 11000 меньше прежнего 12000. Проверьте показание и отправьте "
        "снова.\nВведите ещё раз:"
    )
    assert night.startswith("Счётчик 517480, электроэнергия, ночь: последнее показание 6500")
    assert summary.startswith("Проверьте и подтвердите, ЛС 1234567890:\n• день")
    assert "Итого к оплате (предварительно): 3443,05 ₽" in summary
    assert [b["callback_data"] for b in buttons] == ["send:confirm", "send:cancel"]
    assert sent.startswith("Принято, ЛС 1234567890:")
    (message,) = await select_rows(bot.gw.db, t.messages)
    assert message["text"] == "1234567890 517480/day=12345 517480/night=6789"
    assert len(await select_rows(bot.gw.db, t.readings)) == 2


async def test_guided_sending_chooses_among_linked_accounts_and_can_be_cancelled(
    bot: Bot,
) -> None:
    await bot.link("1234567890", "A1B2C3")
    await bot.link("1234567891", "D4E5F6")

    choose = await bot.say("/send")
    keyboard = bot.fake.sent(CHAT)[-1]["reply_markup"]["inline_keyboard"]
    asked = await bot.press("send:account:1234567891")
    await bot.say("4600")
    cancelled = await bot.press("send:cancel")
    after = await bot.say("4600")  # no dialog any more: free text, two accounts linked

    assert choose == "По какому ЛС передать показания?"
    assert [row[0]["callback_data"] for row in keyboard] == [
        "send:account:1234567890",
        "send:account:1234567891",
    ]
    assert asked.startswith("Счётчик 611002, электроэнергия: последнее показание 4521")
    assert cancelled == "Отменено, показания не отправлены."
    assert "1234567890" in after and "1234567891" in after  # which account? (account_required)
    assert await select_rows(bot.gw.db, t.readings) == []


async def test_a_review_decision_reaches_the_chat_it_came_from(
    bot: Bot, clock: Clock, tmp_path: Path
) -> None:
    await _history(bot.gw, clock, tmp_path)  # 1234567891: two months of usual use
    await bot.link("1234567891", "D4E5F6")

    held = await bot.say("1234567891 5530")
    (item,) = await bot.gw.review.held()
    decided = await bot.gw.review.approve(item.message_id)

    assert held.endswith("Сообщим о решении.")  # a chat can be told later
    assert decided.notice is Notice.TOLD
    assert bot.fake.texts(CHAT)[-1] == (
        "Проверено и принято, ЛС 1234567891: ЭЭ 5530. Предварительно к оплате 5979,90 ₽."
    )
