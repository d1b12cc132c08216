"""The audit trail: every inbound message with what became of it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.selectable import TableValuedAlias

from gateway.domain.errors import AlreadyRecorded
from gateway.domain.model import (
    InboundMessage,
)
from gateway.domain.outcome import Outcome
from gateway.domain.store import StoredMessage
from gateway.storage import tables as t
from gateway.storage.prepared import OneOf, Prepared, insert_into

_m = t.messages.c
_FIND_MESSAGE = select(_m.id, _m.status, _m.outcome).where(
    _m.channel == bindparam("channel"), _m.external_id == bindparam("external_id")
)
_COUNT_RECENT = select(func.count()).where(
    _m.channel == bindparam("channel"),
    _m.sender == bindparam("sender"),
    _m.received_at > bindparam("since"),
)
_COUNT_RECENT_WITH_CODE = _COUNT_RECENT.where(_m.error_code == bindparam("error_code"))
# The statements every message runs (see gateway.storage.prepared).
_FIND = Prepared(_FIND_MESSAGE)
_COUNT = Prepared(_COUNT_RECENT)
_RECORD = insert_into(t.messages)


def _rows_of(name: str, type_: Any, column: str, alias: str) -> TableValuedAlias:
    """The list bound as ``name`` (one PostgreSQL array of ``type_``), as rows of one
    ``column`` of ``alias``, in the list's order: what a statement seeks or locks each
    element of."""
    unnested = func.unnest(bindparam(name, type_=ARRAY(type_))).table_valued(column)
    return unnested.render_derived(alias)


# Senders' locks in one statement, taken in the order of the (sorted) keys.
_lock_keys = _rows_of("keys", BigInteger, "k", "keys")
_LOCK_SENDERS = Prepared(select(func.pg_advisory_xact_lock(_lock_keys.c.k)))
# A batch's earlier deliveries by provider id, by dialect name. PostgreSQL: a seek per id
# on the unique (channel, external_id) index. Given ``external_id = ANY (…)`` and no
# statistics, its planner keeps the list as a filter on the channel's rows: every message
# of the channel, read for each batch.
_external_ids = _rows_of("external_ids", _m.external_id.type, "external_id", "e")
_delivered = (
    select(_m.id, _m.status, _m.outcome)
    .where(_m.channel == bindparam("channel"), _m.external_id == _external_ids.c.external_id)
    .offset(0)
    .lateral("delivered")
)
_FIND_MESSAGES = {
    "sqlite": Prepared(
        select(_m.external_id, _m.id, _m.status, _m.outcome).where(
            _m.channel == bindparam("channel"),
            OneOf(_m.external_id, "external_ids"),
        )
    ),
    "postgresql": Prepared(
        select(
            _external_ids.c.external_id,
            _delivered.c.id,
            _delivered.c.status,
            _delivered.c.outcome,
        ).select_from(_external_ids.join(_delivered, true()))
    ),
}
# When each of a batch's senders sent the messages after ``since``, by dialect name.
# PostgreSQL: a seek per sender on (sender, channel, received_at). Given ``sender = ANY
# (…)`` and no statistics (a new database, until autovacuum's first ANALYZE), its planner
# scans every message of the last minute instead: 2,750 rows a batch at 700 messages/s.
# The OFFSET keeps the LATERAL subquery from being pulled up into a join, which the
# planner would plan the same way.
_senders = _rows_of("senders", _m.sender.type, "sender", "s")
_sent = (
    select(_m.received_at)
    .where(
        _m.channel == bindparam("channel"),
        _m.sender == _senders.c.sender,
        _m.received_at > bindparam("since"),
    )
    .offset(0)
    .lateral("sent")
)
_RECENT = {
    "sqlite": Prepared(
        select(_m.sender, _m.received_at).where(
            _m.channel == bindparam("channel"),
            OneOf(_m.sender, "senders"),
            _m.received_at > bindparam("since"),
        )
    ),
    "postgresql": Prepared(
        select(_senders.c.sender, _sent.c.received_at).select_from(_senders.join(_sent, true()))
    ),
}


def fit(value: str, length: int | None) -> str:
    """``value`` cut to ``length`` characters when longer, ending in ``…`` and a digest
    of the whole, so two different long values stay different and one long value is
    always cut the same way (it is a key: a sender, an external id)."""
    if length is None or len(value) <= length:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return value[: length - len(digest) - 1] + "…" + digest


def _message_row(message: InboundMessage, outcome: Outcome) -> dict[str, Any]:
    return {
        "channel": message.channel,
        "external_id": (
            None if message.external_id is None else fit(message.external_id, _EXTERNAL_ID_LENGTH)
        ),
        "sender": fit(message.sender, _SENDER_LENGTH),
        "text": message.text,
        "received_at": message.received_at,
        "status": outcome.status.value,
        "error_code": outcome.error.code if outcome.error else None,
        "account": None if outcome.account is None else fit(outcome.account, _ACCOUNT_LENGTH),
        "reply": outcome.reply,
        "outcome": t.json_text(outcome.to_json()),
    }


def _sender_key(channel: str, sender: str) -> int:
    """The advisory lock key of a sender on a channel."""
    digest = hashlib.sha256(f"{channel}\0{sender}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def column_length(column: Any) -> int | None:
    length = getattr(column.type, "length", None)
    return length if isinstance(length, int) else None


_SENDER_LENGTH = column_length(_m.sender)
_EXTERNAL_ID_LENGTH = column_length(_m.external_id)
_ACCOUNT_LENGTH = column_length(_m.account)
_LOOK_UP = select(
    _m.id,
    _m.channel,
    _m.sender,
    _m.received_at,
    _m.text,
    _m.status,
    _m.error_code,
    _m.account,
    _m.reply,
)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """An inbound message as recorded, with what became of it and the reply it got."""

    id: int
    channel: str
    sender: str
    received_at: datetime
    text: str
    status: str
    error_code: str | None
    account: str | None
    reply: str | None


class SqlMessages:
    """Inbound messages and their outcomes: the audit trail."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def find(self, channel: str, external_id: str) -> StoredMessage | None:
        params = {"channel": channel, "external_id": fit(external_id, _EXTERNAL_ID_LENGTH)}
        row = _FIND.first(self.conn, params)
        if row is None:
            return None
        return StoredMessage(row.id, row.status, json.loads(row.outcome))

    def count_recent(
        self, channel: str, sender: str, since: datetime, error_code: str | None = None
    ) -> int:
        """Messages from ``sender`` after ``since`` (with that error code, when given)."""
        params = {"channel": channel, "sender": fit(sender, _SENDER_LENGTH), "since": since}
        if error_code is None:
            return int(_COUNT.scalar(self.conn, params) or 0)
        params["error_code"] = error_code
        return int(self.conn.scalar(_COUNT_RECENT_WITH_CODE, params) or 0)

    def find_many(self, channel: str, external_ids: Sequence[str]) -> dict[str, StoredMessage]:
        """:meth:`find` for many provider ids in one query, by id."""
        wanted = {
            fit(external_id, _EXTERNAL_ID_LENGTH): external_id for external_id in external_ids
        }
        if not wanted:
            return {}
        params = {"channel": channel, "external_ids": sorted(wanted)}
        return {
            wanted[row.external_id]: StoredMessage(row.id, row.status, json.loads(row.outcome))
            for row in _FIND_MESSAGES[self.conn.dialect.name].all(self.conn, params)
        }

    def recent(
        self, channel: str, senders: Sequence[str], since: datetime
    ) -> dict[str, list[datetime]]:
        """When each of ``senders`` sent the messages recorded after ``since``, in one
        query (a batch's rate limits)."""
        wanted = {fit(sender, _SENDER_LENGTH): sender for sender in senders}
        times: dict[str, list[datetime]] = {sender: [] for sender in senders}
        if not wanted:
            return times
        params = {"channel": channel, "senders": sorted(wanted), "since": since}
        for row in _RECENT[self.conn.dialect.name].all(self.conn, params):
            times[wanted[row.sender]].append(row.received_at)
        return times

    def lock_sender(self, channel: str, sender: str) -> None:
        """Serialise this transaction with others for the same sender until it ends, so a
        count of the sender's recent messages cannot miss one committed meanwhile
        (PostgreSQL: a transaction-scoped advisory lock; SQLite has one writer already)."""
        self.lock_senders(channel, [sender])

    def lock_senders(self, channel: str, senders: Sequence[str]) -> None:
        """:meth:`lock_sender` for many senders in one statement, in the order of their
        keys, so two transactions locking overlapping senders cannot deadlock."""
        if self.conn.dialect.name == "sqlite" or not senders:
            return
        keys = sorted({_sender_key(channel, sender) for sender in senders})
        _LOCK_SENDERS.all(self.conn, {"keys": keys})

    def record(self, message: InboundMessage, outcome: Outcome) -> int:
        """The audit row: the message as received and what became of it. A sender, id or
        account longer than its column is stored cut (see :func:`fit`); the outcome
        object keeps it whole."""
        (message_id,) = self.record_many([(message, outcome)])
        return message_id

    def record_many(self, recorded: Sequence[tuple[InboundMessage, Outcome]]) -> list[int]:
        """:meth:`record` for several messages in one statement; their ids, in order."""
        rows = [_message_row(message, outcome) for message, outcome in recorded]
        try:
            return _RECORD.insert_each(self.conn, rows)
        except IntegrityError as exc:  # the only constraint: (channel, external_id)
            if all(message.external_id is None for message, _ in recorded):
                raise
            raise AlreadyRecorded(recorded[0][0].channel) from exc

    def update_outcome(self, message_id: int, outcome: Outcome) -> None:
        """Replace a recorded outcome (billing's own charge arrived after the commit)."""
        self.conn.execute(
            t.messages.update()
            .where(_m.id == message_id)
            .values(
                reply=outcome.reply,
                outcome=t.json_text(outcome.to_json()),
            )
        )

    def look_up(
        self,
        *,
        sender: str | None = None,
        account: str | None = None,
        channel: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[MessageRecord]:
        """The messages matching every filter given, newest first (``gateway messages``):
        from ``sender`` (as stored: an SMS sender in E.164), recorded with ``account``
        (the account the outcome names; a list's lines name theirs only in the outcome
        object, so a list is not found by account), on ``channel``, received at or after
        ``since``; at most ``limit``."""
        query = _LOOK_UP
        if sender is not None:
            query = query.where(_m.sender == fit(sender, _SENDER_LENGTH))
        if account is not None:
            query = query.where(_m.account == fit(account, _ACCOUNT_LENGTH))
        if channel is not None:
            query = query.where(_m.channel == channel)
        if since is not None:
            query = query.where(_m.received_at >= since)
        query = query.order_by(_m.received_at.desc(), _m.id.desc()).limit(limit)
        return [MessageRecord(*row) for row in self.conn.execute(query)]
