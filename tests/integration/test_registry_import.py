"""``gateway import``: CSV in UTF-8 or Windows-1251, comma or semicolon, idempotent upsert;
a bad row is a ``file:line: reason`` rejection and never stops the import."""

from __future__ import annotations

import codecs
import csv
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.bootstrap import Gateway, gateway
from gateway.registry import HeaderError, check_file, count_lines, import_file, read_csv
from gateway.settings import Settings
from gateway.storage import Database
from gateway.storage import tables as t
from tests.conftest import ACCOUNTS, METERS, TARIFFS, select_rows

HEADER = "account,address,building,phone,debt,receipt_code,last_bill_total,residents\n"


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


async def test_an_import_leaves_postgresql_statistics_of_what_it_wrote(
    settings: Settings, tmp_path: Path
) -> None:
    """Without them the planner takes the new rows for an empty table (reltuples -1)
    until autovacuum comes by, and scans whole tables for a batch of accounts."""
    if settings.database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's planner statistics")
    async with gateway(settings) as gw:
        await import_all(gw, tmp_path)
        estimates = await gw.db.run(
            lambda uow: dict(
                uow.conn.exec_driver_sql(
                    "SELECT relname, reltuples FROM pg_class"
                    " WHERE relname IN ('accounts', 'registers', 'tariffs')"
                ).all()
            )
        )

    assert estimates == {"accounts": 4, "registers": 7, "tariffs": 7}


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
        "1234567890,6,electricity,single,6.1,31.13.2031,,\n"
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
        f"{path}:7: verified_until must be a date YYYY-MM-DD or DD.MM.YYYY: '31.13.2031'",
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


async def accounts_in(db: Database) -> list[str]:
    return [r["account"] for r in await select_rows(db, t.accounts)]


async def test_a_stray_byte_in_a_utf8_file_rejects_its_line_and_the_other_lines_load(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "accounts.csv"
    path.write_bytes(
        (HEADER + '1000000001,"ул. Ленина, 1",b1,,0,,,\n').encode()
        + '1000000002,"ул. Ленина, 2'.encode()
        + b"\x98"
        + '",b1,,0,,,\n1000000003,"ул. Мира, 3",b2,,0,,,\n'.encode()
    )
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        rows = await select_rows(gw.db, t.accounts)

    assert report.errors == [f"{path}:3: not valid UTF-8 (byte 0x98 at column 26)"]
    assert [(r["account"], r["address"]) for r in rows] == [
        ("1000000001", "ул. Ленина, 1"),
        ("1000000003", "ул. Мира, 3"),
    ]


async def test_a_utf8_file_whose_only_non_ascii_line_is_broken_is_still_read_as_utf8(
    tmp_path: Path,
) -> None:
    path = tmp_path / "accounts.csv"
    path.write_bytes(HEADER.encode() + b"1000000001,a\x98b,b1\n1000000002,ab,b1\n")

    rows = [(line, str(row)) for line, row in read_csv(path)]

    assert rows == [
        (2, "not valid UTF-8 (byte 0x98 at column 13)"),
        (3, str({"account": "1000000002", "address": "ab", "building": "b1"})),
    ]


async def test_a_windows_1251_file_whose_cyrillic_starts_after_the_first_megabyte_is_read_as_such(
    tmp_path: Path,
) -> None:
    ascii_rows = "".join(f"{7000000000 + i};Lenina street, {i};b1\n" for i in range(50_000))
    text = "account;address;building\n" + ascii_rows + "1000000001;ул. Ленина, ё № 1;b2\n"
    path = write(tmp_path, "accounts.csv", text, encoding="cp1251")
    assert path.stat().st_size > 1 << 20

    *_, (line, last) = read_csv(path)

    assert (line, last) == (
        50_002,
        {"account": "1000000001", "address": "ул. Ленина, ё № 1", "building": "b2"},
    )


async def test_a_field_over_the_csv_field_limit_rejects_its_line_and_the_next_lines_load(
    settings: Settings, tmp_path: Path
) -> None:
    huge = "x" * (csv.field_size_limit() + 1)
    text = HEADER + f"1000000001,{huge},b1,,0,,,\n" + "1000000002,addr,b1,,0,,,\n"
    path = write(tmp_path, "accounts.csv", text)
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        accounts = await accounts_in(gw.db)

    assert report.errors == [f"{path}:2: a field is longer than 131,072 characters (the CSV limit)"]
    assert accounts == ["1000000002"]


async def test_a_line_over_one_mebibyte_is_rejected_without_being_read_whole(
    settings: Settings, tmp_path: Path
) -> None:
    text = HEADER + "1000000001," + "x" * (3 << 20) + ",b1,,0,,,\n" + "1000000002,a,b1,,0,,,\n"
    path = write(tmp_path, "accounts.csv", text)
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        accounts = await accounts_in(gw.db)

    assert report.errors == [f"{path}:2: line longer than 1 MiB"]
    assert accounts == ["1000000002"]


async def test_quoted_addresses_over_several_lines_keep_every_line_number_after_them(
    settings: Settings, tmp_path: Path
) -> None:
    text = (
        HEADER
        + '1000000001,"ул. Ленина, 5,\nподъезд ""2""",b1,,lots,,,\n'  # lines 2-3, bad debt
        + '1000000002,"ул. Мира,\nд. 1,\nкв. 2",b1,,0,,,\n'  # lines 4-6
        + "1000000003,addr,b1,,oops,,,\n"  # line 7
        + "1000000004,addr,b1,,0,,,\n"  # line 8
    )
    path = write(tmp_path, "accounts.csv", text)
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        rows = await select_rows(gw.db, t.accounts)

    assert report.errors == [
        f"{path}:2: debt is not a number: 'lots'",
        f"{path}:7: debt is not a number: 'oops'",
    ]
    assert [(r["account"], r["address"]) for r in rows] == [
        ("1000000002", "ул. Мира,\nд. 1,\nкв. 2"),
        ("1000000004", "addr"),
    ]


async def test_an_unclosed_quote_rejects_its_line_and_the_rows_after_it_load(
    settings: Settings, tmp_path: Path
) -> None:
    text = HEADER + '1000000001,"ул. Ленина, 5,b1,,0,,,\n' + "1000000002,addr,b1,,0,,,\n"
    path = write(tmp_path, "accounts.csv", text)
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        accounts = await accounts_in(gw.db)

    assert report.errors == [f"{path}:2: a quoted field that starts on this line is not closed"]
    assert accounts == ["1000000002"]


async def test_residents_must_be_a_whole_number_from_0_to_999(
    settings: Settings, tmp_path: Path
) -> None:
    many = "9" * 5000
    text = (
        HEADER
        + "1000000001,a,b1,,0,,,²\n"
        + f"1000000002,a,b1,,0,,,{many}\n"
        + "1000000003,a,b1,,0,,,1000\n"
        + "1000000004,a,b1,,0,,,-1\n"
        + "1000000005,a,b1,,0,,,999\n"
        + "1000000006,a,b1,,0,,,0\n"
    )
    path = write(tmp_path, "accounts.csv", text)
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        rows = await select_rows(gw.db, t.accounts)

    assert report.errors == [
        f"{path}:2: residents must be a whole number from 0 to 999: '²'",
        f"{path}:3: residents must be a whole number from 0 to 999: "
        f"'{many[:40]}'… (5,000 characters)",
        f"{path}:4: residents must be a whole number from 0 to 999: '1000'",
        f"{path}:5: residents must be a whole number from 0 to 999: '-1'",
    ]
    assert [(r["account"], r["residents"]) for r in rows] == [
        ("1000000005", 999),
        ("1000000006", 0),
    ]


async def test_text_longer_than_its_column_is_rejected_on_every_back_end(
    settings: Settings, tmp_path: Path
) -> None:
    long_account = "1" * 40
    text = (
        HEADER
        + f"{long_account},a,b1,,0,,,\n"
        + f"1000000002,a,{'b' * 65},,0,,,\n"
        + f"1000000003,a,b1,{'7' * 33},0,,,\n"
        + f"1000000004,a,b1,,0,{'R' * 64},,\n"
    )
    path = write(tmp_path, "accounts.csv", text)
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        accounts = await accounts_in(gw.db)

    assert report.errors == [
        f"{path}:2: account is too long: 40 characters, at most 32",
        f"{path}:3: building is too long: 65 characters, at most 64",
        f"{path}:4: phone is too long: 33 characters, at most 32",
    ]
    assert accounts == ["1000000004"]


async def test_a_meter_serial_or_an_email_longer_than_its_column_is_rejected(
    settings: Settings, tmp_path: Path
) -> None:
    meters = (
        "account,meter,service,zone,digits\n"
        f"1234567890,{'M' * 65},electricity,single,6.1\n"
        "1234567890,M1,electricity,single,6.1\n"
    )
    email = "a" * 250 + "@x.ru"
    elders = f"email,building\n{email},b1\nelder@x.ru,b1\n"
    async with gateway(settings) as gw:
        await import_file(gw.db, "accounts", write(tmp_path, "accounts.csv", ACCOUNTS))
        meters_path = write(tmp_path, "meters.csv", meters)
        elders_path = write(tmp_path, "elders.csv", elders)
        meter_report = await import_file(gw.db, "meters", meters_path)
        elder_report = await import_file(gw.db, "elders", elders_path)

    assert meter_report.errors == [f"{meters_path}:2: meter is too long: 65 characters, at most 64"]
    assert meter_report.inserted == 1
    assert elder_report.errors == [
        f"{elders_path}:2: email is too long: 255 characters, at most 254"
    ]
    assert elder_report.inserted == 1


async def test_a_nul_or_another_control_character_in_a_field_is_rejected(
    settings: Settings, tmp_path: Path
) -> None:
    text = (
        HEADER
        + "1000000001,a\x00b,b1,,0,,,\n"
        + "1000000002,a,b\x1b1,,0,,,\n"
        + "1000000003,a,b1,,0,X\x851,,\n"
        + '1000000004,"a\tb\nc",b1,,0,,,\n'  # tabs and line breaks are fine in an address
    )
    path = write(tmp_path, "accounts.csv", text)
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        rows = await select_rows(gw.db, t.accounts)

    assert report.errors == [
        f"{path}:2: address contains a control character (U+0000)",
        f"{path}:3: building contains a control character (U+001B)",
        f"{path}:4: receipt_code contains a control character (U+0085)",
    ]
    assert [(r["account"], r["address"]) for r in rows] == [("1000000004", "a\tb\nc")]


async def test_a_decimal_beyond_numeric_20_6_is_rejected_on_every_back_end(
    settings: Settings, tmp_path: Path
) -> None:
    text = (
        HEADER
        + "1000000001,a,b1,,1e999999,,,\n"
        + "1000000002,a,b1,,123456789012345,,,\n"
        + "1000000003,a,b1,,0.1234567,,,\n"
        + f"1000000004,a,b1,,0,,{'9' * 5000},\n"
        + "1000000005,a,b1,,1e3,,,\n"
        + "1000000006,a,b1,,-99 999 999 999 999.999999,,12.5000000000,\n"
    )
    path = write(tmp_path, "accounts.csv", text)
    range_error = "is out of range: at most 14 digits before the decimal point and 6 after"
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        rows = await select_rows(gw.db, t.accounts)

    assert report.errors == [
        f"{path}:2: debt {range_error}: '1e999999'",
        f"{path}:3: debt {range_error}: '123456789012345'",
        f"{path}:4: debt {range_error}: '0.1234567'",
        f"{path}:5: last_bill_total {range_error}: '{'9' * 40}'… (5,000 characters)",
    ]
    assert [(r["account"], r["debt"], r["last_bill_total"]) for r in rows] == [
        ("1000000005", Decimal(1000), None),
        ("1000000006", Decimal("-99999999999999.999999"), Decimal("12.5")),
    ]


async def test_huge_numbers_in_meters_and_tariffs_are_rejected_not_raised(
    settings: Settings, tmp_path: Path
) -> None:
    meters = (
        "account,meter,service,zone,digits,verified_until,last_value,last_date\n"
        "1234567890,M1,electricity,single,6.1,,1e999999,\n"
        "1234567890,M2,electricity,single,²,,,\n"
        f"1234567890,M3,electricity,single,{'6' * 5000},,,\n"
        "1234567890,M4,electricity,single,6.1,20311231,,\n"
        "1234567890,M5,electricity,single,6.1,2031-12-31,12.5,2026-10-20\n"
    )
    tariffs = "service,zone,price,valid_from\nelectricity,single,1e-999999,2026-01-01\n"
    async with gateway(settings) as gw:
        await import_file(gw.db, "accounts", write(tmp_path, "accounts.csv", ACCOUNTS))
        meters_path = write(tmp_path, "meters.csv", meters)
        tariffs_path = write(tmp_path, "tariffs.csv", tariffs)
        meter_report = await import_file(gw.db, "meters", meters_path)
        tariff_report = await import_file(gw.db, "tariffs", tariffs_path)
        registers = await select_rows(gw.db, t.registers)

    range_error = "is out of range: at most 14 digits before the decimal point and 6 after"
    assert meter_report.errors == [
        f"{meters_path}:2: last_value {range_error}: '1e999999'",
        f"{meters_path}:3: digit capacity must look like 6.3, got '²'",
        f"{meters_path}:4: digit capacity must look like 6.3, got '{'6' * 40}'… (5,000 characters)",
        f"{meters_path}:5: verified_until must be a date YYYY-MM-DD or DD.MM.YYYY: '20311231'",
    ]
    assert [(r["meter"], r["verified_until"], r["last_value"]) for r in registers] == [
        ("M5", date(2031, 12, 31), Decimal("12.5"))
    ]
    assert tariff_report.errors == [f"{tariffs_path}:2: price {range_error}: '1e-999999'"]


async def test_a_utf16_file_with_its_byte_order_mark_is_read_little_or_big_endian(
    tmp_path: Path,
) -> None:
    """UTF-16 was refused before issue 13; its byte-order mark now decides."""
    text = HEADER + "1000000001,ул. Ленина,b1\n"
    little = tmp_path / "le.csv"
    little.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    big = tmp_path / "be.csv"
    big.write_bytes(codecs.BOM_UTF16_BE + text.encode("utf-16-be"))
    expected = [(2, {"account": "1000000001", "address": "ул. Ленина", "building": "b1"})]

    assert list(read_csv(little)) == expected
    assert list(read_csv(big)) == expected


async def test_a_utf32_file_is_refused_with_one_clear_line(tmp_path: Path) -> None:
    path = write(tmp_path, "accounts.csv", HEADER + "1000000001,a,b1\n", encoding="utf-32")

    assert [(line, str(row)) for line, row in read_csv(path)] == [
        (1, "UTF-32 is not supported: save the file as UTF-8")
    ]


async def test_a_row_the_database_refuses_is_rejected_alone_and_the_rest_of_its_batch_loads(
    settings: Settings, tmp_path: Path
) -> None:
    """The last line of defence: a batch the database refuses is written row by row. The
    supplier's database here has a rule of its own (a CHECK constraint on PostgreSQL, a
    trigger on SQLite) that refuses one meter the importer has no reason to reject."""
    meters = (
        "account,meter,service,zone,digits\n"
        "1234567890,M1,electricity,single,6.1\n"
        "1234567891,REFUSED,electricity,single,6.1\n"
        "1234567892,M3,hot_water,single,6.1\n"
    )
    async with gateway(settings) as gw:
        await import_file(gw.db, "accounts", write(tmp_path, "accounts.csv", ACCOUNTS))
        await gw.db.run(lambda uow: _refuse_meter(uow.conn, "REFUSED"))
        path = write(tmp_path, "meters.csv", meters)
        report = await import_file(gw.db, "meters", path)
        registers = await select_rows(gw.db, t.registers)

    refusal = {
        "sqlite": "IntegrityError: meter refused",
        "postgresql": 'CheckViolationError: new row for relation "registers" violates '
        'check constraint "no_refused_meter"',
    }[settings.database_url.split(":")[0].split("+")[0]]
    assert report.errors == [f"{path}:3: the database refused the row: {refusal}"]
    assert "1234567891" not in report.errors[0]
    assert (report.inserted, [r["meter"] for r in registers]) == (2, ["M1", "M3"])


def _refuse_meter(conn: Any, meter: str) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_meter BEFORE INSERT ON registers "
            f"WHEN NEW.meter = '{meter}' BEGIN SELECT RAISE(ABORT, 'meter refused'); END"
        )
    else:
        conn.exec_driver_sql(
            f"ALTER TABLE registers ADD CONSTRAINT no_refused_meter CHECK (meter <> '{meter}')"
        )


# ----- issue 13: the header first, encodings, delimiters, dates, checking without writing


async def test_a_misspelt_required_column_is_one_error_and_nothing_of_the_file_is_imported(
    settings: Settings, tmp_path: Path
) -> None:
    text = ACCOUNTS.replace("account,address", "acount,address", 1)
    path = write(tmp_path, "accounts.csv", text)
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        accounts = await accounts_in(gw.db)

    expected = (
        f'{path}:1: no column account (is "acount" meant to be account?); expected columns: '
        "account,address,building,phone,debt,receipt_code,last_bill_total,residents "
        "(account required)"
    )
    assert report.errors == [expected]
    assert report.header_error == expected
    assert (report.inserted, report.updated, report.unchanged, report.rows) == (0, 0, 0, 0)
    assert accounts == []


async def test_a_misspelt_optional_column_a_missing_one_and_a_column_twice_are_one_line(
    tmp_path: Path,
) -> None:
    """A misspelt optional column would lose its values in silence (every debt 0)."""
    path = write(
        tmp_path,
        "meters.csv",
        "account,meter,service,service,digits,verified_untill,notes\n1,2,electricity,,6.1,,\n",
    )

    with pytest.raises(HeaderError) as raised:
        await check_file("meters", path)

    assert str(raised.value) == (
        f"{path}:1: column service is there 2 times; no column zone; "
        '"verified_untill" is not a column (is it verified_until?); expected columns: '
        "account,meter,service,zone,digits,verified_until,last_value,last_date "
        "(account, meter, service, zone, digits required)"
    )


async def test_an_empty_file_or_an_unreadable_header_is_a_header_error(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.csv", "")
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"email,build\x98ing\nelder@x.ru,b1\n")

    with pytest.raises(HeaderError) as no_header:
        await check_file("elders", empty)
    with pytest.raises(HeaderError) as unreadable:
        await check_file("elders", broken)

    described = "expected columns: email,building (email, building required)"
    assert no_header.value.reason == f"the file is empty: no header row; {described}"
    assert unreadable.value.reason == (
        f"the header row cannot be read: not valid UTF-8 (byte 0x98 at column 12); {described}"
    )


async def test_columns_no_file_of_its_kind_has_are_ignored_with_one_note(
    settings: Settings, tmp_path: Path
) -> None:
    path = write(tmp_path, "elders.csv", "Email,Building,Comment,x\nelder@x.ru,b1,hi,1\n")
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "elders", path)

    assert (report.inserted, report.errors) == (1, [])
    assert report.notes == [
        f"{path}:1: columns that are not elders columns, ignored: 'comment', 'x'"
    ]


async def test_tab_and_semicolon_delimiters_are_taken_from_the_header_line(
    tmp_path: Path,
) -> None:
    tabs = write(tmp_path, "tabs.csv", "email\tbuilding\nelder@x.ru\tb1, b2\n")
    semicolons = write(tmp_path, "semi.csv", "email;building\nelder@x.ru;b1, b2\n")

    assert list(read_csv(tabs)) == [(2, {"email": "elder@x.ru", "building": "b1, b2"})]
    assert list(read_csv(semicolons)) == [(2, {"email": "elder@x.ru", "building": "b1, b2"})]


async def test_dates_are_read_as_yyyy_mm_dd_or_dd_mm_yyyy(
    settings: Settings, tmp_path: Path
) -> None:
    meters = (
        "account,meter,service,zone,digits,verified_until,last_value,last_date\n"
        "1234567890,M1,electricity,single,6.1,31.12.2031,12,2026-10-20\n"
        "1234567890,M2,electricity,single,6.1,2031-12-31,12,20.10.2026\n"
        "1234567890,M3,electricity,single,6.1,29.02.2027,,\n"
        "1234567890,M4,electricity,single,6.1,1.12.2031,,\n"
    )
    tariffs = "service,zone,price,valid_from\nelectricity,single,6.43,01.07.2026\n"
    async with gateway(settings) as gw:
        await import_file(gw.db, "accounts", write(tmp_path, "accounts.csv", ACCOUNTS))
        meters_path = write(tmp_path, "meters.csv", meters)
        meter_report = await import_file(gw.db, "meters", meters_path)
        tariff_report = await import_file(gw.db, "tariffs", write(tmp_path, "t.csv", tariffs))
        registers = await select_rows(gw.db, t.registers)
        (tariff,) = await select_rows(gw.db, t.tariffs)

    assert meter_report.errors == [
        f"{meters_path}:4: verified_until must be a date YYYY-MM-DD or DD.MM.YYYY: '29.02.2027'",
        f"{meters_path}:5: verified_until must be a date YYYY-MM-DD or DD.MM.YYYY: '1.12.2031'",
    ]
    assert [(r["meter"], r["verified_until"], r["last_date"]) for r in registers] == [
        ("M1", date(2031, 12, 31), date(2026, 10, 20)),
        ("M2", date(2031, 12, 31), date(2026, 10, 20)),
    ]
    assert (tariff_report.errors, tariff["valid_from"]) == ([], date(2026, 7, 1))


STREETS = ("Ленина", "Пушкинская", "Кирова", "Молодёжная", "Советская", "Гагарина")
KOI8_ACCOUNTS = HEADER + "".join(
    f'10000000{i:02},"г. Ижевск, ул. {STREETS[i % 6]}, д. {i}, кв. {i + 1}",Дом {i},,0,,,\n'
    for i in range(12)
)


async def test_a_koi8_r_file_is_refused_unless_named_and_read_right_when_it_is(
    settings: Settings, tmp_path: Path
) -> None:
    """Read as Windows-1251 (the vote's choice), KOI8-R would be stored garbled."""
    path = write(tmp_path, "accounts.csv", KOI8_ACCOUNTS, encoding="koi8-r")
    async with gateway(settings) as gw:
        with pytest.raises(HeaderError) as raised:
            await check_file("accounts", path)
        refused = await import_file(gw.db, "accounts", path)
        nothing = await accounts_in(gw.db)
        report = await import_file(gw.db, "accounts", path, encoding="koi8-r")
        rows = await select_rows(gw.db, t.accounts)

    assert raised.value.reason == (
        "the file reads like KOI8-R, not Windows-1251: give --encoding koi8-r "
        "(or --encoding cp1251 to read it as Windows-1251 all the same)"
    )
    assert (refused.errors, nothing) == ([str(raised.value)], [])
    assert (report.inserted, report.errors) == (12, [])
    assert (rows[3]["address"], rows[3]["building"]) == (
        "г. Ижевск, ул. Молодёжная, д. 3, кв. 4",
        "Дом 3",
    )


async def test_a_windows_1251_file_like_it_is_not_taken_for_koi8_r(tmp_path: Path) -> None:
    path = write(tmp_path, "accounts.csv", KOI8_ACCOUNTS, encoding="cp1251")

    check = await check_file("accounts", path)

    assert (check.report.rows, check.report.errors) == (12, [])


async def test_a_single_byte_encoding_forced_on_a_utf8_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "accounts.csv", KOI8_ACCOUNTS)

    for forced, name in (("cp1251", "Windows-1251"), ("koi8-r", "KOI8-R")):
        with pytest.raises(HeaderError) as raised:
            await check_file("accounts", path, encoding=forced)
        assert raised.value.reason == (
            "the file is UTF-8 (every line with non-ASCII bytes is valid UTF-8): "
            f"read as {name} its text would be garbled; leave out --encoding"
        )
    assert (await check_file("accounts", path, encoding="utf-8")).report.errors == []


async def test_an_encoding_forced_against_a_byte_order_mark_is_refused(tmp_path: Path) -> None:
    utf8 = tmp_path / "utf8.csv"
    utf8.write_bytes(codecs.BOM_UTF8 + HEADER.encode())
    utf16 = write(tmp_path, "utf16.csv", HEADER, encoding="utf-16")

    with pytest.raises(HeaderError) as against_utf8:
        await check_file("accounts", utf8, encoding="cp1251")
    with pytest.raises(HeaderError) as against_utf16:
        await check_file("accounts", utf16, encoding="utf-8")

    assert against_utf8.value.reason == (
        "the file starts with a UTF-8 byte-order mark, not Windows-1251 as --encoding says: "
        "leave out --encoding"
    )
    assert against_utf16.value.reason == (
        "the file starts with a UTF-16 byte-order mark, not UTF-8 as --encoding says: "
        "leave out --encoding"
    )
    assert (await check_file("accounts", utf8, encoding="utf-8")).report.errors == []


async def test_a_utf8_line_in_a_windows_1251_file_is_rejected_not_stored_garbled(
    settings: Settings, tmp_path: Path
) -> None:
    """A file put together from two exports: the minority's lines would be mojibake."""
    path = tmp_path / "accounts.csv"
    path.write_bytes(
        HEADER.encode()
        + "1000000001,ул. Ленина 1,b1,,0,,,\n".encode("cp1251")
        + "1000000002,ул. Мира 2,b1,,0,,,\n".encode()
        + '1000000003,"ул. Кирова,\n3",b1,,0,,,\n'.encode()
        + "1000000004,ул. Гоголя 4,b1,,0,,,\n".encode("cp1251")
        + "1000000005,ул. Чехова 5,b1,,0,,,\n".encode("cp1251")
    )
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        rows = await select_rows(gw.db, t.accounts)

    mixed = (
        "valid UTF-8 in a file read as Windows-1251 (the file mixes encodings): "
        "not loaded, lest its text be garbled"
    )
    assert report.errors == [f"{path}:3: {mixed}", f"{path}:4: {mixed}"]
    assert [(r["account"], r["address"]) for r in rows] == [
        ("1000000001", "ул. Ленина 1"),
        ("1000000004", "ул. Гоголя 4"),
        ("1000000005", "ул. Чехова 5"),
    ]


async def test_a_utf16_file_imports_and_a_broken_last_line_is_rejected(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "accounts.csv"
    text = HEADER + "1000000001,ул. Ленина,b1\n1000000002,ул. Мира,b1\n"
    path.write_bytes(codecs.BOM_UTF16_BE + text.encode("utf-16-be") + b"\x00")  # odd byte
    async with gateway(settings) as gw:
        report = await import_file(gw.db, "accounts", path)
        rows = await select_rows(gw.db, t.accounts)

    assert report.errors == [f"{path}:4: not valid UTF-16 (at column 1)"]
    assert [(r["account"], r["address"]) for r in rows] == [
        ("1000000001", "ул. Ленина"),
        ("1000000002", "ул. Мира"),
    ]


async def test_utf16_without_a_byte_order_mark_is_named_in_the_header_error(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "accounts.csv", HEADER, encoding="utf-16-le")

    with pytest.raises(HeaderError) as raised:
        await check_file("accounts", path)

    assert raised.value.reason == (
        "the header row holds NUL bytes: UTF-16 without a byte-order mark? Save the file as UTF-8"
    )


async def test_check_file_reports_what_an_import_would_do_and_writes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    """A dry run: counts read from the database; a meter of an account that only the
    accounts file of the same run has is known, one of no account is rejected."""
    changed = ACCOUNTS.replace("b1,+79120000002,0,", "b1,+79120000002,42.50,")
    new_account = "5550001111,addr,b9,,0,,,\n"
    meters = (
        METERS
        + "5550001111,900,electricity,single,6.1,,,\n"
        + ("9999999999,901,electricity,single,6.1,,,\n")
    )
    async with gateway(settings) as gw:
        await import_file(gw.db, "accounts", write(tmp_path, "a0.csv", ACCOUNTS))
        await import_file(gw.db, "meters", write(tmp_path, "m0.csv", METERS))
        before = await select_rows(gw.db, t.accounts), await select_rows(gw.db, t.registers)
        accounts = await check_file(
            "accounts", write(tmp_path, "a.csv", changed + new_account), db=gw.db
        )
        meters_path = write(tmp_path, "m.csv", meters)
        checked = await check_file("meters", meters_path, db=gw.db, accounts=accounts.accounts)
        after = await select_rows(gw.db, t.accounts), await select_rows(gw.db, t.registers)

    report = accounts.report
    assert (report.inserted, report.updated, report.unchanged, report.errors) == (1, 1, 3, [])
    assert accounts.accounts == {
        "1234567890",
        "1234567891",
        "1234567892",
        "0012345678",
        "5550001111",
    }
    assert (checked.report.inserted, checked.report.unchanged, checked.report.rows) == (1, 7, 9)
    assert checked.report.errors == [f"{meters_path}:10: unknown account 9999999999"]
    assert after == before


async def test_progress_ticks_count_every_row_read_with_its_line(
    settings: Settings, tmp_path: Path
) -> None:
    lines = [HEADER.rstrip()] + [f"{7000000000 + i},a,b,,0,,," for i in range(2500)]
    lines[1500] = "7000001499,a,b,,lots,,,"  # rejected: counted all the same
    path = write(tmp_path, "accounts.csv", "\n".join(lines) + "\n")
    ticks: list[tuple[int, int]] = []
    async with gateway(settings) as gw:
        report = await import_file(
            gw.db, "accounts", path, tick=lambda rows, line: ticks.append((rows, line))
        )

    assert ticks == [(1000, 1001), (2000, 2001), (2500, 2501)]
    assert (report.rows, report.inserted, len(report.errors)) == (2500, 2499, 1)
    assert count_lines(path) == 2501
