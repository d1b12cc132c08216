"""The result of handling one message: the JSON outcome object of the public contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    HELD = "held"
    # A command (ПОМОЩЬ, ПОСЛЕДНИЕ) was answered; no readings were involved.
    ANSWERED = "answered"


@dataclass(frozen=True, slots=True)
class ChargeLine:
    meter: str
    zone: str
    consumption: Decimal
    tariff: Decimal | None
    amount: Decimal | None

    def to_json(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "zone": self.zone,
            "consumption": _dec(self.consumption),
            "tariff": _dec(self.tariff),
            "amount": _dec(self.amount),
        }


@dataclass(frozen=True, slots=True)
class Charge:
    lines: tuple[ChargeLine, ...]
    debt: Decimal
    total: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": [line.to_json() for line in self.lines],
            "debt": _dec(self.debt),
            "total": _dec(self.total),
        }


@dataclass(frozen=True, slots=True)
class ReadingLine:
    meter: str
    service: str
    zone: str
    value: Decimal
    previous: Decimal | None
    consumption: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "service": self.service,
            "zone": self.zone,
            "value": _dec(self.value),
            "previous": _dec(self.previous),
            "consumption": _dec(self.consumption),
        }


@dataclass(frozen=True, slots=True)
class OutcomeError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    account: str | None
    reply: str | None
    error: OutcomeError | None = None
    readings: tuple[ReadingLine, ...] = field(default=())
    charge: Charge | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "account": self.account,
            "error": (
                {"code": self.error.code, "message": self.error.message} if self.error else None
            ),
            "readings": [r.to_json() for r in self.readings],
            "charge": self.charge.to_json() if self.charge else None,
            "reply": self.reply,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        """Rebuild an outcome stored by :meth:`to_json` (used to answer a redelivery)."""
        error = data.get("error")
        charge = data.get("charge")
        return cls(
            status=Status(data["status"]),
            account=data.get("account"),
            reply=data.get("reply"),
            error=OutcomeError(error["code"], error["message"]) if error else None,
            readings=tuple(
                ReadingLine(
                    meter=r["meter"],
                    service=r["service"],
                    zone=r["zone"],
                    value=Decimal(r["value"]),
                    previous=_opt(r["previous"]),
                    consumption=Decimal(r["consumption"]),
                )
                for r in data.get("readings", [])
            ),
            charge=(
                Charge(
                    lines=tuple(
                        ChargeLine(
                            meter=line["meter"],
                            zone=line["zone"],
                            consumption=Decimal(line["consumption"]),
                            tariff=_opt(line["tariff"]),
                            amount=_opt(line["amount"]),
                        )
                        for line in charge["lines"]
                    ),
                    debt=Decimal(charge["debt"]),
                    total=Decimal(charge["total"]),
                )
                if charge
                else None
            ),
        )


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _opt(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
