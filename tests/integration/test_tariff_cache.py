"""The tariffs a process keeps between units of work (gateway.storage.registry.TariffCache).

Every accepted message is charged with the tariffs; a process reads them once and keeps
them while the tariffs' version in the database stays the same. These tests change the
tariffs from outside the serving gateway — another ``Database`` on the same database, as
``gateway import`` in another process or an operator's SQL would — and check that the
very next message is charged at the new price."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Executable, Update, delete, select, update

from gateway.bootstrap import Gateway
from gateway.domain.model import InboundMessage
from gateway.domain.outcome import Outcome
from gateway.registry import import_file
from gateway.settings import Settings
from gateway.storage import Database, UnitOfWork
from gateway.storage import tables as t

_tariff = t.tariffs.c


async def send(gw: Gateway, text: str, sender: str = "+79120000001") -> Outcome:
    return await gw.intake(InboundMessage("sms", sender, text, gw.clock()))


def total(outcome: Outcome) -> Decimal:
    assert outcome.status == "accepted", outcome
    assert outcome.charge is not None
    return outcome.charge.total


@pytest.fixture
async def outside(settings: Settings) -> AsyncIterator[Database]:
    """The same database through connections of its own: another process's view."""
    other = Database(settings.database_url)
    try:
        yield other
    finally:
        await other.dispose()


def _execute(uow: UnitOfWork, statement: Executable) -> None:
    uow.conn.execute(statement)


def _day_price(price: str) -> Update:
    return (
        update(t.tariffs)
        .where(_tariff.zone == "day", _tariff.valid_from == date(2026, 7, 1))
        .values(price=Decimal(price))
    )


async def test_a_price_changed_outside_the_process_charges_the_next_message(
    gw: Gateway, outside: Database
) -> None:
    # 345 × 6.80 + 289 × 3.45 + debt 100.00
    assert total(await send(gw, "1234567890 12345 6789")) == Decimal("3443.05")

    await outside.run(partial(_execute, statement=_day_price("7.00")))

    # The period's correction: 350 × 7.00 + 290 × 3.45 + 100.00 (6.80 would give 3480.50).
    assert total(await send(gw, "1234567890 12350 6790")) == Decimal("3550.50")


async def test_a_tariff_imported_or_deleted_elsewhere_is_charged_by_the_next_message(
    gw: Gateway, outside: Database, tmp_path: Path
) -> None:
    assert total(await send(gw, "1234567890 12345 6789")) == Decimal("3443.05")

    newer = tmp_path / "newer.csv"
    newer.write_text("service,zone,price,valid_from\nelectricity,day,7.50,2026-11-01\n")
    assert (await import_file(outside, "tariffs", newer)).errors == []
    # 350 × 7.50 + 290 × 3.45 + 100.00
    assert total(await send(gw, "1234567890 12350 6790")) == Decimal("3725.50")

    newer_gone = delete(t.tariffs).where(_tariff.valid_from == date(2026, 11, 1))
    await outside.run(partial(_execute, statement=newer_gone))
    # 355 × 6.80 + 291 × 3.45 + 100.00: July's price again.
    assert total(await send(gw, "1234567890 12355 6791")) == Decimal("3517.95")


async def test_every_change_of_the_tariffs_gives_them_a_new_version(gw: Gateway) -> None:
    query = select(t.data_versions.c.version).where(t.data_versions.c.name == "tariffs")

    async def version() -> str:
        found = await gw.db.run(lambda uow: uow.conn.scalar(query))
        assert found is not None
        return str(found)

    seen = [await version()]
    changes: list[Executable] = [
        _day_price("7.00"),
        t.tariffs.insert().values(
            service="hot_water", zone="single", price=Decimal(250), valid_from=date(2027, 1, 1)
        ),
        delete(t.tariffs).where(_tariff.valid_from == date(2027, 1, 1)),
    ]
    for change in changes:
        await gw.db.run(partial(_execute, statement=change))
        seen.append(await version())

    assert len(set(seen)) == len(seen), seen


class _RolledBack(Exception):
    pass


async def test_tariffs_kept_by_a_change_rolled_back_are_not_taken_for_a_later_change(
    gw: Gateway, outside: Database
) -> None:
    """A unit of work sees its own uncommitted change of the tariffs, with its version, and
    keeps both; then it is rolled back. The next change, made and committed elsewhere,
    gets a version of its own (a counter would give it the same one, and the kept tariffs
    of the change that never was would charge the next message)."""

    def change_then_fail(uow: UnitOfWork) -> None:
        uow.conn.execute(_day_price("9.00"))
        uow.registry.load_accounts(["1234567890"])  # the version of the change
        assert {(f.zone, f.price) for f in uow.registry.load_tariffs()} >= {
            ("day", Decimal("9.00"))
        }
        raise _RolledBack

    with pytest.raises(_RolledBack):
        await gw.db.run(change_then_fail)
    await outside.run(partial(_execute, statement=_day_price("7.00")))

    # 345 × 7.00 + 289 × 3.45 + debt 100.00 (9.00 would give 4202.05).
    assert total(await send(gw, "1234567890 12345 6789")) == Decimal("3512.05")


async def test_the_tariffs_are_read_once_while_they_stay_the_same(
    gw: Gateway, outside: Database
) -> None:
    if not gw.db.is_sqlite:
        pytest.skip("counts statements with SQLite's trace callback")
    statements: list[str] = []

    def trace(uow: UnitOfWork, callback: Callable[[str], None] | None) -> None:
        driver = uow.conn.connection.driver_connection
        assert driver is not None
        driver.set_trace_callback(callback)

    await gw.db.run(lambda uow: trace(uow, statements.append))
    try:
        for text in ["12345 6789", "12350 6790", "12355 6791"]:
            total(await send(gw, f"1234567890 {text}"))
        before_change = sum("FROM tariffs" in s for s in statements)
        await outside.run(partial(_execute, statement=_day_price("7.00")))
        for text in ["12360 6792", "12365 6793"]:
            total(await send(gw, f"1234567890 {text}"))
        after_change = sum("FROM tariffs" in s for s in statements) - before_change
    finally:
        await gw.db.run(lambda uow: trace(uow, None))

    # The first message reads them; after the change, the next one reads them again.
    assert (before_change, after_change) == (1, 1)
