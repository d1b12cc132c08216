"""Table definitions. Decimals are exact on both back ends (NUMERIC on PostgreSQL,
text on SQLite); timestamps are stored in UTC and come back time-zone aware."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import MAX_PREC, Context, Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from gateway.jsontext import json_encoder

# JSON as the gateway stores it (an outcome, an outbox payload): ``json.dumps(value,
# ensure_ascii=False)``, with its encoder made once rather than for every value.
json_text = json_encoder()


class ExactDecimal(TypeDecorator[Decimal]):
    """NUMERIC where the database has an exact one, text on SQLite; always ``Decimal``."""

    impl = String(40)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(20, 6))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return Decimal(value)  # a whole number's digits: plain already (a test holds)
        return plain(value if isinstance(value, Decimal) else Decimal(value))


def plain(value: Decimal) -> Decimal:
    """Without trailing fraction zeros and never in exponent form: 13000, 6.8, 0.5. Exact
    for any number of digits (the default context's 28 would round a longer number, and
    refuse to write one of more than 28 digits without its exponent)."""
    normal = value.normalize(_EXACT)
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return normal.quantize(Decimal(1), context=_EXACT)
    return normal


_EXACT = Context(prec=MAX_PREC)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, :meth:`process_bind_param` and SQLite's DATETIME text in one step
        (every message binds five timestamps); a test holds the two equal."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is UTC:  # the gateway's own clocks: cut off the "+00:00"
                return value.isoformat(" ", "microseconds")[:-6]
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("account", String(32), primary_key=True),
    Column("address", Text, nullable=False, default=""),
    Column("building", String(64), nullable=False, default=""),
    Column("phone", String(32), nullable=False, default=""),
    Column("debt", ExactDecimal, nullable=False),
    Column("receipt_code", String(64), nullable=False, default=""),
    Column("last_bill_total", ExactDecimal, nullable=True),
    # People registered at the address: the normative charge without readings.
    Column("residents", Integer, nullable=True),
    # The intake finds the accounts of a message by its sender's phone.
    Index("ix_accounts_phone", "phone"),
)

registers = Table(
    "registers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account", String(32), ForeignKey("accounts.account"), nullable=False),
    Column("meter", String(64), nullable=False),
    Column("service", String(16), nullable=False),
    Column("zone", String(16), nullable=False),
    Column("digits", String(8), nullable=False),
    Column("verified_until", Date, nullable=True),
    # The billing system's latest reading as exported in the registry (the baseline).
    Column("last_value", ExactDecimal, nullable=True),
    Column("last_date", Date, nullable=True),
    UniqueConstraint("account", "meter", "zone", name="uq_register"),
)

tariffs = Table(
    "tariffs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service", String(16), nullable=False),
    Column("zone", String(16), nullable=False),
    Column("price", ExactDecimal, nullable=False),
    Column("valid_from", Date, nullable=False),
    # Normative consumption per resident per month (kWh, m³), charged without readings.
    Column("normative", ExactDecimal, nullable=True),
    UniqueConstraint("service", "zone", "valid_from", name="uq_tariff"),
)

elders = Table(
    "elders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False),
    Column("building", String(64), nullable=False),
    UniqueConstraint("email", "building", name="uq_elder"),
)

# Which accounts a chat (Telegram) may act on: one row per chat and account.
chat_links = Table(
    "chat_links",
    metadata,
    Column("chat", String(64), primary_key=True),
    Column("account", String(32), ForeignKey("accounts.account"), primary_key=True),
    Column("linked_at", UTCDateTime, nullable=False),
    Index("ix_chat_links_account", "account"),
)

# Telegram's updates as received, kept before they are acknowledged: a repeated
# delivery is recognised by its id, and one not processed yet (the process stopped) is
# processed at the next start.
telegram_updates = Table(
    "telegram_updates",
    metadata,
    Column("update_id", BigInteger, primary_key=True, autoincrement=False),
    # The update's JSON, as Telegram sent it.
    Column("payload", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    # NULL: not processed yet.
    Column("processed_at", UTCDateTime, nullable=True),
    Index("ix_telegram_updates_pending", "processed_at", "update_id"),
)

# Each chat's preferences; a chat without a row has the defaults.
chats = Table(
    "chats",
    metadata,
    Column("chat", String(64), primary_key=True),
    Column("reminders", Boolean, nullable=False, default=True),
    # The bot was blocked (403): the chat is never messaged again.
    Column("blocked_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# Every attempt of a chat to prove it may link an account: wrong answers are counted per
# account, across chats, to lock linking after too many.
link_attempts = Table(
    "link_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account", String(32), nullable=False),
    Column("chat", String(64), nullable=False),
    # receipt_code | bill_total | contact
    Column("method", String(16), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_link_attempts_account", "account", "at"),
)

# Every inbound message, whatever became of it: the audit trail.
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("external_id", String(128), nullable=True),
    Column("sender", String(254), nullable=False),
    Column("text", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error_code", String(32), nullable=True),
    Column("account", String(32), nullable=True),
    Column("reply", Text, nullable=True),
    Column("outcome", Text, nullable=False),
    UniqueConstraint("channel", "external_id", name="uq_message_external_id"),
    Index("ix_messages_sender_time", "sender", "channel", "received_at"),
)

readings = Table(
    "readings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("register_id", Integer, ForeignKey("registers.id"), nullable=False),
    Column("message_id", Integer, ForeignKey("messages.id"), nullable=False),
    Column("value", ExactDecimal, nullable=False),
    Column("previous", ExactDecimal, nullable=True),
    Column("consumption", ExactDecimal, nullable=False),
    Column("taken_at", UTCDateTime, nullable=False),
    Column("taken_on", Date, nullable=False),
    # Days since the previous reading it was compared with (NULL for a first reading):
    # with consumption, the meter's average daily use.
    Column("days", Integer, nullable=True),
    # The billing period the reading counts for, "YYYY-MM".
    Column("period", String(7), nullable=False),
    # accepted | replaced (by a correction in the same period) | held (for an operator)
    # | declined (an operator rejected a held reading)
    Column("status", String(16), nullable=False),
    # A correction names the reading of the same period it replaces.
    Column("replaces_id", Integer, ForeignKey("readings.id"), nullable=True),
    Column("review_note", Text, nullable=True),
    Index("ix_readings_register", "register_id", "id"),
    Index("ix_readings_register_period", "register_id", "period", "status"),
    # Whether a message brought a reading of a period (the reminders' check): revision 0008.
    Index("ix_readings_message", "message_id", "period"),
)

# Rows for the billing relay, written in the same transaction as the readings.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reading_id", Integer, ForeignKey("readings.id"), nullable=False, unique=True),
    # Rows of one register are delivered in id order (a correction after its original).
    Column("register_id", Integer, ForeignKey("registers.id"), nullable=False),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("payload", Text, nullable=False),
    # pending | delivered | failed (billing refused it for good; visible to operators)
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    # Not before this time (back-off); NULL means now.
    Column("next_attempt_at", UTCDateTime, nullable=True),
    # A relay claims a row until this time, so two relays never send it at once.
    Column("lease_until", UTCDateTime, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_outbox_status", "status", "id"),
    Index("ix_outbox_register", "register_id", "status", "id"),
)

# Messages sent later than the synchronous reply (review decisions, reminders, list
# reports), drained channel by channel by a background sender.
outbound = Table(
    "outbound",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(254), nullable=False),
    Column("text", Text, nullable=False),
    # What it tells: review_approved, review_rejected, …
    Column("kind", String(32), nullable=False),
    # The inbound message it answers, if any.
    Column("message_id", Integer, ForeignKey("messages.id"), nullable=True),
    # queued | sent | failed (the channel refused it for good)
    Column("status", String(16), nullable=False, default="queued"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    # Not before this time (back-off); NULL means now.
    Column("next_attempt_at", UTCDateTime, nullable=True),
    # A sender claims a row until this time, so two senders never send it at once.
    Column("lease_until", UTCDateTime, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    # The provider's id for the sent message (Twilio's message SID, Telegram's message id).
    Column("provider_id", String(128), nullable=True),
    Column("last_error", Text, nullable=True),
    # What the operator's delivery receipt said (SMPP: DELIVRD, UNDELIV, EXPIRED,
    # REJECTD, …), and when it came; NULL until one comes.
    Column("receipt", String(16), nullable=True),
    Column("receipt_at", UTCDateTime, nullable=True),
    Index("ix_outbound_due", "status", "channel", "id"),
    Index("ix_outbound_message", "message_id"),
    # Who had a kind of message on a channel (the reminders of a period): revision 0008.
    Index("ix_outbound_kind", "channel", "kind", "recipient"),
)

# Phones that sent СТОП/STOP: nothing but direct replies goes to them until СТАРТ/START.
opt_outs = Table(
    "opt_outs",
    metadata,
    Column("phone", String(32), primary_key=True),
    Column("since", UTCDateTime, nullable=False),
)

# The parts of concatenated SMS received over SMPP, kept before each part is acknowledged
# (so the operator redelivers what a crash lost); ``handled_at`` is set once the whole
# message was handled, and the row stays a while so a redelivered part is recognised.
smpp_parts = Table(
    "smpp_parts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("reference", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("number", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("handled_at", UTCDateTime, nullable=True),
    Index("ix_smpp_parts_set", "source", "reference", "total"),
    Index("ix_smpp_parts_received", "received_at"),
)

# The SMSC's id of each submitted SMPP segment, so a delivery receipt finds its row.
smpp_submits = Table(
    "smpp_submits",
    metadata,
    Column("smsc_id", String(64), primary_key=True),
    Column("outbound_id", Integer, ForeignKey("outbound.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# The embedded billing (the default without GATEWAY_BILLING_URL): what billing has
# received, one row per idempotency key.
billing_readings = Table(
    "billing_readings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("reading_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("replaces_key", String(64), nullable=True),
    Column("account", String(32), nullable=False),
    Column("meter", String(64), nullable=False),
    Column("zone", String(16), nullable=False),
    Column("period", String(7), nullable=False),
    Column("value", ExactDecimal, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)

# Who runs each singleton (the IMAP poller, the SMPP link, Telegram polling, reminders)
# among several gateway processes: the holder renews its lease; when it stops renewing
# (it died), another process takes over once ``expires_at`` has passed.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# The version of a table whose rows each process keeps in memory: a trigger on the table
# gives its row a new random version at every change, whoever makes it (an import, another
# process, an operator's SQL). A process reads the version with what it reads anyway and
# keeps its copy only while the version is the one it was read at (see
# gateway.storage.registry.TariffCache).
data_versions = Table(
    "data_versions",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("version", String(32), nullable=False),
)
