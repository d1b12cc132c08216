"""The Telegram channel: an aiogram 3 bot mounted in the gateway's aiohttp app.

- Updates come by webhook (``POST /telegram/webhook``, checked by the secret token
  Telegram sends in ``X-Telegram-Bot-Api-Secret-Token``) or, without a webhook URL, by
  long polling. Either way each update is kept (``Desk.keep_update``) before it is
  acknowledged — the webhook's 200, the next ``getUpdates`` offset — and processed after;
  a repeated ``update_id`` is not processed again, and updates kept but not processed
  when the process stopped are processed when it starts.
- A chat acts on the accounts it linked (``/add``, proved by a control question from the
  paper bill or by sharing the user's own contact); readings go through the intake as
  channel ``telegram`` with the chat id as the sender, and the reply is the intake's,
  worded by the chat renderer.
- :class:`TelegramSender` sends the outbound queue's messages to chats (review decisions).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.types import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from aiohttp import web

from gateway.domain import periods
from gateway.domain.chats import Desk, LinkMethod, LinkOutcome, Proof, Verdict, methods
from gateway.domain.errors import StorageUnavailable
from gateway.domain.model import Entered, EnteredValue, InboundMessage, Register, Zone
from gateway.domain.outbound import SendResult, SendVerdict
from gateway.domain.outcome import Outcome, Status
from gateway.domain.ports import OnEntered, OnInbound
from gateway.domain.store import StoredReading

# Runs a job only while this process holds a lease on ``name`` (gateway.leases).
Job = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
Singleton = Callable[[str, Job, asyncio.Event], Coroutine[Any, Any, None]]

log = structlog.get_logger("channels.telegram")

CHANNEL = "telegram"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram refuses longer messages.
MESSAGE_LIMIT = 4096

COMMANDS = [
    BotCommand(command="send", description="Передать показания по шагам"),
    BotCommand(command="add", description="Привязать лицевой счёт"),
    BotCommand(command="accounts", description="Мои лицевые счета"),
    BotCommand(command="remove", description="Отвязать лицевой счёт"),
    BotCommand(command="history", description="История показаний"),
    BotCommand(command="tariffs", description="Тарифы и последние показания"),
    BotCommand(command="remind", description="Напоминания: /remind on или off"),
    BotCommand(command="help", description="Как передать показания"),
    BotCommand(command="cancel", description="Прервать действие"),
]

GREETING = (
    "Здравствуйте! Я принимаю показания счётчиков электроэнергии и воды и сразу "
    "считаю предварительную сумму к оплате.\n\n"
    "1. Привяжите лицевой счёт: /add — понадобится код для добавления ЛС или сумма "
    "последней квитанции, либо номер телефона из договора.\n"
    "2. Присылайте показания сообщением, например: 1234567890 12345 6789 (день ночь). "
    "Если привязан один ЛС, номер можно не писать.\n\n"
    "Все команды: /help"
)

NO_ACCOUNTS = "Привязанных лицевых счетов нет. Привязать: /add"

_QUESTIONS = {
    LinkMethod.RECEIPT_CODE: "Введите код для добавления ЛС — он напечатан в квитанции.",
    LinkMethod.BILL_TOTAL: ("Введите сумму последней квитанции до копеек, например 1234,56."),
    LinkMethod.CONTACT: (
        "Нажмите кнопку «Поделиться номером» внизу: номер должен совпадать с номером "
        "телефона в договоре."
    ),
}
_BUTTONS = {
    LinkMethod.RECEIPT_CODE: "Код из квитанции",
    LinkMethod.BILL_TOTAL: "Сумма квитанции",
    LinkMethod.CONTACT: "Номер телефона",
}


class Linking(StatesGroup):
    account = State()  # waiting for the account number
    method = State()  # waiting for the choice of proof
    answer = State()  # waiting for the answer (or the contact)


class Sending(StatesGroup):
    account = State()  # choosing the account
    value = State()  # waiting for the value of register ``index``
    confirm = State()  # the summary is shown: send or cancel


class TelegramChannel:
    def __init__(
        self,
        *,
        bot: Bot,
        on_inbound: OnInbound,
        on_entered: OnEntered,
        summarize: Callable[[Outcome], str],
        desk: Desk,
        clock: Callable[[], datetime],
        zone: ZoneInfo,
        storage: BaseStorage,
        isolation: BaseEventIsolation,
        help_text: str,
        webhook_url: str = "",
        webhook_secret: str = "",
        singleton: Singleton | None = None,
    ) -> None:
        self.bot = bot
        # One chat's updates are handled one at a time, in order (a dialog's answer never
        # overtakes its question): aiogram's events isolation, across processes in Redis.
        self.dispatcher = Dispatcher(storage=storage, events_isolation=isolation)
        self._storage, self._isolation = storage, isolation
        self.dispatcher.include_router(self._router())
        self._on_inbound = on_inbound
        self._on_entered = on_entered
        self._summarize = summarize
        self._desk = desk
        self._clock = clock
        self._zone = zone
        self._help = help_text
        self._webhook_url = webhook_url
        # Whether the bot hears Telegram: the webhook is set, or the last poll answered.
        self.up = False
        self._singleton = singleton
        self._secret = webhook_secret
        self._tasks: set[asyncio.Task[None]] = set()

    # ----- lifecycle -------------------------------------------------------------------

    async def run(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: the menu and the webhook (or polling) while the
        server runs; updates kept but not processed before are processed first."""
        await self._prepare()
        stop = asyncio.Event()
        poller = None
        if not self._webhook_url:
            # One poller among all processes (Telegram refuses two getUpdates at once).
            polling = self._singleton("telegram", self._poll, stop) if self._singleton else None
            poller = asyncio.create_task(polling or self._poll(stop))
        await self._replay()
        yield
        stop.set()
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await self._isolation.close()
        await self._storage.close()

    async def _prepare(self) -> None:
        try:
            await self.bot.set_my_commands(COMMANDS)
            if self._webhook_url:
                await self.bot.set_webhook(
                    self._webhook_url,
                    secret_token=self._secret,
                    allowed_updates=["message", "callback_query"],
                )
                log.info("telegram_webhook_set", url=self._webhook_url)
                self.up = True
            else:
                await self.bot.delete_webhook()
                log.info("telegram_polling")
        except TelegramAPIError as exc:
            # The server still serves SMS; the bot retries when Telegram is back (polling)
            # or when the next start sets the webhook.
            log.error("telegram_setup_failed", error=str(exc))

    async def _replay(self) -> None:
        for update_id, payload in await self._desk.unprocessed():
            log.info("telegram_update_replayed", update_id=update_id)
            await self._process(update_id, payload)

    async def _poll(self, stop: asyncio.Event) -> None:
        """Long polling: each update is kept before the next ``getUpdates`` confirms it."""
        offset: int | None = None
        pause = 1.0  # after a failed poll; doubles while Telegram stays unreachable
        while not stop.is_set():
            try:
                updates = await self.bot.get_updates(offset=offset, timeout=25)
            except TelegramRetryAfter as exc:
                await asyncio.sleep(exc.retry_after)
                continue
            except (TelegramAPIError, TelegramNetworkError) as exc:
                self.up = False
                log.warning("telegram_poll_failed", error=str(exc), retry_in=pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 60.0)
                continue
            pause = 1.0
            self.up = True
            for update in updates:
                payload = update.model_dump_json(exclude_none=True)
                try:
                    kept = await self._desk.keep_update(update.update_id, payload)
                except StorageUnavailable:
                    log.warning("telegram_update_not_kept", update_id=update.update_id)
                    await asyncio.sleep(2)
                    break  # not confirmed: getUpdates gives it again
                if kept:
                    await self._process(update.update_id, payload)
                offset = update.update_id + 1

    # ----- the webhook -----------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self.webhook)]

    async def webhook(self, request: web.Request) -> web.Response:
        """Keep the update, acknowledge it, then process it. 401 without the right
        secret; 400 for a body that is no update; 503 when it could not be kept (Telegram
        delivers it again)."""
        if not self._secret or request.headers.get(SECRET_HEADER) != self._secret:
            log.warning("telegram_refused", reason="bad secret token")
            return web.Response(status=401, text="unauthorized")
        try:
            data = await request.json()
            update_id = int(data["update_id"])
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400, text="not a Telegram update")
        payload = json.dumps(data, ensure_ascii=False)
        try:
            kept = await self._desk.keep_update(update_id, payload)
        except StorageUnavailable:
            log.warning("telegram_update_not_kept", update_id=update_id)
            return web.Response(status=503, text="try again")
        if kept:
            task = asyncio.create_task(self._process(update_id, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(text="ok")

    async def _process(self, update_id: int, payload: str) -> None:
        try:
            update = Update.model_validate_json(payload)
            await self.dispatcher.feed_update(self.bot, update)
        except Exception:
            # A handler's failure must not take the process down, nor be retried for
            # ever: it is logged, and the update is done with.
            log.exception("telegram_update_failed", update_id=update_id)
        try:
            await self._desk.processed(update_id)
        except StorageUnavailable:
            log.warning("telegram_update_not_marked", update_id=update_id)

    # ----- handlers ----------------------------------------------------------------------

    def _router(self) -> Router:
        router = Router(name="gateway")
        router.message.register(self._start, CommandStart())
        router.message.register(self._show_help, Command("help"))
        router.message.register(self._cancel, Command("cancel"))
        router.message.register(self._add, Command("add"))
        router.message.register(self._accounts, Command("accounts"))
        router.message.register(self._remove, Command("remove"))
        router.message.register(self._remind, Command("remind"))
        router.message.register(self._history, Command("history"))
        router.message.register(self._tariffs, Command("tariffs"))
        router.message.register(self._send, Command("send"))
        router.message.register(self._value_given, StateFilter(Sending.value), F.text)
        router.message.register(self._contact, F.contact)
        router.message.register(self._account_given, StateFilter(Linking.account), F.text)
        router.message.register(self._answer_given, StateFilter(Linking.answer), F.text)
        router.message.register(self._readings, F.text)
        router.callback_query.register(self._method_chosen, F.data.startswith("link:"))
        router.callback_query.register(self._unlink_chosen, F.data.startswith("unlink:"))
        router.callback_query.register(self._send_account, F.data.startswith("send:account:"))
        router.callback_query.register(self._send_confirmed, F.data == "send:confirm")
        router.callback_query.register(self._send_cancelled, F.data == "send:cancel")
        return router

    async def _start(self, message: Message, state: FSMContext) -> None:
        await state.clear()
        await _answer(message, GREETING, ReplyKeyboardRemove())

    async def _show_help(self, message: Message) -> None:
        commands = "\n".join(f"/{c.command} — {c.description}" for c in COMMANDS)
        await _answer(message, f"{self._help}\n\nКоманды:\n{commands}")

    async def _cancel(self, message: Message, state: FSMContext) -> None:
        await state.clear()
        await _answer(message, "Действие отменено.", ReplyKeyboardRemove())

    async def _add(self, message: Message, command: CommandObject, state: FSMContext) -> None:
        await state.clear()
        if command.args:
            await self._link_account(message, state, command.args.strip())
            return
        await state.set_state(Linking.account)
        await _answer(message, "Введите номер лицевого счёта, который хотите привязать.")

    async def _account_given(self, message: Message, state: FSMContext) -> None:
        await self._link_account(message, state, (message.text or "").strip())

    async def _link_account(self, message: Message, state: FSMContext, account: str) -> None:
        outcome = await self._desk.start_link(_chat(message), account)
        if outcome.verdict is not Verdict.ASK:
            await state.clear()
            await _answer(message, self._link_text(account, outcome))
            return
        assert outcome.facts is not None
        await state.set_state(Linking.method)
        await state.update_data(account=account)
        buttons = [
            [InlineKeyboardButton(text=_BUTTONS[method], callback_data=f"link:{method.value}")]
            for method in methods(outcome.facts)
        ]
        await _answer(
            message,
            f"ЛС {account}. Как подтвердить, что это ваш счёт?",
            InlineKeyboardMarkup(inline_keyboard=buttons),
        )

    async def _method_chosen(self, query: CallbackQuery, state: FSMContext) -> None:
        await query.answer()
        data = await state.get_data()
        account = data.get("account")
        if account is None or not isinstance(query.message, Message):
            await self.bot.send_message(query.from_user.id, "Начните заново: /add")
            return
        method = LinkMethod((query.data or "").removeprefix("link:"))
        await state.set_state(Linking.answer)
        await state.update_data(method=method.value)
        markup: ReplyKeyboardMarkup | ReplyKeyboardRemove | None = None
        if method is LinkMethod.CONTACT:
            share = KeyboardButton(text="Поделиться номером", request_contact=True)
            markup = ReplyKeyboardMarkup(
                keyboard=[[share]], resize_keyboard=True, one_time_keyboard=True
            )
        await _answer(query.message, _QUESTIONS[method], markup)

    async def _answer_given(self, message: Message, state: FSMContext) -> None:
        data = await state.get_data()
        method = LinkMethod(data["method"])
        if method is LinkMethod.CONTACT:
            await _answer(message, _QUESTIONS[method])
            return
        proof = Proof(method, message.text or "")
        await self._prove(message, state, data["account"], proof)

    async def _contact(self, message: Message, state: FSMContext) -> None:
        data = await state.get_data()
        contact = message.contact
        if contact is None or "account" not in data:
            await _answer(message, "Чтобы привязать лицевой счёт, начните с команды /add.")
            return
        proof = Proof(
            LinkMethod.CONTACT,
            contact.phone_number,
            contact_user_id=contact.user_id,
            from_user_id=message.from_user.id if message.from_user else None,
        )
        await self._prove(message, state, data["account"], proof)

    async def _prove(self, message: Message, state: FSMContext, account: str, proof: Proof) -> None:
        outcome = await self._desk.prove(_chat(message), account, proof)
        if outcome.verdict not in (Verdict.WRONG, Verdict.NOT_OWN_CONTACT):
            await state.clear()  # done: linked, or nothing more to try now
        await _answer(message, self._link_text(account, outcome), ReplyKeyboardRemove())

    def _link_text(self, account: str, outcome: LinkOutcome) -> str:
        match outcome.verdict:
            case Verdict.LINKED:
                address = outcome.facts.address if outcome.facts else ""
                where = f" ({address})" if address else ""
                return (
                    f"ЛС {account}{where} привязан. Присылайте показания, например: "
                    f"{account} 12345 6789."
                )
            case Verdict.ALREADY:
                return f"ЛС {account} уже привязан к этому чату."
            case Verdict.WRONG:
                return (
                    f"Ответ не совпадает. Осталось попыток: {outcome.remaining}. "
                    "Попробуйте ещё раз или /cancel."
                )
            case Verdict.LOCKED:
                assert outcome.until is not None
                until = outcome.until.astimezone(self._zone)
                return (
                    f"Слишком много неверных ответов для ЛС {account}. Привязать его можно "
                    f"будет после {until:%d.%m.%Y %H:%M}."
                )
            case Verdict.UNKNOWN:
                return f"ЛС {account} не найден. Проверьте номер в квитанции и /add снова."
            case Verdict.NOT_OFFERED:
                return f"Для ЛС {account} нет данных для проверки. Обратитесь к поставщику."
            case Verdict.NOT_OWN_CONTACT:
                return "Это чужой контакт. Поделитесь своим номером кнопкой ниже или /cancel."
            case Verdict.ASK:
                return f"ЛС {account}: выберите способ подтверждения."

    async def _accounts(self, message: Message) -> None:
        linked = await self._desk.linked(_chat(message))
        if not linked:
            await _answer(message, NO_ACCOUNTS)
            return
        lines = [f"• {f.account} — {f.address}" if f.address else f"• {f.account}" for f in linked]
        await _answer(message, "Ваши лицевые счета:\n" + "\n".join(lines))

    async def _remove(self, message: Message, command: CommandObject) -> None:
        chat = _chat(message)
        if command.args:
            await self._unlink(message, chat, command.args.strip())
            return
        linked = await self._desk.linked(chat)
        if not linked:
            await _answer(message, "Привязанных лицевых счетов нет.")
            return
        buttons = [
            [InlineKeyboardButton(text=f.account, callback_data=f"unlink:{f.account}")]
            for f in linked
        ]
        await _answer(message, "Какой ЛС отвязать?", InlineKeyboardMarkup(inline_keyboard=buttons))

    async def _unlink_chosen(self, query: CallbackQuery) -> None:
        await query.answer()
        if isinstance(query.message, Message):
            account = (query.data or "").removeprefix("unlink:")
            await self._unlink(query.message, _chat(query.message), account)

    async def _unlink(self, message: Message, chat: str, account: str) -> None:
        done = await self._desk.unlink(chat, account)
        text = f"ЛС {account} отвязан." if done else f"ЛС {account} не привязан к этому чату."
        await _answer(message, text)

    async def _remind(self, message: Message, command: CommandObject) -> None:
        choice = (command.args or "").strip().lower()
        chat = _chat(message)
        if choice in ("on", "вкл"):
            await self._desk.set_reminders(chat, True)
            await _answer(message, "Напоминания включены: напомню в первый день приёма.")
        elif choice in ("off", "выкл"):
            await self._desk.set_reminders(chat, False)
            await _answer(message, "Напоминания выключены.")
        else:
            on = (await self._desk.prefs(chat)).reminders
            state = "включены" if on else "выключены"
            await _answer(message, f"Напоминания {state}. Изменить: /remind on или /remind off")

    # ----- guided sending ----------------------------------------------------------------

    async def _send(self, message: Message, state: FSMContext) -> None:
        await state.clear()
        linked = await self._desk.linked(_chat(message))
        if not linked:
            await _answer(message, "Сначала привяжите лицевой счёт: /add")
            return
        if len(linked) == 1:
            await self._begin(message, state, linked[0].account)
            return
        await state.set_state(Sending.account)
        buttons = [
            [InlineKeyboardButton(text=f.account, callback_data=f"send:account:{f.account}")]
            for f in linked
        ]
        await _answer(
            message,
            "По какому ЛС передать показания?",
            InlineKeyboardMarkup(inline_keyboard=buttons),
        )

    async def _send_account(self, query: CallbackQuery, state: FSMContext) -> None:
        await query.answer()
        if isinstance(query.message, Message):
            account = (query.data or "").removeprefix("send:account:")
            await self._begin(query.message, state, account)

    async def _begin(self, message: Message, state: FSMContext, account: str) -> None:
        found = await self._desk.account(_chat(message), account)
        if found is None or not found.registers:
            await state.clear()
            await _answer(message, f"ЛС {account} не привязан к этому чату или без счётчиков.")
            return
        await state.set_state(Sending.value)
        await state.update_data(account=account, values=[])
        await self._ask(message, found.ordered_registers[0])

    async def _ask(self, message: Message, register: Register) -> None:
        previous = register.previous
        last = (
            "показаний ещё не было"
            if previous is None
            else f"последнее показание {_number(previous.value)} от {previous.taken_on:%d.%m.%Y}"
        )
        await _answer(
            message,
            f"Счётчик {register.meter}, {_SERVICE[register.service.value]}"
            f"{'' if register.zone.value == 'single' else ', ' + _ZONE[register.zone.value]}: "
            f"{last}. Введите текущее показание:",
        )

    async def _value_given(self, message: Message, state: FSMContext) -> None:
        data = await state.get_data()
        account, values = data["account"], list(data["values"])
        found = await self._desk.account(_chat(message), account)
        if found is None:
            await state.clear()
            await _answer(message, f"ЛС {account} больше не привязан к этому чату.")
            return
        registers = found.ordered_registers
        register = registers[len(values)]
        value = _decimal(message.text or "")
        if value is None:
            await _answer(message, "Это не число. Введите показание цифрами, например 12345.")
            return
        entered = _entered(account, [*values, [register.meter, register.zone.value, str(value)]])
        preview = await self._on_entered.preview(self._inbound(message, ""), entered)
        if preview.status is Status.REJECTED:
            await _answer(message, f"{preview.reply or 'Показание не принято.'}\nВведите ещё раз:")
            return
        values.append([register.meter, register.zone.value, str(value)])
        await state.update_data(values=values)
        if len(values) < len(registers):
            await self._ask(message, registers[len(values)])
            return
        await state.set_state(Sending.confirm)
        buttons = [
            [
                InlineKeyboardButton(text="Отправить", callback_data="send:confirm"),
                InlineKeyboardButton(text="Отменить", callback_data="send:cancel"),
            ]
        ]
        await _answer(
            message, self._summarize(preview), InlineKeyboardMarkup(inline_keyboard=buttons)
        )

    async def _send_confirmed(self, query: CallbackQuery, state: FSMContext) -> None:
        await query.answer()
        data = await state.get_data()
        await state.clear()
        if not isinstance(query.message, Message) or "account" not in data:
            return
        entered = _entered(data["account"], data["values"])
        try:
            outcome = await self._on_entered.submit(self._inbound(query.message, ""), entered)
        except StorageUnavailable:
            await _answer(query.message, "Сервис временно недоступен. Попробуйте позже: /send")
            return
        if outcome.reply:
            await _answer(query.message, outcome.reply)

    async def _send_cancelled(self, query: CallbackQuery, state: FSMContext) -> None:
        await query.answer()
        await state.clear()
        if isinstance(query.message, Message):
            await _answer(query.message, "Отменено, показания не отправлены.")

    def _inbound(
        self, message: Message, text: str, external_id: str | None = None
    ) -> InboundMessage:
        return InboundMessage(CHANNEL, _chat(message), text, self._clock(), external_id)

    async def _history(self, message: Message) -> None:
        """The last readings of each meter of each linked account, whatever channel they
        came by, with their dates, periods and statuses; split into messages that fit."""
        accounts = await self._desk.history(_chat(message))
        if not accounts:
            await _answer(message, NO_ACCOUNTS)
            return
        for facts, readings in accounts:
            for text in _split(history_text(facts.account, readings)):
                await _answer(message, text)

    async def _tariffs(self, message: Message) -> None:
        """Through the intake's own "last readings" command, worded for the chat."""
        linked = await self._desk.linked(_chat(message))
        if not linked:
            await _answer(message, NO_ACCOUNTS)
            return
        for facts in linked:
            await self._through_intake(message, f"ПОСЛЕДНИЕ {facts.account}", None)

    async def _readings(self, message: Message) -> None:
        """Anything else a chat writes: readings (or a command of the format) through the
        intake, answered with its reply."""
        external_id = f"{message.chat.id}:{message.message_id}"
        await self._through_intake(message, message.text or "", external_id)

    async def _through_intake(self, message: Message, text: str, external_id: str | None) -> None:
        inbound = self._inbound(message, text, external_id)
        try:
            outcome = await self._on_inbound(inbound)
        except StorageUnavailable:
            await _answer(message, "Сервис временно недоступен. Пришлите показания позже.")
            return
        if outcome.reply:
            await _answer(message, outcome.reply)


def telegram_bot(token: str, api_base: str) -> Bot:
    """The bot, talking to Telegram's Bot API at ``api_base`` (another server: a local
    Bot API server, or a fake in tests). Its HTTP session opens on the first call."""
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_base)))


class TelegramSender:
    """Sends outbound messages to chats: 429 is retried after Telegram's ``retry_after``;
    403 (the user blocked the bot) fails for good and ``on_blocked`` is told."""

    def __init__(self, bot: Bot, on_blocked: Callable[[str], Awaitable[None]]) -> None:
        self._bot = bot
        self._on_blocked = on_blocked

    async def send(self, recipient: str, text: str) -> SendResult:
        try:
            sent = await self._bot.send_message(int(recipient), text[:MESSAGE_LIMIT])
        except TelegramRetryAfter as exc:
            return SendResult(SendVerdict.RETRY, "429 Too Many Requests", exc.retry_after)
        except TelegramForbiddenError as exc:
            await self._on_blocked(recipient)
            return SendResult(SendVerdict.FAILED, f"403 {exc.message}")
        except TelegramNetworkError as exc:
            return SendResult(SendVerdict.RETRY, f"network: {exc.message}")
        except TelegramAPIError as exc:
            return SendResult(SendVerdict.FAILED, exc.message)
        except ValueError:
            return SendResult(SendVerdict.FAILED, "not a chat id")
        return SendResult(SendVerdict.SENT, str(sent.message_id))


# Readings shown per meter by /history.
HISTORY_PER_METER = 6
_STATUS = {
    "accepted": "принято",
    "replaced": "заменено",
    "held": "на проверке",
    "declined": "отклонено",
}


def history_text(account: str, readings: list[StoredReading]) -> str:
    """The last :data:`HISTORY_PER_METER` readings of each meter, newest first: value,
    date, the period it counts for, status, the channel it came by."""
    if not readings:
        return f"ЛС {account}: показаний ещё не было."
    lines = [f"ЛС {account}:"]
    meters: dict[tuple[str, str, str], list[StoredReading]] = {}
    for reading in readings:
        meters.setdefault((reading.meter, reading.service, reading.zone), []).append(reading)
    for (meter, _, zone), rows in meters.items():
        lines.append(f"Счётчик {meter} ({_ZONE.get(zone, zone)}):")
        for r in reversed(rows[-HISTORY_PER_METER:]):
            status = _STATUS.get(r.status, r.status)
            lines.append(
                f"  {_number(r.value)} — {r.taken_on:%d.%m.%Y}, "
                f"за {periods.label(r.period)}, {status} ({r.channel})"
            )
    return "\n".join(lines)


_ZONE = {
    "single": "однотарифный",
    "day": "день",
    "night": "ночь",
    "kitchen": "кухня",
    "bath": "ванная",
}


_SERVICE = {
    "electricity": "электроэнергия",
    "hot_water": "горячая вода",
    "cold_water": "холодная вода",
}


def _number(value: Decimal) -> str:
    return format(value, "f").replace(".", ",")


def _decimal(text: str) -> Decimal | None:
    """A meter reading as typed: digits with an optional decimal comma or point."""
    cleaned = text.strip().replace(" ", "").replace(",", ".")
    if not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,6})?", cleaned):
        return None
    return Decimal(cleaned)


def _entered(account: str, values: list[list[str]]) -> Entered:
    return Entered(
        account, tuple(EnteredValue(meter, Zone(zone), Decimal(v)) for meter, zone, v in values)
    )


def _split(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """``text`` in messages of at most ``limit`` characters, cut at line ends."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        line = line[:limit]
        if current and len(current) + 1 + len(line) > limit:
            parts.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        parts.append(current)
    return parts


def _chat(message: Message) -> str:
    return str(message.chat.id)


async def _answer(
    message: Message,
    text: str,
    markup: InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None = None,
) -> None:
    await message.answer(text[:MESSAGE_LIMIT], reply_markup=markup)
