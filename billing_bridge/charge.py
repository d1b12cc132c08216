"""The preliminary charge (предварительный расчёт) shown to a customer right after sending.

Per register: consumption × the tariff of (service, zone) in force on the reading's date,
rounded half-up to kopecks per line. Total = sum of lines + debt when debt is positive;
an overpayment is not subtracted. Common-house needs, duties and fees are not included.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from gateway.domain.model import SERVICE_OF, ZONE_OF, Service, Tariff, Zone
from gateway.domain.outcome import Charge, ChargeLine, ReadingLine

KOPECK = Decimal("0.01")


def to_kopecks(amount: Decimal) -> Decimal:
    return amount.quantize(KOPECK, rounding=ROUND_HALF_UP)


def tariff_in_force(
    tariffs: Iterable[Tariff], service: Service, zone: Zone, on: date
) -> Tariff | None:
    """The tariff with the latest ``valid_from`` on or before ``on``.

    A water register falls back to the service's ``single`` tariff when its zone
    (kitchen, bath) has none of its own.
    """
    candidates = [t for t in tariffs if t.service is service and t.valid_from <= on]
    exact = [t for t in candidates if t.zone is zone]
    if not exact and service is not Service.ELECTRICITY:
        exact = [t for t in candidates if t.zone is Zone.SINGLE]
    return max(exact, key=lambda t: t.valid_from, default=None)


def preliminary_charge(
    readings: Sequence[ReadingLine], tariffs: Sequence[Tariff], debt: Decimal, on: date
) -> Charge:
    lines = []
    for reading in readings:
        service, zone = SERVICE_OF[reading.service], ZONE_OF[reading.zone]
        tariff = tariff_in_force(tariffs, service, zone, on)
        price = tariff.price if tariff else None
        amount = to_kopecks(reading.consumption * price) if price is not None else None
        lines.append(ChargeLine(reading.meter, reading.zone, reading.consumption, price, amount))
    owed = to_kopecks(debt) if debt > 0 else Decimal("0.00")
    total = sum((line.amount for line in lines if line.amount is not None), owed)
    return Charge(tuple(lines), to_kopecks(debt), to_kopecks(total))


def normative_charge(
    services: Iterable[Service], residents: int | None, tariffs: Sequence[Tariff], on: date
) -> Decimal | None:
    """What a month costs without readings: per service, residents × the normative of the
    tariff in force × its price (the ``single`` zone's, else the first zone with a
    normative), rounded per service. None when no service of the account has a normative
    or the number of residents is unknown."""
    if not residents:
        return None
    total: Decimal | None = None
    for service in dict.fromkeys(services):
        in_force = [t for t in tariffs if t.service is service and t.valid_from <= on]
        latest: dict[Zone, Tariff] = {}
        for tariff in sorted(in_force, key=lambda t: t.valid_from):
            latest[tariff.zone] = tariff
        with_normative = [t for t in latest.values() if t.normative is not None]
        if not with_normative:
            continue
        chosen = next((t for t in with_normative if t.zone is Zone.SINGLE), with_normative[0])
        assert chosen.normative is not None
        amount = to_kopecks(residents * chosen.normative * chosen.price)
        total = amount if total is None else total + amount
    return total
