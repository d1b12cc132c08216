"""The SQLite writer thread after a unit of work whose COMMIT fails (pure SQLite: a
deferred foreign key is checked only at the commit)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.storage import Database, UnitOfWork
from gateway.storage import tables as t


def _orphan_register(uow: UnitOfWork) -> None:
    uow.conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
    uow.conn.exec_driver_sql(
        "INSERT INTO registers (account, meter, service, zone, digits) "
        "VALUES ('no-such-account', 'M1', 'electricity', 'single', '6.1')"
    )


async def test_a_failed_commit_leaves_the_writer_ready_for_the_next_unit_of_work(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}", 1.0)
    await db.upgrade_schema()
    try:
        with pytest.raises(IntegrityError):
            await db.run(_orphan_register)

        count = await db.run(
            lambda uow: uow.conn.exec_driver_sql("SELECT count(*) FROM registers").scalar()
        )
        assert count == 0
        assert await db.ping()
    finally:
        await db.dispose()


async def test_concurrent_units_of_work_share_one_commit_and_fail_alone(tmp_path: Path) -> None:
    """Group commit: units of work arriving together run in one transaction, each in a
    savepoint; the one that raises is rolled back alone and gets its exception."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'group.db'}")
    await db.upgrade_schema()
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    def opt_out(n: int) -> Callable[[UnitOfWork], int]:
        def work(uow: UnitOfWork) -> int:
            uow.conn.execute(t.opt_outs.insert(), {"phone": f"+7912{n:07d}", "since": now})
            return n

        return work

    def broken(uow: UnitOfWork) -> int:
        uow.conn.execute(t.opt_outs.insert(), {"phone": "+79990000000", "since": now})
        raise RuntimeError("this one fails after writing")

    try:
        results = await asyncio.gather(
            *(db.run(opt_out(n)) for n in range(10)),
            db.run(broken),
            *(db.run(opt_out(n)) for n in range(10, 20)),
            return_exceptions=True,
        )
        phones = await db.run(lambda uow: sorted(uow.conn.scalars(select(t.opt_outs.c.phone))))
    finally:
        await db.dispose()

    assert results[:10] == list(range(10)) and results[11:] == list(range(10, 20))
    assert isinstance(results[10], RuntimeError)
    assert len(phones) == 20 and "+79990000000" not in phones
