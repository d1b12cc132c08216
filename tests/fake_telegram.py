"""A loopback fake of Telegram's Bot API that speaks its real protocol.

It serves ``POST``/``GET {url}/bot{token}/{method}`` over real HTTP, reads the
multipart (or urlencoded, or JSON) body aiogram sends, and answers
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": ..., "description": ...,
"parameters": {...}}`` with the matching HTTP status, so the real aiogram stack runs against
it::

    async with serve_fake_bot_api() as fake:
        bot = fake.make_bot()  # Bot(TOKEN, session=AiohttpSession(api=...from_base(fake.url)))
        fake.push_update(message_update(1, 42, "привет"))
        fake.fail_next("sendMessage", 429, retry_after=3)
        ...
        assert fake.texts(42) == [...]

Every request is kept in ``calls`` (method, decoded params, ok, error_code, result).
Results are shaped like the Bot API objects (User, Chat, Message, Update, WebhookInfo)
so aiogram's models parse them. Some checks of the real server are modelled (they catch
real bugs): an empty or too long text, callback data over 64 bytes, a webhook secret
token with characters Telegram refuses, invalid bot commands, ``getUpdates`` while a
webhook is set or while another ``getUpdates`` is waiting (409). Not modelled: "message
is not modified" and "message to edit not found" (editing is lenient), HTML/Markdown
parsing, flood limits (script them with ``fail_next``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

TOKEN = "123456:TEST-token"
BOT_ID = 123456
BOT_USERNAME = "meter_test_bot"
BOT_USER: dict[str, Any] = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "Meter bot",
    "username": BOT_USERNAME,
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
MESSAGE_LIMIT = 4096  # UTF-16 code units, as Telegram counts them
CALLBACK_DATA_LIMIT = 64  # bytes
MAX_POLL_WAIT = 0.5  # seconds: a long poll waits at most this long here, whatever `timeout`
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Form fields kept as the strings they are (others are JSON-decoded when they parse:
# numbers, booleans, reply_markup, allowed_updates, commands, scope...).
TEXT_FIELDS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "url",
        "secret_token",
        "ip_address",
        "callback_query_id",
        "inline_message_id",
        "language_code",
        "action",
        "description",
        "short_description",
        "name",
        "title",
        "emoji",
        "question",
        "business_connection_id",
        "message_effect_id",
        "phone_number",
        "first_name",
        "last_name",
        "vcard",
        "address",
        "photo",
        "document",
        "audio",
        "video",
        "voice",
        "sticker",
        "animation",
        "custom_title",
        "payload",
        "currency",
        "start_parameter",
    }
)
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

Predicate = Callable[[], Any] | Callable[[list["Call"]], Any]


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (entity offsets, message limits)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Call:
    """One request the fake received. ``params`` are decoded (JSON fields parsed, numbers
    and booleans typed); ``raw`` the form values as sent. ``ok``/``error_code`` tell how
    it was answered, ``result`` is the ``result`` of an ok answer."""

    method: str
    params: dict[str, Any]
    raw: dict[str, str] = field(default_factory=dict, repr=False)
    ok: bool = True
    error_code: int | None = None
    result: Any = None


@dataclass(frozen=True)
class Failure:
    error_code: int
    description: str
    retry_after: int | None = None


class ApiError(Exception):
    """Answered as ``ok: false`` with this code, description and HTTP status."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after


def _error_response(error: ApiError | Failure) -> web.Response:
    body: dict[str, Any] = {
        "ok": False,
        "error_code": error.error_code,
        "description": error.description,
    }
    if error.retry_after is not None:
        body["parameters"] = {"retry_after": error.retry_after}
    return web.json_response(body, status=error.error_code)


def _decode(key: str, value: str) -> Any:
    if key in TEXT_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _now() -> int:
    return int(time.time())


def chat_object(chat_id: int, first_name: str | None = None) -> dict[str, Any]:
    """A Chat: private for positive ids, a group (``-100…``: a supergroup) otherwise."""
    if chat_id > 0:
        chat: dict[str, Any] = {"id": chat_id, "type": "private"}
        if first_name:
            chat["first_name"] = first_name
        return chat
    kind = "supergroup" if str(chat_id).startswith("-100") else "group"
    return {"id": chat_id, "type": kind, "title": "Test group"}


class FakeBotApi:
    """Telegram's Bot API for one bot (``token``), in memory.

    State a test reads: ``calls``, ``messages`` (the bot's messages by (chat_id,
    message_id), as last edited), ``webhook`` (the params of the last setWebhook, empty
    when none), ``commands`` (by (scope JSON, language_code)), ``pending`` (updates not
    confirmed yet), ``blocked`` (chats that blocked the bot)."""

    def __init__(self, token: str = TOKEN, *, max_poll_wait: float = MAX_POLL_WAIT) -> None:
        self.token = token
        self.max_poll_wait = max_poll_wait
        self.url = ""
        self.calls: list[Call] = []
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.webhook: dict[str, Any] = {}
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.pending: list[dict[str, Any]] = []
        self.blocked: set[int] = set()
        self._failures: dict[str, deque[Failure]] = {}
        self._last_message_id = 0
        self._last_update_id = 0
        self._poll_generation = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._closing = False
        self._methods: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "getme": self._get_me,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "answercallbackquery": self._answer_callback_query,
            "getupdates": self._get_updates,
            "deletemessage": self._delete_message,
            "sendchataction": self._send_chat_action,
        }

    # ----- the HTTP side --------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw, params = await self._read_params(request)
        call = Call(method, params, raw)
        self.calls.append(call)
        if request.match_info["token"] != self.token:
            call.ok, call.error_code = False, 401
            return _error_response(ApiError(401, "Unauthorized"))
        failures = self._failures.get(method.lower())
        try:
            if failures:
                failure = failures.popleft()
                raise ApiError(failure.error_code, failure.description, failure.retry_after)
            handler = self._methods.get(method.lower(), self._other)
            result = await handler(params)
        except ApiError as error:
            call.ok, call.error_code = False, error.error_code
            return _error_response(error)
        call.result = result
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    async def _read_params(request: web.Request) -> tuple[dict[str, str], dict[str, Any]]:
        raw: dict[str, str] = dict(request.query)
        params: dict[str, Any] = {k: _decode(k, v) for k, v in raw.items()}
        if request.method != "POST" or not request.can_read_body:
            return raw, params
        if request.content_type == "application/json":
            body = await request.json()
            for key, value in body.items():
                raw[key] = value if isinstance(value, str) else json.dumps(value)
                params[key] = value
            return raw, params
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                params[key] = {"filename": value.filename, "content": value.file.read()}
                raw[key] = value.filename
            else:
                text = value if isinstance(value, str) else bytes(value).decode()
                raw[key] = text
                params[key] = _decode(key, text)
        return raw, params

    # ----- scripting ------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error_code: int,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``method`` answer ``ok: false`` with this code (also
        the HTTP status) and description (a default per code when None: 429 says "Too Many
        Requests: retry after N", 403 "Forbidden: bot was blocked by the user"...).
        ``retry_after`` goes to ``parameters.retry_after``. Failures queue up in order."""
        if description is None:
            if error_code == 429:
                description = f"Too Many Requests: retry after {retry_after or 1}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(error_code, "Error")
        if error_code == 429 and retry_after is None:
            retry_after = 1
        queue = self._failures.setdefault(method.lower(), deque())
        queue.extend(Failure(error_code, description, retry_after) for _ in range(times))

    def block(self, chat_id: int) -> None:
        """The user blocked the bot: sendMessage/sendChatAction/editMessageText to this chat
        answer 403 "Forbidden: bot was blocked by the user" until ``unblock``."""
        self.blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        self.blocked.discard(chat_id)

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an incoming update for getUpdates (an ``update_id`` is given when absent);
        a waiting long poll answers at once."""
        if "update_id" not in update:
            update = {"update_id": self._last_update_id + 1, **update}
        self._last_update_id = max(self._last_update_id, int(update["update_id"]))
        self.pending.append(update)
        self._wake()
        return update

    async def deliver(self, update: dict[str, Any], url: str | None = None) -> int:
        """What Telegram does with a webhook set: POST the update as JSON to ``url`` (the
        webhook's by default) with the secret token header. Returns the HTTP status."""
        target = url or self.webhook.get("url")
        if not target:
            raise AssertionError("no webhook set and no url given")
        headers = {}
        if self.webhook.get("secret_token"):
            headers[SECRET_HEADER] = str(self.webhook["secret_token"])
        async with (
            aiohttp.ClientSession() as session,
            session.post(target, json=update, headers=headers) as resp,
        ):
            return resp.status

    # ----- reading what happened --------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        """Every call of ``method`` (case-insensitive), answered ok or not."""
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def sent(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """Params of the sendMessage calls answered ok (to ``chat_id`` when given)."""
        return [
            c.params
            for c in self.calls_of("sendMessage")
            if c.ok and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))
        ]

    def texts(self, chat_id: int | str | None = None) -> list[str]:
        """Texts of the messages sent (ok) to ``chat_id``, in order."""
        return [str(p.get("text", "")) for p in self.sent(chat_id)]

    def my_commands(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, Any]]:
        return self.commands.get(_commands_key(scope, language_code), [])

    async def wait_for(self, predicate: Predicate, timeout: float = 5.0) -> Any:
        """Poll until ``predicate()`` (or ``predicate(calls)`` when it takes an argument)
        is truthy; returns that value. AssertionError after ``timeout`` seconds."""
        wants_calls = _takes_argument(predicate)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = predicate(self.calls) if wants_calls else predicate()  # type: ignore[call-arg]
            if value:
                return value
            if asyncio.get_running_loop().time() >= deadline:
                seen = ", ".join(c.method for c in self.calls) or "none"
                raise AssertionError(f"condition not met within {timeout}s; calls: {seen}")
            await asyncio.sleep(0.01)

    def make_bot(self, token: str | None = None) -> Bot:
        """An aiogram Bot talking to this fake (close its session: ``bot.session.close()``)."""
        if not self.url:
            raise AssertionError("the fake is not served: use serve_fake_bot_api()")
        api = TelegramAPIServer.from_base(self.url)
        return Bot(token or self.token, session=AiohttpSession(api=api))

    # ----- methods --------------------------------------------------------------------

    async def _get_me(self, params: dict[str, Any]) -> Any:
        return dict(BOT_USER)

    async def _set_webhook(self, params: dict[str, Any]) -> Any:
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._drop_pending()
        # No url (aiogram leaves out an empty one) removes the webhook, as Telegram does.
        self.webhook = dict(params) if params.get("url") else {}
        self._wake()
        return True

    async def _delete_webhook(self, params: dict[str, Any]) -> Any:
        if params.get("drop_pending_updates"):
            self._drop_pending()
        self.webhook = {}
        return True

    async def _get_webhook_info(self, params: dict[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": str(self.webhook.get("url", "")),
            "has_custom_certificate": False,
            "pending_update_count": len(self.pending),
        }
        if self.webhook.get("max_connections"):
            info["max_connections"] = self.webhook["max_connections"]
        if self.webhook.get("allowed_updates") is not None:
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    async def _set_my_commands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND.fullmatch(
                str(command.get("command", ""))
            ):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        key = _commands_key(params.get("scope"), params.get("language_code", ""))
        self.commands[key] = commands
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> Any:
        key = _commands_key(params.get("scope"), params.get("language_code", ""))
        return self.commands.get(key, [])

    async def _delete_my_commands(self, params: dict[str, Any]) -> Any:
        key = _commands_key(params.get("scope"), params.get("language_code", ""))
        self.commands.pop(key, None)
        return True

    async def _send_message(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > MESSAGE_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        markup = _check_markup(params.get("reply_markup"))
        self._last_message_id += 1
        message = {
            "message_id": self._last_message_id,
            "from": dict(BOT_USER),
            "chat": chat_object(chat_id),
            "date": _now(),
            "text": text,
        }
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup  # Telegram echoes inline keyboards only
        self.messages[(chat_id, self._last_message_id)] = message
        return message

    async def _edit_message_text(self, params: dict[str, Any]) -> Any:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > MESSAGE_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        markup = _check_markup(params.get("reply_markup"))
        if params.get("inline_message_id"):
            return True
        chat_id = self._chat_id(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        old = self.messages.get((chat_id, message_id))
        message = {
            "message_id": message_id,
            "from": dict(BOT_USER),
            "chat": chat_object(chat_id),
            "date": old["date"] if old else _now(),
            "edit_date": _now(),
            "text": text,
        }
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        self.messages[(chat_id, message_id)] = message
        return message

    async def _answer_callback_query(self, params: dict[str, Any]) -> Any:
        if not params.get("callback_query_id"):
            raise ApiError(400, "Bad Request: QUERY_ID_INVALID")
        return True

    async def _delete_message(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params, check_blocked=False)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        self.messages.pop((chat_id, message_id), None)  # lenient, like editing
        return True

    async def _send_chat_action(self, params: dict[str, Any]) -> Any:
        self._chat_id(params)
        if not params.get("action"):
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    async def _other(self, params: dict[str, Any]) -> Any:
        return True

    async def _get_updates(self, params: dict[str, Any]) -> Any:
        if self.webhook.get("url"):
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake()  # an older poll still waiting is terminated (409), as on Telegram
        offset = params.get("offset")
        if isinstance(offset, int) and offset > 0:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        elif isinstance(offset, int) and offset < 0:
            self.pending = self.pending[offset:]
        limit = params.get("limit")
        limit = limit if isinstance(limit, int) and 1 <= limit <= 100 else 100
        timeout = params.get("timeout")
        wait = min(float(timeout), self.max_poll_wait) if isinstance(timeout, int | float) else 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait, 0.0)
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            if self.pending or self._closing:
                return self.pending[:limit]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)

    # ----- helpers --------------------------------------------------------------------

    def _chat_id(self, params: dict[str, Any], *, check_blocked: bool = True) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            raise ApiError(400, "Bad Request: chat not found")
        if check_blocked and chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _drop_pending(self) -> None:
        self.pending.clear()

    def _wake(self) -> None:
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        """Long polls still waiting answer at once (the server is going away)."""
        self._closing = True
        self._wake()


def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
    scope = scope or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(language_code or "")


def _check_markup(markup: Any) -> dict[str, Any] | None:
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard", []):
        for button in row:
            if not button.get("text"):
                raise ApiError(400, "Bad Request: BUTTON_TEXT_INVALID")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_LIMIT:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return markup


def _takes_argument(predicate: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(predicate).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        for p in parameters
    )


@asynccontextmanager
async def serve_fake_bot_api(fake: FakeBotApi | None = None) -> AsyncIterator[FakeBotApi]:
    """Serve a fake (a new one by default) on a free 127.0.0.1 port over real HTTP; its
    ``url`` is the base URL for ``TelegramAPIServer.from_base``."""
    fake = fake or FakeBotApi()
    runner = web.AppRunner(fake.app(), shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        fake.close()
        await runner.cleanup()


# ----- incoming updates, in the Bot API's shape -------------------------------------------


def user_object(user_id: int, first_name: str = "Иван") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "ru"}


def _message(
    chat_id: int,
    user_id: int | None,
    first_name: str,
    message_id: int,
    date: int | None,
    **content: Any,
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "from": user_object(chat_id if user_id is None else user_id, first_name),
        "chat": chat_object(chat_id, first_name),
        "date": _now() if date is None else date,
        **content,
    }


def message_update(
    update_id: int,
    chat_id: int,
    text: str,
    user_id: int | None = None,
    first_name: str = "Иван",
    *,
    message_id: int | None = None,
    date: int | None = None,
) -> dict[str, Any]:
    """A text message from a user (``user_id`` defaults to ``chat_id``: a private chat)."""
    message = _message(chat_id, user_id, first_name, message_id or update_id, date, text=text)
    return {"update_id": update_id, "message": message}


def command_update(
    update_id: int,
    chat_id: int,
    command: str,
    args: str = "",
    user_id: int | None = None,
    first_name: str = "Иван",
    *,
    message_id: int | None = None,
    date: int | None = None,
) -> dict[str, Any]:
    """A command (``"start"``, ``"/start"`` or ``"/start@meter_test_bot"``), with ``args``
    after a space, and its bot_command entity."""
    command = command if command.startswith("/") else f"/{command}"
    text = f"{command} {args}" if args else command
    entity = {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
    message = _message(
        chat_id, user_id, first_name, message_id or update_id, date, text=text, entities=[entity]
    )
    return {"update_id": update_id, "message": message}


def contact_update(
    update_id: int,
    chat_id: int,
    phone_number: str,
    contact_user_id: int | None,
    from_user_id: int,
    *,
    first_name: str = "Иван",
    message_id: int | None = None,
    date: int | None = None,
) -> dict[str, Any]:
    """A shared contact: the user's own when ``contact_user_id == from_user_id``."""
    contact: dict[str, Any] = {"phone_number": phone_number, "first_name": first_name}
    if contact_user_id is not None:
        contact["user_id"] = contact_user_id
    message = _message(
        chat_id, from_user_id, first_name, message_id or update_id, date, contact=contact
    )
    return {"update_id": update_id, "message": message}


def callback_update(
    update_id: int,
    chat_id: int,
    data: str,
    message_id: int,
    *,
    user_id: int | None = None,
    first_name: str = "Иван",
    message_text: str = "Выберите:",
    query_id: str | None = None,
    date: int | None = None,
) -> dict[str, Any]:
    """A press of an inline button with ``data`` under the bot's message ``message_id``."""
    message = {
        "message_id": message_id,
        "from": dict(BOT_USER),
        "chat": chat_object(chat_id, first_name),
        "date": _now() if date is None else date,
        "text": message_text,
    }
    query = {
        "id": query_id or str(4_000_000_000_000 + update_id),
        "from": user_object(chat_id if user_id is None else user_id, first_name),
        "message": message,
        "chat_instance": str(-(abs(chat_id) * 7919 + 17)),
        "data": data,
    }
    return {"update_id": update_id, "callback_query": query}
