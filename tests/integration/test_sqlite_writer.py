"""The SQLite writer thread after a unit of work whose COMMIT fails (pure SQLite: a
deferred foreign key is checked only at the commit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from gateway.storage import Database, UnitOfWork


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
