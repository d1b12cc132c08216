"""Loading the registry from the billing system's CSV export (columns: DESIGN.md).

Files may be UTF-8 (with or without BOM) or Windows-1251, comma or semicolon separated.
A bad row is reported with its file and line and skipped; good rows are upserted in
batches, so a re-import of the same files changes nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from gateway.domain.model import Capacity, Service, Zone
from gateway.storage import Database
from gateway.storage import tables as t

BATCH = 1000

REQUIRED: dict[str, tuple[str, ...]] = {
    "accounts": ("account",),
    "meters": ("account", "meter", "service", "zone", "digits"),
    "tariffs": ("service", "zone", "price", "valid_from"),
    "elders": ("email", "building"),
}


class RowError(ValueError):
    pass


@dataclass
class FileReport:
    kind: str
    path: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.kind}: {self.inserted} added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {len(self.errors)} rejected ({self.path})"
        )


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows as ``(line number, {column: value})``; header names are lower-cased."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1251")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        yield reader.line_num, dict(zip(header, (c.strip() for c in row), strict=False))


def _decimal(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text.replace(" ", "").replace(",", "."))
    except InvalidOperation:
        raise RowError(f"{name} is not a number: {text!r}") from None
    if not value.is_finite():
        raise RowError(f"{name} is not a number: {text!r}")
    return value


def _date(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise RowError(f"{name} must be a date YYYY-MM-DD: {text!r}") from None


def _opt(text: str, convert: Callable[[str, str], Any], name: str) -> Any:
    return convert(text, name) if text else None


def _enum(text: str, kind: type[Service] | type[Zone], name: str) -> str:
    try:
        return kind(text.lower()).value
    except ValueError:
        allowed = "|".join(m.value for m in kind)
        raise RowError(f"{name} must be one of {allowed}: {text!r}") from None


def _account(row: Mapping[str, str]) -> dict[str, Any]:
    return {
        "account": row["account"],
        "address": row.get("address", ""),
        "building": row.get("building", ""),
        "phone": row.get("phone", ""),
        "debt": _decimal(row.get("debt") or "0", "debt"),
        "receipt_code": row.get("receipt_code", ""),
        "last_bill_total": _opt(row.get("last_bill_total", ""), _decimal, "last_bill_total"),
        "residents": _opt(row.get("residents", ""), _count, "residents"),
    }


def _count(text: str, name: str) -> int:
    if not text.isdigit():
        raise RowError(f"{name} must be a whole number: {text!r}")
    return int(text)


def _meter(row: Mapping[str, str]) -> dict[str, Any]:
    service = _enum(row["service"], Service, "service")
    zone = _enum(row["zone"], Zone, "zone")
    if service == Service.ELECTRICITY and zone in (Zone.KITCHEN, Zone.BATH):
        raise RowError(f"zone {zone} is for water meters")
    if service != Service.ELECTRICITY and zone in (Zone.DAY, Zone.NIGHT):
        raise RowError(f"zone {zone} is for electricity meters")
    try:
        capacity = Capacity.parse(row["digits"])
    except ValueError as exc:
        raise RowError(str(exc)) from None
    last_value = _opt(row.get("last_value", ""), _decimal, "last_value")
    if last_value is not None and not capacity.fits(last_value):
        raise RowError(f"last_value {last_value} does not fit digits {capacity}")
    return {
        "account": row["account"],
        "meter": row["meter"],
        "service": service,
        "zone": zone,
        "digits": str(capacity),
        "verified_until": _opt(row.get("verified_until", ""), _date, "verified_until"),
        "last_value": last_value,
        "last_date": _opt(row.get("last_date", ""), _date, "last_date"),
    }


def _tariff(row: Mapping[str, str]) -> dict[str, Any]:
    price = _decimal(row["price"], "price")
    if price < 0:
        raise RowError(f"price must not be negative: {row['price']!r}")
    normative = _opt(row.get("normative", ""), _decimal, "normative")
    if normative is not None and normative < 0:
        raise RowError(f"normative must not be negative: {row['normative']!r}")
    return {
        "service": _enum(row["service"], Service, "service"),
        "zone": _enum(row["zone"], Zone, "zone"),
        "price": price,
        "valid_from": _date(row["valid_from"], "valid_from"),
        "normative": normative,
    }


def _elder(row: Mapping[str, str]) -> dict[str, Any]:
    email = row["email"].lower()
    if "@" not in email:
        raise RowError(f"not an email address: {row['email']!r}")
    return {"email": email, "building": row["building"]}


_KINDS: dict[str, tuple[Callable[[Mapping[str, str]], dict[str, Any]], Any, tuple[str, ...]]] = {
    "accounts": (_account, t.accounts, ("account",)),
    "meters": (_meter, t.registers, ("account", "meter", "zone")),
    "tariffs": (_tariff, t.tariffs, ("service", "zone", "valid_from")),
    "elders": (_elder, t.elders, ("email", "building")),
}
ORDER = ("accounts", "meters", "tariffs", "elders")

Progress = Callable[[str, int], None]


async def import_file(
    db: Database, kind: str, path: Path, progress: Progress | None = None
) -> FileReport:
    """Validate and upsert one registry file; returns what changed and what was rejected."""
    convert, table, key = _KINDS[kind]
    report = FileReport(kind, str(path))
    batch: list[tuple[int, dict[str, Any]]] = []
    seen: dict[tuple[Any, ...], int] = {}
    done = 0

    async def flush() -> None:
        nonlocal done
        rows = batch
        if kind == "meters":
            rows = await _drop_unknown_accounts(db, rows, report)
        if rows:
            values = [r for _, r in rows]
            counts = await db.run(lambda uow: uow.upsert(table, key, values))
            report.inserted += counts.inserted
            report.updated += counts.updated
            report.unchanged += counts.unchanged
        done += len(batch)
        batch.clear()
        if progress:
            progress(kind, done)

    for line, raw in read_csv(path):
        missing = [c for c in REQUIRED[kind] if not raw.get(c)]
        try:
            if missing:
                raise RowError(f"missing {', '.join(missing)}")
            row = convert(raw)
        except RowError as exc:
            report.errors.append(f"{path}:{line}: {exc}")
            continue
        row_key = tuple(row[k] for k in key)
        if row_key in seen:
            report.errors.append(f"{path}:{line}: same key as line {seen[row_key]}, skipped")
            continue
        seen[row_key] = line
        batch.append((line, row))
        if len(batch) >= BATCH:
            await flush()
    await flush()
    return report


async def _drop_unknown_accounts(
    db: Database, rows: list[tuple[int, dict[str, Any]]], report: FileReport
) -> list[tuple[int, dict[str, Any]]]:
    numbers = [r["account"] for _, r in rows]
    known = await db.run(lambda uow: uow.existing_accounts(numbers))
    kept = []
    for line, row in rows:
        if row["account"] in known:
            kept.append((line, row))
        else:
            report.errors.append(f"{report.path}:{line}: unknown account {row['account']}")
    return kept
