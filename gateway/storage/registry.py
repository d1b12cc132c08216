"""The registry: accounts with their registers and readings in force, tariffs, elders,
chats; and the import's upserts."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Table,
    and_,
    bindparam,
    func,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.selectable import NamedFromClause

from gateway.domain.model import (
    SERVICE_OF,
    ZONE_OF,
    Account,
    Capacity,
    PreviousReading,
    Register,
    Service,
    Tariff,
    Zone,
)
from gateway.domain.store import LATEST
from gateway.storage import tables as t
from gateway.storage.prepared import OneOf, Prepared

_reg = t.registers.c
_versions = t.data_versions.c
# The tariffs' version (see TariffCache), read with the accounts: the statement a unit of
# work that charges runs anyway.
_TARIFFS_VERSION = select(_versions.version).where(_versions.name == "tariffs").scalar_subquery()


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


# Each register with (a) the last accepted reading of an earlier period and (b) the
# reading already stored for the current period: an index seek each, on (register_id, …).
_e1, _e2 = t.readings.alias("e1"), t.readings.alias("e2")
_EARLIER = (_e1, (_e1.c.status == "accepted", _e1.c.period < bindparam("period")))
_THIS_PERIOD = (
    _e2,
    # Not IN (…): a literal list is an expanding parameter, which cannot be prepared.
    (or_(_e2.c.status == "accepted", _e2.c.status == "held"), _e2.c.period == bindparam("period")),
)
_Latest = tuple[NamedFromClause, tuple[ColumnElement[bool], ...]]
# Each register's accepted readings before the period that cover some days: the consumption
# and days the outlier rule averages (Register.history).
_h = t.readings.alias("h")
_HISTORY_OF = (_h.c.status == "accepted", _h.c.period < bindparam("period"), _h.c.days > 0)
# SQLite's: the readings of some registers, summed in Python (SQLite stores the decimals
# as text, and its SUM of them would be a float).
_HISTORY = Prepared(
    select(_h.c.register_id, _h.c.consumption, _h.c.days).where(
        OneOf(_h.c.register_id, "ids"), *_HISTORY_OF
    )
)
# PostgreSQL's: summed in the accounts' statement (NUMERIC sums exactly), one round trip
# less per batch of messages.
_SUMMED_HISTORY = (
    select(func.sum(_h.c.consumption).label("consumption"), func.sum(_h.c.days).label("days"))
    .where(_h.c.register_id == _reg.id, *_HISTORY_OF)
    .correlate(t.registers)
    .lateral("hist")
)


def _joined_on_max_id(latest: _Latest, name: str) -> tuple[FromClause, ColumnElement[bool]]:
    """SQLite's shape: the reading whose id is the max of a correlated subquery (SQLite
    has no LATERAL, and its nested loops seek the index anyway)."""
    readings, conditions = latest
    found = select(func.max(readings.c.id)).where(readings.c.register_id == _reg.id, *conditions)
    reading = t.readings.alias(name)
    return reading, reading.c.id == found.correlate(t.registers).scalar_subquery()


def _lateral(latest: _Latest, name: str) -> tuple[FromClause, ColumnElement[bool]]:
    """PostgreSQL's shape: a LATERAL subquery, the newest of the register's readings,
    which is an index seek per register whatever the statistics say. Joined on the max
    id, PostgreSQL hashes the whole readings table, twice a query, while the table is
    small or has no statistics (a new database, until autovacuum's first ANALYZE):
    about 2 ms a batch at 4,000 readings, and more with every reading stored."""
    readings, conditions = latest
    newest = (
        select(
            *(
                readings.c[c]
                for c in ("id", "value", "taken_on", "previous", "consumption", "status")
            )
        )
        .where(readings.c.register_id == _reg.id, *conditions)
        .order_by(readings.c.id.desc())
        .limit(1)
    )
    return newest.correlate(t.registers).lateral(name), true()


@dataclass(frozen=True, slots=True)
class _AccountsQueries:
    one: Prepared
    # Many accounts', in number order.
    many: Prepared
    # Whether the registers' history comes with them (else it is read by _HISTORY).
    with_history: bool


def _with_registers(
    shape: Callable[[_Latest, str], tuple[FromClause, ColumnElement[bool]]],
    *,
    with_history: bool,
) -> _AccountsQueries:
    """One account's statement and many accounts', in ``shape``; with each register's
    summed history when ``with_history``."""
    prev, prev_on = shape(_EARLIER, "prev")
    cur, cur_on = shape(_THIS_PERIOD, "cur")
    query = (
        select(
            t.accounts.c.account.label("number"),
            t.accounts.c.debt,
            t.accounts.c.residents,
            t.accounts.c.building,
            t.accounts.c.phone,
            _reg.id,
            _reg.meter,
            _reg.service,
            _reg.zone,
            _reg.digits,
            _reg.verified_until,
            _reg.last_value,
            _reg.last_date,
            prev.c.id.label("prev_id"),
            prev.c.value.label("prev_value"),
            prev.c.taken_on.label("prev_on"),
            prev.c.previous.label("prev_previous"),
            prev.c.consumption.label("prev_consumption"),
            cur.c.id.label("cur_id"),
            cur.c.value.label("cur_value"),
            cur.c.taken_on.label("cur_on"),
            cur.c.previous.label("cur_previous"),
            cur.c.consumption.label("cur_consumption"),
            cur.c.status.label("cur_status"),
            _TARIFFS_VERSION.label("tariffs_version"),
        )
        .outerjoin(t.registers, _reg.account == t.accounts.c.account)
        .outerjoin(prev, prev_on)
        .outerjoin(cur, cur_on)
    )
    if with_history:
        query = query.add_columns(
            _SUMMED_HISTORY.c.consumption.label("hist_consumption"),
            _SUMMED_HISTORY.c.days.label("hist_days"),
        ).outerjoin(_SUMMED_HISTORY, true())
    one = query.where(t.accounts.c.account == bindparam("account"))
    many = query.where(OneOf(t.accounts.c.account, "accounts"))
    return _AccountsQueries(
        Prepared(one),
        Prepared(many.order_by(t.accounts.c.account, _reg.id)),
        with_history,
    )


# The accounts' statements by dialect name.
_WITH_REGISTERS = {
    "sqlite": _with_registers(_joined_on_max_id, with_history=False),
    "postgresql": _with_registers(_lateral, with_history=True),
}
# A statement of its own: in READ COMMITTED a locking read that had to wait re-checks
# only the locked row, so the account's readings are read after it, with a fresh snapshot.
_LOCK_ACCOUNT = Prepared(
    select(t.accounts.c.account)
    .where(t.accounts.c.account == bindparam("account"))
    .with_for_update()
)
# Many accounts' locks, always taken in number order so two lists cannot deadlock.
_LOCK_ACCOUNTS = Prepared(
    select(t.accounts.c.account)
    .where(OneOf(t.accounts.c.account, "accounts"))
    .order_by(t.accounts.c.account)
    .with_for_update()
)
# Every tariff, each row with the tariffs' version: both as of one snapshot.
_TARIFFS = select(
    t.tariffs.c.service,
    t.tariffs.c.zone,
    t.tariffs.c.price,
    t.tariffs.c.valid_from,
    t.tariffs.c.normative,
    _TARIFFS_VERSION.label("version"),
)
_ACCOUNTS_BY_PHONE = (
    select(t.accounts.c.account)
    .where(t.accounts.c.phone == bindparam("phone"), t.accounts.c.phone != "")
    .order_by(t.accounts.c.account)
)
# The statements every message runs (see gateway.storage.prepared).
_ALL_TARIFFS = Prepared(_TARIFFS)
_ELDER_BUILDINGS = select(t.elders.c.building).where(t.elders.c.email == bindparam("email"))
_CHAT_ACCOUNTS = select(t.chat_links.c.account).where(t.chat_links.c.chat == bindparam("chat"))


class TariffCache:
    """The tariffs as a process last read them, with the version they were read at.

    Every accepted message is charged with the tariffs, which change a few times a year.
    A process keeps them between units of work and uses its copy only when the unit of
    work saw the same version in the tables (``data_versions``, which a trigger on
    ``tariffs`` replaces at every change, whoever makes it), so a change is seen by the
    next message in every process. A version is random, not a count: a change rolled back
    after a unit of work in its transaction kept its tariffs must not leave its version to
    a later change. The version comes with the accounts' statement; on PostgreSQL that is
    one round trip less per batch of messages. One per
    :class:`~gateway.storage.database.Database`; only its units of work use it, one at a
    time (SQLite's writer thread, PostgreSQL's event loop)."""

    def __init__(self) -> None:
        self._kept: tuple[str, tuple[Tariff, ...]] | None = None

    def get(self, version: str) -> tuple[Tariff, ...] | None:
        """The tariffs kept, if they were read at ``version``."""
        kept = self._kept
        return kept[1] if kept is not None and kept[0] == version else None

    def keep(self, version: str, tariffs: tuple[Tariff, ...]) -> None:
        self._kept = (version, tariffs)


class SqlRegistry:
    """Accounts with their registers, tariffs, elders, chats: the registry."""

    def __init__(self, conn: Connection, tariffs: TariffCache) -> None:
        self.conn = conn
        self._cache = tariffs
        # This unit of work's tariffs, once it has them, and the tariffs' version its
        # accounts were read with (None: none read yet, or tariffs written since).
        self._tariffs: tuple[Tariff, ...] | None = None
        self._tariffs_version: str | None = None

    def load_account(
        self, number: str, period: str = LATEST, *, lock: bool = False
    ) -> Account | None:
        """The account with its registers: for each, the last accepted reading of a period
        before ``period`` (or the registry's newer baseline) and the reading already stored
        for ``period``. Without a period: the latest accepted reading of all.

        ``lock`` takes a row lock on the account (PostgreSQL) so concurrent messages for
        one account are validated one after the other.
        """
        if lock and self.conn.dialect.name != "sqlite":  # SQLite: one writer thread already
            _LOCK_ACCOUNT.all(self.conn, {"account": number})
        queries = _WITH_REGISTERS[self.conn.dialect.name]
        rows = queries.one.all(self.conn, {"account": number, "period": period})
        return self._read_accounts(rows, period, queries).get(number)

    def load_accounts(
        self, numbers: Sequence[str], period: str = LATEST, *, lock: bool = False
    ) -> dict[str, Account]:
        """:meth:`load_account` for many accounts in one query (a list's batch); the
        unknown ones are left out. ``lock`` locks them all, in number order."""
        wanted = sorted(set(numbers))
        if not wanted:
            return {}
        if lock and self.conn.dialect.name != "sqlite":
            _LOCK_ACCOUNTS.all(self.conn, {"accounts": wanted})
        queries = _WITH_REGISTERS[self.conn.dialect.name]
        rows = queries.many.all(self.conn, {"accounts": wanted, "period": period})
        return self._read_accounts(rows, period, queries)

    def _read_accounts(
        self, rows: Sequence[Any], period: str, queries: _AccountsQueries
    ) -> dict[str, Account]:
        if not rows:
            return {}
        self._tariffs_version = rows[0].tariffs_version
        if queries.with_history:
            history = {
                row.id: (row.hist_consumption or Decimal(0), row.hist_days or 0)
                for row in rows
                if row.id is not None
            }
        else:
            history = self._history([row.id for row in rows if row.id is not None], period)
        return _accounts(rows, history)

    def _history(self, register_ids: list[int], period: str) -> dict[int, tuple[Decimal, int]]:
        """The registers' history, summed here (SQLite)."""
        totals: dict[int, tuple[Decimal, int]] = {}
        if not register_ids:
            return totals
        for row in _HISTORY.all(self.conn, {"ids": register_ids, "period": period}):
            consumption, days = totals.get(row.register_id, (Decimal(0), 0))
            totals[row.register_id] = (consumption + row.consumption, days + row.days)
        return totals

    def accounts_by_phone(self, phone: str) -> list[str]:
        """The accounts whose registry phone is ``phone`` (E.164), in number order."""
        return list(self.conn.scalars(_ACCOUNTS_BY_PHONE, {"phone": phone}))

    def elder_buildings(self, email: str) -> frozenset[str]:
        """The buildings assigned to the elder with this email address."""
        return frozenset(self.conn.scalars(_ELDER_BUILDINGS, {"email": email.lower()}))

    def chat_accounts(self, chat: str) -> frozenset[str]:
        """The accounts linked to a chat."""
        return frozenset(self.conn.scalars(_CHAT_ACCOUNTS, {"chat": chat}))

    def load_tariffs(self) -> list[Tariff]:
        """Every tariff: the process's copy when this unit of work's accounts came with its
        version (see :class:`TariffCache`), else read, and kept for the next ones."""
        if self._tariffs is None:
            version = self._tariffs_version
            found = self._cache.get(version) if version is not None else None
            if found is None:
                rows = _ALL_TARIFFS.all(self.conn, {})
                found = tuple(
                    Tariff(Service(r.service), Zone(r.zone), r.price, r.valid_from, r.normative)
                    for r in rows
                )
                if rows and rows[0].version is not None:
                    self._cache.keep(rows[0].version, found)
            self._tariffs = found
        return list(self._tariffs)

    def upsert(
        self, table: Table, key: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> UpsertCounts:
        """Insert new rows, update changed ones, leave equal ones alone; by natural ``key``."""
        if not rows:
            return UpsertCounts()
        # Tariffs written here are read again, not taken from before the write.
        self._tariffs = self._tariffs_version = None
        cols = [table.c[k] for k in key]
        keys = [tuple(row[k] for k in key) for row in rows]
        condition = tuple_(*cols).in_(keys) if len(cols) > 1 else cols[0].in_([k[0] for k in keys])
        value_cols = list(rows[0].keys())
        existing = {
            tuple(r._mapping[k] for k in key): r._mapping
            for r in self.conn.execute(select(*[table.c[c] for c in value_cols]).where(condition))
        }
        inserts, updates, unchanged = [], [], 0
        for row_key, row in zip(keys, rows, strict=True):
            current = existing.get(row_key)
            if current is None:
                inserts.append(dict(row))
            elif any(current[c] != row[c] for c in value_cols):
                updates.append((row_key, row))
            else:
                unchanged += 1
        if inserts:
            self.conn.execute(table.insert(), inserts)
        for row_key, row in updates:
            self.conn.execute(
                table.update()
                .where(and_(*(col == v for col, v in zip(cols, row_key, strict=True))))
                .values({c: row[c] for c in value_cols if c not in key})
            )
        return UpsertCounts(len(inserts), len(updates), unchanged)

    def existing_accounts(self, numbers: Iterable[str]) -> set[str]:
        wanted = list(set(numbers))
        if not wanted:
            return set()
        rows = self.conn.execute(
            select(t.accounts.c.account).where(t.accounts.c.account.in_(wanted))
        )
        return {r[0] for r in rows}


def _accounts(
    rows: Iterable[Any], history: Mapping[int, tuple[Decimal, int]]
) -> dict[str, Account]:
    """Accounts from rows of one account per register (a row of NULL register columns
    for an account without meters), in the order the rows come; each register with its
    ``history`` (none when left out)."""
    found: dict[str, tuple[Any, list[Register]]] = {}
    for row in rows:
        _, registers = found.setdefault(row.number, (row, []))
        if row.id is not None:
            registers.append(_register(row, history.get(row.id, _NO_HISTORY)))
    return {
        number: Account(
            number,
            first.debt,
            tuple(registers),
            first.residents,
            building=first.building,
            phone=first.phone,
        )
        for number, (first, registers) in found.items()
    }


@functools.lru_cache(maxsize=256)
def _capacity(digits: str) -> Capacity:
    """A register's digit capacity: a registry has a handful of distinct ones, each parsed
    once (a batch loads every register of its accounts)."""
    return Capacity.parse(digits)


_NO_HISTORY = (Decimal(0), 0)


def _register(row: Any, history: tuple[Decimal, int]) -> Register:
    """A register with the reading in force before the period and the period's own."""
    ours = (
        PreviousReading(
            row.prev_value, row.prev_on, row.prev_previous, row.prev_consumption, row.prev_id
        )
        if row.prev_id is not None
        else None
    )
    baseline = (
        PreviousReading(row.last_value, row.last_date or date.min)
        if row.last_value is not None
        else None
    )
    previous, is_ours = ours, ours is not None
    if baseline is not None and (ours is None or baseline.taken_on > ours.taken_on):
        previous, is_ours = baseline, False
    current = (
        PreviousReading(
            row.cur_value,
            row.cur_on,
            row.cur_previous,
            row.cur_consumption,
            row.cur_id,
            held=row.cur_status == "held",
        )
        if row.cur_id is not None
        else None
    )
    return Register(
        id=row.id,
        account=row.number,
        meter=row.meter,
        service=SERVICE_OF[row.service],
        zone=ZONE_OF[row.zone],
        capacity=_capacity(row.digits),
        verified_until=row.verified_until,
        previous=previous,
        previous_is_ours=is_ours,
        current=current,
        history=history,
    )
