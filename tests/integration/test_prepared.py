"""Prepared statements (gateway.storage.prepared) give exactly what SQLAlchemy gives.

On SQLite they run on the driver's cursor with SQLAlchemy's type processing done by hand;
each is compared here with the same statement run by ``Connection.execute``, on a
database holding accepted readings, corrections and held ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from gateway.bootstrap import Gateway
from gateway.domain.model import InboundMessage
from gateway.storage import UnitOfWork
from gateway.storage import messages as stored_messages
from gateway.storage import readings as stored_readings
from gateway.storage import registry as stored_registry
from gateway.storage import tables as t
from gateway.storage.prepared import Prepared
from tests.conftest import Clock, explain, never_analyzed


async def _history(gw: Gateway, clock: Clock) -> None:
    """Accepted readings in two periods, a correction, and a held outlier."""
    texts = [
        ("1234567890 12345 6789", 0),
        ("1234567890 12400 6800", 0),  # a correction of the period's readings
        ("1234567890 12500 6900", 35),  # the next period
        ("1234567890 13450 6950", 70),  # 950 in 35 days against about 500 in 75: held
    ]
    start = clock.now
    statuses = []
    for number, (text, days) in enumerate(texts):
        clock.now = start + timedelta(days=days)
        message = InboundMessage("sms", "+79120000001", text, clock(), f"SMprep{number}")
        statuses.append((await gw.intake(message)).status)
    assert statuses == ["accepted", "accepted", "accepted", "held"]


def _same(
    prepared: Prepared, uow: UnitOfWork, params: dict[str, Any], *, ordered: bool = True
) -> list[tuple[Any, ...]]:
    """``prepared``'s rows, checked against SQLAlchemy's: in any order for a statement
    without ORDER BY (PostgreSQL's plan of it may change from one run to the next)."""
    ours = [tuple(row) for row in prepared.all(uow.conn, params)]
    theirs = [tuple(row) for row in uow.conn.execute(prepared.statement, params).all()]
    assert ours == theirs if ordered else sorted(ours) == sorted(theirs)
    return ours


async def test_every_prepared_select_returns_what_sqlalchemy_returns(
    gw: Gateway, clock: Clock
) -> None:
    await _history(gw, clock)

    def compare(uow: UnitOfWork) -> None:
        dialect = uow.conn.dialect.name
        queries = stored_registry._WITH_REGISTERS[dialect]
        one_account, accounts_query = queries.one, queries.many
        for period in ("2020-01", clock.now.strftime("%Y-%m"), "9999-12"):
            rows = _same(one_account, uow, {"account": "1234567890", "period": period})
            assert rows and all(isinstance(row[1], Decimal) for row in rows)
        found = _same(stored_registry._ALL_TARIFFS, uow, {})
        assert found and all(isinstance(row[2], Decimal) for row in found)
        registers = [r.id for r in uow.conn.execute(select(t.registers.c.id))]
        for count in range(1, min(len(registers), 3) + 1):
            params: dict[str, Any] = {"ids": registers[:count], "period": "9999-12"}
            _same(stored_registry._HISTORY, uow, params)
        # Statements with lists (OneOf): one variant per length on SQLite, and a list
        # longer than the variants kept, bound afresh.
        for accounts in (["1234567890"], ["1234567890", "1234567891", "0000000000"]):
            rows = _same(accounts_query, uow, {"accounts": accounts, "period": "9999-12"})
            assert {row[0] for row in rows} == set(accounts) - {"0000000000"}
        ids = {"channel": "sms", "external_ids": ["SMprep0", "SMprep2", "SMnone"]}
        assert len(_same(stored_messages._FIND_MESSAGES[dialect], uow, ids)) == 2
        many = [f"+7912{i:07d}" for i in range(300)]
        senders = {"channel": "sms", "senders": many, "since": clock.now - timedelta(days=400)}
        recent = _same(stored_messages._RECENT[dialect], uow, senders, ordered=False)
        assert len(recent) == 4
        in_force = {"registers": registers, "period": "9999-12", "statuses": ["accepted", "held"]}
        _same(stored_readings._IN_FORCE, uow, in_force)
        (message,) = _same(stored_messages._FIND, uow, {"channel": "sms", "external_id": "SMprep0"})
        assert message[1] == "accepted"
        since = clock.now - timedelta(days=400)
        (counted,) = _same(
            stored_messages._COUNT,
            uow,
            {"channel": "sms", "sender": "+79120000001", "since": since},
        )
        assert counted == (4,)

    await gw.db.run(compare)


async def test_rows_have_their_columns_as_attributes(gw: Gateway, clock: Clock) -> None:
    await _history(gw, clock)

    def read(uow: UnitOfWork) -> Any:
        return stored_messages._FIND.first(uow.conn, {"channel": "sms", "external_id": "SMprep1"})

    row = await gw.db.run(read)
    assert row is not None
    assert (row.status, type(row.id)) == ("accepted", int)
    assert "12400" in row.outcome


async def test_prepared_inserts_store_what_sqlalchemy_reads_back(gw: Gateway) -> None:
    received = datetime(2026, 3, 5, 10, 30, 15, 123456, tzinfo=UTC)
    row = {
        "channel": "sms",
        "external_id": "SMinsert",
        "sender": "+79120000009",
        "text": "текст",
        "received_at": received,
        "status": "rejected",
        "error_code": "unparseable",
        "account": None,
        "reply": None,
        "outcome": "{}",
    }

    def insert(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        (new_id,) = stored_messages._RECORD.insert_each(uow.conn, [row])
        stored = uow.conn.execute(select(t.messages).where(t.messages.c.id == new_id)).one()
        return new_id, dict(stored._mapping)

    new_id, stored = await gw.db.run(insert)
    assert stored == {"id": new_id, **row}
    assert stored["received_at"].tzinfo is not None

    # The unique (channel, external_id) is SQLAlchemy's IntegrityError, as before.
    with pytest.raises(IntegrityError):
        await gw.db.run(lambda uow: stored_messages._RECORD.insert_each(uow.conn, [row]))


async def test_prepared_inserts_of_many_rows_give_each_row_its_own_key(gw: Gateway) -> None:
    """Several rows in one statement (arrays on PostgreSQL, a row at a time on SQLite):
    the keys come back in the rows' order, each row stored with its own values, NULLs
    and non-ASCII text included, for batches of different sizes one after another."""
    received = datetime(2026, 3, 5, 10, 30, 15, 123456, tzinfo=UTC)

    def row(n: int) -> dict[str, Any]:
        return {
            "channel": "sms",
            "external_id": f"SMmany{n}",
            "sender": f"+7912000{n:04d}",
            "text": f"текст {n}",
            "received_at": received + timedelta(seconds=n),
            "status": "rejected" if n % 2 else "accepted",
            "error_code": "unparseable" if n % 2 else None,
            "account": None if n % 3 else f"{n:010d}",
            "reply": None if n % 2 else f"ответ {n}",
            "outcome": f'{{"n": {n}}}',
        }

    def insert(uow: UnitOfWork, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = stored_messages._RECORD.insert_each(uow.conn, rows)
        assert len(set(ids)) == len(rows)
        stored = uow.conn.execute(select(t.messages).where(t.messages.c.id.in_(ids)))
        by_id = {r.id: dict(r._mapping) for r in stored}
        return [by_id[new_id] for new_id in ids]

    start = 0
    for size in (3, 1, 7):
        rows = [row(n) for n in range(start, start + size)]
        start += size
        stored = await gw.db.run(lambda uow, rows=rows: insert(uow, rows))
        assert [{k: v for k, v in r.items() if k != "id"} for r in stored] == rows


def test_statements_that_cannot_be_prepared_are_refused_when_compiled() -> None:
    from sqlalchemy.dialects import sqlite

    listed = Prepared(
        select(t.messages.c.id).where(t.messages.c.id.in_(bindparam("ids", expanding=True)))
    )
    with pytest.raises(ValueError, match="expanding"):
        listed.compiled(sqlite.dialect())
    # The outbox's status and attempts have Python-side defaults, which only
    # SQLAlchemy's own execution fills in: a row must give them.
    given = ("reading_id", "register_id", "idempotency_key", "payload", "created_at")
    short = Prepared(t.outbox.insert(), columns=given)
    with pytest.raises(ValueError, match="no row gives"):
        short.compiled(sqlite.dialect())


async def test_postgresql_lateral_statements_answer_as_sqlites_do(
    gw: Gateway, clock: Clock
) -> None:
    """On PostgreSQL an account's readings in force and the senders' recent messages are
    LATERAL seeks; the statements SQLite runs answer the same there, row for row."""
    if gw.db.is_sqlite:
        pytest.skip("PostgreSQL's LATERAL statements")
    await _history(gw, clock)
    await gw.intake(InboundMessage("sms", "+79120000002", "1234567891 100 50", clock(), "SMo"))

    def compare(uow: UnitOfWork) -> None:
        lateral, joined = (stored_registry._WITH_REGISTERS[d] for d in ("postgresql", "sqlite"))
        common = len(stored_registry._WITH_REGISTERS["sqlite"].one.statement.selected_columns)
        stored = sorted(uow.conn.scalars(select(t.readings.c.period).distinct()))
        assert len(stored) > 1
        for period in ("2020-01", clock.now.strftime("%Y-%m"), "9999-12", *stored):
            one = {"account": "1234567890", "period": period}
            assert sorted(r[:common] for r in _rows(lateral.one, uow, one)) == sorted(
                _rows(joined.one, uow, one)
            )
            many = {"accounts": ["1234567890", "1234567891", "0000000000"], "period": period}
            with_history = lateral.many.all(uow.conn, many)
            assert [tuple(r)[:common] for r in with_history] == _rows(joined.many, uow, many)
            # PostgreSQL's summed history: what SQLite's statement gives, summed.
            ids = [r.id for r in with_history if r.id is not None]
            totals: dict[int, tuple[Decimal, int]] = {}
            for r in stored_registry._HISTORY.all(uow.conn, {"ids": ids, "period": period}):
                consumption, days = totals.get(r.register_id, (Decimal(0), 0))
                totals[r.register_id] = (consumption + r.consumption, days + r.days)
            summed_here = {
                r.id: (r.hist_consumption, r.hist_days)
                for r in with_history
                if r.hist_days is not None
            }
            assert summed_here == totals
            if period == "9999-12":  # not an empty comparison
                assert totals
        for days, found in ((0, 2), (400, 5)):  # the history's last and SMo; all five
            recent = {
                "channel": "sms",
                "senders": ["+79120000001", "+79120000002", "+79120000003"],
                "since": clock.now - timedelta(days=days, seconds=1),
            }
            ours = _rows(stored_messages._RECENT["postgresql"], uow, recent)
            assert sorted(ours) == sorted(_rows(stored_messages._RECENT["sqlite"], uow, recent))
            assert len(ours) == found
        delivered = {"channel": "sms", "external_ids": ["SMprep0", "SMo", "SMnone"]}
        ours = _rows(stored_messages._FIND_MESSAGES["postgresql"], uow, delivered)
        assert len(ours) == 2
        assert sorted(ours) == sorted(
            _rows(stored_messages._FIND_MESSAGES["sqlite"], uow, delivered)
        )
        other = {"channel": "email", "external_ids": ["SMprep0"]}
        assert _rows(stored_messages._FIND_MESSAGES["postgresql"], uow, other) == []

    await gw.db.run(compare)


async def test_postgresql_seeks_readings_and_messages_without_their_statistics(
    gw: Gateway, clock: Clock
) -> None:
    """A new database's readings and messages have no statistics until autovacuum's first
    ANALYZE; meanwhile a batch's lookups must stay index seeks: no hash of every reading,
    no scan of every message of the last minute, nor of every message of the channel."""
    if gw.db.is_sqlite:
        pytest.skip("PostgreSQL's planner")
    await _history(gw, clock)

    def plans(uow: UnitOfWork) -> tuple[str, str, str]:
        accounts = stored_registry._WITH_REGISTERS["postgresql"].many
        many = {"accounts": ["1234567890", "1234567891"], "period": "9999-12"}
        recent = {"channel": "sms", "senders": ["+79120000001"], "since": clock.now}
        delivered = {"channel": "sms", "external_ids": ["SMprep0", "SMprep1"]}
        return (
            _plan(uow, accounts, many),
            _plan(uow, stored_messages._RECENT["postgresql"], recent),
            _plan(uow, stored_messages._FIND_MESSAGES["postgresql"], delivered),
        )

    never = await gw.db.run(lambda uow: never_analyzed(uow.conn, "readings", "messages"))
    assert never == 2  # the case this is about
    accounts_plan, recent_plan, delivered_plan = await gw.db.run(plans)
    assert "Hash" not in accounts_plan, accounts_plan
    assert "Seq Scan on readings" not in accounts_plan, accounts_plan
    assert "sender = (s.sender)::text" in _index_conditions(recent_plan), recent_plan
    # Each delivery id is a condition of the index seek, not a filter on the channel's rows.
    assert "external_id)::text = (e.external_id)::text" in _index_conditions(delivered_plan), (
        delivered_plan
    )


def _index_conditions(plan: str) -> str:
    return "\n".join(line for line in plan.splitlines() if "Index Cond" in line)


def _rows(prepared: Prepared, uow: UnitOfWork, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in prepared.all(uow.conn, params)]


def _plan(uow: UnitOfWork, prepared: Prepared, params: dict[str, Any]) -> str:
    """PostgreSQL's plan of ``prepared`` with ``params``, as EXPLAIN prints it."""
    return explain(uow.conn, prepared.statement, params)
