"""The result of handling one message: the JSON outcome object of the public contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from gateway.domain.model import Account, Tariff
from gateway.domain.periods import Window
from gateway.domain.rules import Rejection


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


# ----- why: what a renderer needs to word an outcome, in any channel's medium -----------


@dataclass(frozen=True, slots=True)
class Confirmed:
    """Readings accepted (or the same ones again): a correction says so; one counted
    outside the acceptance window names its ``period`` (``YYYY-MM``)."""

    account: str
    corrected: bool = False
    period: str | None = None


@dataclass(frozen=True, slots=True)
class HeldForReview:
    account: str
    # Whether the sender's channel can tell them the operator's decision.
    notify: bool = True


@dataclass(frozen=True, slots=True)
class Refused:
    """A rule or the matching of values to registers refused the readings."""

    account: Account
    rejection: Rejection
    today: date


@dataclass(frozen=True, slots=True)
class UnknownAccount:
    number: str


@dataclass(frozen=True, slots=True)
class OutsideWindow:
    account: str
    window: Window
    opens: date


@dataclass(frozen=True, slots=True)
class Unreadable:
    """The text is not readings: the parser's ``kind`` of mistake, the ``token`` and
    ``position`` (in the normalised text) where it found it, and its own wording
    (``problem``); ``account`` is the sender's account when the text starts with a known
    one."""

    problem: str
    account: Account | None = None
    kind: str = "unreadable"
    token: str | None = None
    position: int | None = None


@dataclass(frozen=True, slots=True)
class NotAuthorized:
    """The sender may not act on this account (``channel`` says how access is had)."""

    account: str
    channel: str


@dataclass(frozen=True, slots=True)
class AccountRequired:
    """The number was left out and the sender's phone belongs to several accounts."""

    accounts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NeedsHelp:
    """No digit at all (chatter), or the help command: the formats."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """СТОП or СТАРТ changed what the phone gets: ``stopped`` is the new state."""

    stopped: bool


@dataclass(frozen=True, slots=True)
class LastReadings:
    account: Account
    tariffs: tuple[Tariff, ...]
    today: date


@dataclass(frozen=True, slots=True)
class Unanswered:
    """Nothing is said back (rate limited, or chatter already helped today)."""


@dataclass(frozen=True, slots=True)
class Failed:
    """Handling failed unexpectedly; the message was recorded."""


Reason = (
    Confirmed
    | HeldForReview
    | Refused
    | UnknownAccount
    | OutsideWindow
    | Unreadable
    | NotAuthorized
    | AccountRequired
    | NeedsHelp
    | Subscription
    | LastReadings
    | Unanswered
    | Failed
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a message. ``reason`` is what a channel's renderer words the reply
    from (it is not part of the JSON: a stored outcome keeps the reply it was given)."""

    status: Status
    account: str | None
    reply: str | None
    error: OutcomeError | None = None
    readings: tuple[ReadingLine, ...] = field(default=())
    charge: Charge | None = None
    reason: Reason | None = field(default=None, compare=False)
    # Keys added to the JSON object (a list's lines); never one of the keys above.
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def worded(self, reply: str | None, error: OutcomeError | None) -> Outcome:
        """This outcome with ``reply`` and ``error``: ``dataclasses.replace`` for the two
        (a test holds them equal), made directly, as every message's outcome is."""
        return Outcome(
            self.status,
            self.account,
            reply,
            error,
            self.readings,
            self.charge,
            self.reason,
            self.extra,
        )

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
            **self.extra,
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
