"""The chat channel's own tables (Telegram): updates kept before they are acknowledged,
linked accounts, link attempts, each chat's preferences (:mod:`gateway.domain.chats`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, exists, false, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Executable

from gateway.domain.authorization import CHAT_CHANNEL
from gateway.domain.chats import ChatPrefs, LinkFacts, LinkMethod
from gateway.storage import tables as t

_u, _c, _l, _a = t.telegram_updates.c, t.chats.c, t.chat_links.c, t.link_attempts.c
_acc, _m, _r = t.accounts.c, t.messages.c, t.readings.c

# An insert that does nothing when the row's key is there already, per back end: a
# failed insert (IntegrityError) would abort the whole transaction on PostgreSQL.
_Dialects = Mapping[str, Executable]


def _insert_or_nothing(table: Table) -> _Dialects:
    return {
        "postgresql": postgresql.insert(table).on_conflict_do_nothing(),
        "sqlite": sqlite.insert(table).on_conflict_do_nothing(),
    }


def _upsert_chat(**changes: Any) -> _Dialects:
    """A chat's row inserted with the defaults and ``changes``, or ``changes`` made to it."""
    statements: dict[str, Executable] = {}
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert)):
        statement = insert(t.chats).values(
            chat=bindparam("chat"),
            reminders=bindparam("reminders"),
            blocked_at=bindparam("blocked_at"),
            created_at=bindparam("now"),
        )
        statements[name] = statement.on_conflict_do_update(
            index_elements=[_c.chat], set_={key: statement.excluded[key] for key in changes}
        )
    return statements


_UPDATE_KNOWN = select(_u.update_id).where(_u.update_id == bindparam("update_id"))
_INSERT_UPDATE = _insert_or_nothing(t.telegram_updates)
_MARK_PROCESSED = (
    t.telegram_updates.update()
    .where(_u.update_id == bindparam("update"))
    .values(processed_at=bindparam("now"))
)
_UNPROCESSED = (
    select(_u.update_id, _u.payload)
    .where(_u.processed_at.is_(None))
    .order_by(_u.update_id)
    .limit(bindparam("limit"))
)

_FACTS = (_acc.account, _acc.address, _acc.phone, _acc.receipt_code, _acc.last_bill_total)
_LINK_FACTS = select(*_FACTS).where(_acc.account == bindparam("account"))
_LINKED = (
    select(*_FACTS)
    .join(t.chat_links, _l.account == _acc.account)
    .where(_l.chat == bindparam("chat"))
    .order_by(_acc.account)
)
_IS_LINKED = select(_l.account).where(
    _l.chat == bindparam("chat"), _l.account == bindparam("account")
)
_INSERT_LINK = _insert_or_nothing(t.chat_links)
_UNLINK = t.chat_links.delete().where(
    _l.chat == bindparam("chat"), _l.account == bindparam("account")
)

_INSERT_ATTEMPT = t.link_attempts.insert()
_WRONG_ANSWERS = (
    select(_a.at)
    .where(_a.account == bindparam("account"), _a.ok == false(), _a.at > bindparam("since"))
    .order_by(_a.at, _a.id)
)

_PREFS = select(_c.reminders, _c.blocked_at).where(_c.chat == bindparam("chat"))
_SET_REMINDERS = _upsert_chat(reminders=True)
_MARK_BLOCKED = _upsert_chat(blocked_at=True)

# Chats with a linked account, reminders on and not blocked (a chat without a row of
# preferences has the defaults), from which no reading for the period was received.
_READING_SENT = exists().where(
    _m.channel == CHAT_CHANNEL,
    _m.sender == _l.chat,
    _r.message_id == _m.id,
    _r.period == bindparam("period"),
)
_TO_REMIND = (
    select(_l.chat)
    .distinct()
    .outerjoin(t.chats, _c.chat == _l.chat)
    .where(
        _c.reminders.is_not(False),  # NULL: no row, reminders on by default
        _c.blocked_at.is_(None),
        ~_READING_SENT,
    )
    .order_by(_l.chat)
)


class SqlChats:
    """The chat channel's tables in a unit of work (see :class:`ChatStore`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _dialect(self, statements: _Dialects) -> Executable:
        return statements[self.conn.dialect.name]

    # ----- updates -----------------------------------------------------------------------

    def record_update(self, update_id: int, payload: str, now: datetime) -> bool:
        """Keep an update; False when its id was kept before (also by a concurrent
        transaction that committed it meanwhile)."""
        if self.conn.execute(_UPDATE_KNOWN, {"update_id": update_id}).first() is not None:
            return False
        row = {"update_id": update_id, "payload": payload, "received_at": now}
        result = self.conn.execute(self._dialect(_INSERT_UPDATE), row)
        return result.rowcount == 1

    def mark_processed(self, update_id: int, now: datetime) -> None:
        self.conn.execute(_MARK_PROCESSED, {"update": update_id, "now": now})

    def unprocessed(self, limit: int) -> list[tuple[int, str]]:
        rows = self.conn.execute(_UNPROCESSED, {"limit": limit})
        return [(int(r.update_id), r.payload) for r in rows]

    # ----- links -------------------------------------------------------------------------

    def link_facts(self, account: str) -> LinkFacts | None:
        row = self.conn.execute(_LINK_FACTS, {"account": account}).first()
        return None if row is None else _facts(row)

    def link(self, chat: str, account: str, now: datetime) -> bool:
        params = {"chat": chat, "account": account}
        if self.conn.execute(_IS_LINKED, params).first() is not None:
            return False
        result = self.conn.execute(self._dialect(_INSERT_LINK), params | {"linked_at": now})
        return result.rowcount == 1

    def unlink(self, chat: str, account: str) -> bool:
        result = self.conn.execute(_UNLINK, {"chat": chat, "account": account})
        return result.rowcount > 0

    def linked(self, chat: str) -> list[LinkFacts]:
        return [_facts(row) for row in self.conn.execute(_LINKED, {"chat": chat})]

    def record_attempt(
        self, account: str, chat: str, method: LinkMethod, ok: bool, now: datetime
    ) -> None:
        self.conn.execute(
            _INSERT_ATTEMPT,
            {"account": account, "chat": chat, "method": method.value, "ok": ok, "at": now},
        )

    def wrong_answers(self, account: str, since: datetime) -> list[datetime]:
        return list(self.conn.scalars(_WRONG_ANSWERS, {"account": account, "since": since}))

    # ----- preferences -------------------------------------------------------------------

    def prefs(self, chat: str) -> ChatPrefs:
        row = self.conn.execute(_PREFS, {"chat": chat}).first()
        if row is None:
            return ChatPrefs(chat)
        return ChatPrefs(chat, bool(row.reminders), row.blocked_at)

    def set_reminders(self, chat: str, on: bool, now: datetime) -> None:
        params = {"chat": chat, "reminders": on, "blocked_at": None, "now": now}
        self.conn.execute(self._dialect(_SET_REMINDERS), params)

    def mark_blocked(self, chat: str, now: datetime) -> None:
        params = {"chat": chat, "reminders": True, "blocked_at": now, "now": now}
        self.conn.execute(self._dialect(_MARK_BLOCKED), params)

    def chats_to_remind(self, period: str) -> list[str]:
        return list(self.conn.scalars(_TO_REMIND, {"period": period}))


def _facts(row: Any) -> LinkFacts:
    return LinkFacts(row.account, row.address, row.phone, row.receipt_code, row.last_bill_total)
