"""The fake Bot API speaks what aiogram expects: the real aiogram Bot, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
)
from aiohttp import web

from tests.conftest import loopback
from tests.fake_telegram import (
    BOT_ID,
    TOKEN,
    FakeBotApi,
    callback_update,
    command_update,
    contact_update,
    message_update,
    serve_fake_bot_api,
)


def make_bot(fake: FakeBotApi, token: str = TOKEN) -> Bot:
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)))


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with serve_fake_bot_api() as served:
        yield served


@pytest.fixture
async def bot(fake: FakeBotApi) -> AsyncIterator[Bot]:
    bot = make_bot(fake)
    try:
        yield bot
    finally:
        await bot.session.close()


async def test_serves_on_loopback(fake: FakeBotApi) -> None:
    assert fake.url.startswith("http://127.0.0.1:")


async def test_get_me(fake: FakeBotApi, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == BOT_ID == bot.id
    assert me.is_bot
    assert me.username == "meter_test_bot"
    assert me.first_name == "Meter bot"
    assert [c.method for c in fake.calls] == ["getMe"]


async def test_send_message_with_inline_keyboard(fake: FakeBotApi, bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Отвязать", callback_data="unlink:1234567890")]]
    )
    first = await bot.send_message(42, "привет", reply_markup=keyboard)
    second = await bot.send_message(42, "ещё", parse_mode="HTML")

    assert first.text == "привет"
    assert first.chat.id == 42 and first.chat.type == "private"
    assert first.from_user is not None and first.from_user.id == BOT_ID
    assert first.reply_markup is not None
    assert first.reply_markup.model_dump() == keyboard.model_dump()
    assert second.message_id > first.message_id
    assert second.date is not None

    assert fake.texts(42) == ["привет", "ещё"]
    assert fake.texts(43) == []
    sent = fake.sent(42)
    assert sent[0]["chat_id"] == 42
    assert sent[0]["reply_markup"] == {
        "inline_keyboard": [[{"text": "Отвязать", "callback_data": "unlink:1234567890"}]]
    }
    assert sent[1]["parse_mode"] == "HTML"
    assert fake.calls_of("sendMessage")[0].result["message_id"] == first.message_id


async def test_text_that_looks_like_json_stays_text(fake: FakeBotApi, bot: Bot) -> None:
    await bot.send_message(42, "12345")
    await bot.send_message(42, "true")
    assert fake.texts(42) == ["12345", "true"]


async def test_reply_keyboard_recorded_not_echoed(fake: FakeBotApi, bot: Bot) -> None:
    markup = ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text="Отправить номер", request_contact=True)]],
        one_time_keyboard=True,
    )
    message = await bot.send_message(42, "Ваш номер?", reply_markup=markup)
    assert message.reply_markup is None
    assert fake.sent(42)[0]["reply_markup"]["keyboard"][0][0]["request_contact"] is True


async def test_send_message_checks_of_telegram(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(42, "я" * 4097)
    long_data = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="d" * 65)]]
    )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(42, "текст", reply_markup=long_data)


async def test_edit_answer_delete_chat_action(fake: FakeBotApi, bot: Bot) -> None:
    sent = await bot.send_message(42, "Выберите:")
    edited = await bot.edit_message_text("Готово", chat_id=42, message_id=sent.message_id)
    assert not isinstance(edited, bool)
    assert edited.text == "Готово" and edited.message_id == sent.message_id
    assert edited.edit_date is not None
    assert fake.messages[(42, sent.message_id)]["text"] == "Готово"
    assert fake.calls_of("editMessageText")[0].params["message_id"] == sent.message_id

    assert await bot.answer_callback_query("777", text="ok") is True
    assert fake.calls_of("answerCallbackQuery")[0].params == {
        "callback_query_id": "777",
        "text": "ok",
    }
    assert await bot.send_chat_action(42, "typing") is True
    assert await bot.delete_message(42, sent.message_id) is True
    assert (42, sent.message_id) not in fake.messages


async def test_webhook(fake: FakeBotApi, bot: Bot) -> None:
    url = "https://gateway.example.org/telegram/webhook"
    fake.push_update(message_update(1, 42, "старое"))
    assert await bot.set_webhook(
        url,
        secret_token="s3cr3t_-X",
        allowed_updates=["message", "callback_query"],
        drop_pending_updates=True,
    )
    params = fake.calls_of("setWebhook")[0].params
    assert params == {
        "url": url,
        "secret_token": "s3cr3t_-X",
        "allowed_updates": ["message", "callback_query"],
        "drop_pending_updates": True,
    }
    assert fake.webhook["url"] == url
    assert fake.pending == []

    info = await bot.get_webhook_info()
    assert info.url == url
    assert info.pending_update_count == 0
    assert info.allowed_updates == ["message", "callback_query"]

    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()

    with pytest.raises(TelegramBadRequest, match="secret token"):
        await bot.set_webhook(url, secret_token="не тот")

    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates() == []


async def test_deliver_posts_to_webhook_with_secret(fake: FakeBotApi, bot: Bot) -> None:
    seen: list[tuple[str | None, dict[str, object]]] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/telegram/webhook", hook)
    async with loopback(app) as base:
        await bot.set_webhook(f"{base}/telegram/webhook", secret_token="abc")
        update = message_update(5, 42, "привет")
        assert await fake.deliver(update) == 200
    assert seen == [("abc", update)]


async def test_my_commands(fake: FakeBotApi, bot: Bot) -> None:
    commands = [
        BotCommand(command="start", description="Начать"),
        BotCommand(command="add", description="Привязать лицевой счёт"),
    ]
    assert await bot.set_my_commands(commands)
    assert await bot.set_my_commands(
        commands[:1], scope=BotCommandScopeAllPrivateChats(), language_code="ru"
    )

    first = fake.calls_of("setMyCommands")[0].params
    assert first["commands"] == [
        {"command": "start", "description": "Начать"},
        {"command": "add", "description": "Привязать лицевой счёт"},
    ]
    second = fake.calls_of("setMyCommands")[1].params
    assert second["scope"] == {"type": "all_private_chats"}
    assert second["language_code"] == "ru"

    def dumped(found: list[BotCommand]) -> list[dict[str, object]]:
        return [c.model_dump(exclude_none=True) for c in found]

    assert dumped(await bot.get_my_commands()) == first["commands"]
    scoped = await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="ru")
    assert dumped(scoped) == first["commands"][:1]
    assert fake.my_commands() == first["commands"]

    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Start", description="x")])


async def test_retry_after(fake: FakeBotApi, bot: Bot) -> None:
    fake.fail_next("sendMessage", 429, retry_after=3, times=2)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(42, "привет")
        assert caught.value.retry_after == 3
        assert "Too Many Requests" in caught.value.message
    await bot.send_message(42, "привет")

    assert [c.ok for c in fake.calls_of("sendMessage")] == [False, False, True]
    assert [c.error_code for c in fake.calls_of("sendMessage")] == [429, 429, None]
    assert fake.texts(42) == ["привет"]  # only the delivered one


async def test_forbidden_and_bad_request(fake: FakeBotApi, bot: Bot) -> None:
    fake.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    with pytest.raises(TelegramForbiddenError, match="blocked by the user"):
        await bot.send_message(42, "привет")
    fake.fail_next("sendmessage", 400, "Bad Request: chat not found")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(42, "привет")
    assert (await bot.send_message(42, "привет")).text == "привет"


async def test_block(fake: FakeBotApi, bot: Bot) -> None:
    fake.block(42)
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(42, "привет")
    await bot.send_message(43, "привет")
    fake.unblock(42)
    await bot.send_message(42, "привет")
    assert fake.texts() == ["привет", "привет"]


async def test_wrong_token(fake: FakeBotApi) -> None:
    bot = make_bot(fake, token="654321:WRONG-token")
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await bot.get_me()
    finally:
        await bot.session.close()
    assert fake.calls[0].error_code == 401

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.url}/bot654321:WRONG/getMe") as resp,
    ):
        assert resp.status == 401
        assert await resp.json() == {
            "ok": False,
            "error_code": 401,
            "description": "Unauthorized",
        }


async def test_other_methods_are_recorded(fake: FakeBotApi, bot: Bot) -> None:
    assert await bot.set_my_description("Передача показаний") is True
    assert fake.calls_of("setMyDescription")[0].params == {"description": "Передача показаний"}

    # Any other method answers true; a GET with query parameters works too.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.url}/bot{TOKEN}/logOut", params={"x": "1"}) as resp:
            assert await resp.json() == {"ok": True, "result": True}
        assert fake.calls_of("logout")[0].params == {"x": 1}
        async with session.post(f"{fake.url}/bot{TOKEN}/sendMessage", data={"text": "x"}) as resp:
            assert resp.status == 400
            body = await resp.json()
            assert body["ok"] is False and body["description"] == "Bad Request: chat_id is empty"


async def test_get_updates_parses_and_respects_offset(fake: FakeBotApi, bot: Bot) -> None:
    fake.push_update(message_update(10, 42, "123456 7890.5"))
    fake.push_update(command_update(11, 42, "start", "abc"))
    fake.push_update(contact_update(12, 42, "+79120000001", 42, 42))
    fake.push_update(callback_update(13, 42, "unlink:1234567890", message_id=7))

    updates = await bot.get_updates(offset=0, timeout=1)
    assert all(isinstance(u, Update) for u in updates)
    assert [u.update_id for u in updates] == [10, 11, 12, 13]

    text, command, contact, callback = updates
    assert text.message is not None and text.message.text == "123456 7890.5"
    assert text.message.from_user is not None and text.message.from_user.id == 42
    assert text.message.chat.id == 42

    assert command.message is not None and command.message.text == "/start abc"
    entity = command.message.entities[0] if command.message.entities else None
    assert entity is not None and entity.type == "bot_command"
    assert (entity.offset, entity.length) == (0, len("/start"))

    assert contact.message is not None and contact.message.contact is not None
    assert contact.message.contact.phone_number == "+79120000001"
    assert contact.message.contact.user_id == 42

    query = callback.callback_query
    assert query is not None and query.data == "unlink:1234567890"
    assert query.from_user.id == 42
    assert query.message is not None and query.message.message_id == 7
    assert query.message.chat.id == 42
    assert query.chat_instance

    # Not confirmed: given again; an offset confirms the ones below it.
    assert [u.update_id for u in await bot.get_updates()] == [10, 11, 12, 13]
    assert [u.update_id for u in await bot.get_updates(offset=12)] == [12, 13]
    assert [u.update_id for u in await bot.get_updates(offset=12, limit=1)] == [12]
    assert await bot.get_updates(offset=14, timeout=0) == []
    assert fake.pending == []
    assert fake.calls_of("getUpdates")[2].params == {"offset": 12}


async def test_long_poll_waits_then_answers(fake: FakeBotApi, bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bot.get_updates(timeout=1) == []
    waited = loop.time() - started
    assert 0.4 <= waited < 1.0  # capped at max_poll_wait (0.5 s)

    poll = asyncio.create_task(bot.get_updates(offset=1, timeout=25))
    await fake.wait_for(lambda: fake.calls_of("getUpdates")[1:])
    fake.push_update(message_update(1, 42, "привет"))
    updates = await asyncio.wait_for(poll, 1)
    assert [u.update_id for u in updates] == [1]


async def test_a_second_poll_terminates_the_first(fake: FakeBotApi, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=25))
    await fake.wait_for(lambda calls: calls)
    second = asyncio.create_task(bot.get_updates(timeout=25))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await first
    assert await second == []


async def test_wait_for(fake: FakeBotApi, bot: Bot) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await bot.send_message(42, "готово")

    task = asyncio.create_task(later())
    assert await fake.wait_for(lambda: fake.texts(42)) == ["готово"]
    await task
    with pytest.raises(AssertionError, match="calls: sendMessage"):
        await fake.wait_for(lambda: fake.texts(43), timeout=0.05)


async def test_make_bot(fake: FakeBotApi) -> None:
    bot = fake.make_bot()
    try:
        assert (await bot.get_me()).username == "meter_test_bot"
    finally:
        await bot.session.close()
