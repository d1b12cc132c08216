"""``gateway import``: CSV in UTF-8 or Windows-1251, comma or semicolon, idempotent upsert."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from gateway.bootstrap import Gateway, gateway
from gateway.registry import import_file
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import ACCOUNTS, METERS, TARIFFS, select_rows


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


async def import_all(gw: Gateway, folder: Path) -> list[tuple[int, int, int, list[str]]]:
    reports = []
    for kind, text in (("accounts", ACCOUNTS), ("meters", METERS), ("tariffs", TARIFFS)):
        report = await import_file(gw.db, kind, write(folder, f"{kind}.csv", text))
        reports.append((report.inserted, report.updated, report.unchanged, report.errors))
    return reports


async def test_first_import_adds_and_second_changes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    async with gateway(settings) as gw:
        first = await import_all(gw, tmp_path)
        second = await import_all(gw, tmp_path)

    assert first == [(4, 0, 0, []), (7, 0, 0, []), (7, 0, 0, [])]
    assert second == [(0, 0, 4, []), (0, 0, 7, []), (0, 0, 7, [])]


async def test_changed_rows_are_updated_in_place(settings: Settings, tmp_path: Path) -> None:
    async with gateway(settings) as gw:
        await import_all(gw, tmp_path)
        changed = ACCOUNTS.replace("b1,+79120000002,0,", "b1,+79120000002,42.50,")
        report = await import_file(gw.db, "accounts", write(tmp_path, "a.csv", changed))
        debt = {r["account"]: r["debt"] for r in await select_rows(gw.db, t.accounts)}["1234567891"]

    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 3)
    assert debt == Decimal("42.5")


async def test_windows_1251_semicolon_file_with_decimal_commas_is_read(
    settings: Settings, tmp_path: Path
) -> None:
    text = (
        "account;address;building;phone;debt;receipt_code;last_bill_total\n"
        "5550001111;г. Ижевск, ул. Кирова, 1;b9;+79120000009;12,34;X1;100,00\n"
    )
    path = write(tmp_path, "accounts.csv", text, encoding="cp1251")
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        (row,) = await select_rows(gw.db, t.accounts)

    assert report.errors == []
    assert (row["account"], row["address"], row["debt"]) == (
        "5550001111",
        "г. Ижевск, ул. Кирова, 1",
        Decimal("12.34"),
    )


async def test_bad_rows_are_reported_with_file_and_line_and_good_rows_still_load(
    settings: Settings, tmp_path: Path
) -> None:
    meters = (
        "account,meter,service,zone,digits,verified_until,last_value,last_date\n"
        "1234567890,1,electricity,day,6.1,2031-12-31,12000,2026-10-20\n"
        "1234567890,2,gas,single,6.1,,,\n"
        "1234567890,3,electricity,single,six,,,\n"
        "9999999999,4,electricity,single,6.1,,,\n"
        "1234567890,5,hot_water,day,5.3,,,\n"
        "1234567890,6,electricity,single,6.1,31.12.2031,,\n"
        "1234567890,7,electricity,single,4.1,,123456,\n"
        "1234567890,1,electricity,day,6.1,2031-12-31,12000,2026-10-20\n"
        "1234567890,,electricity,single,6.1,,,\n"
        "1234567890,8,cold_water,single,5.3,,,\n"
    )
    async with gateway(settings) as gw:
        await import_file(gw.db, "accounts", write(tmp_path, "accounts.csv", ACCOUNTS))
        path = write(tmp_path, "meters.csv", meters)
        report = await import_file(gw.db, "meters", path)

    assert (report.inserted, report.updated, report.unchanged) == (2, 0, 0)
    assert report.errors == [
        f"{path}:3: service must be one of electricity|hot_water|cold_water: 'gas'",
        f"{path}:4: digit capacity must look like 6.3, got 'six'",
        f"{path}:6: zone day is for electricity meters",
        f"{path}:7: verified_until must be a date YYYY-MM-DD: '31.12.2031'",
        f"{path}:8: last_value 123456 does not fit digits 4.1",
        f"{path}:9: same key as line 2, skipped",
        f"{path}:10: missing meter",
        f"{path}:5: unknown account 9999999999",
    ]


async def test_import_of_many_rows_runs_in_batches(settings: Settings, tmp_path: Path) -> None:
    lines = ["account,address,building,phone,debt,receipt_code,last_bill_total"]
    lines += [f"{7000000000 + i},addr,b,,0,,," for i in range(2500)]
    path = write(tmp_path, "accounts.csv", "\n".join(lines) + "\n")
    seen: list[int] = []
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path, lambda _k, done: seen.append(done))

    assert report.inserted == 2500
    assert seen == [1000, 2000, 2500]
