"""The Russian texts senders receive. Every reply for one account with up to two
registers fits two UCS-2 SMS segments (134 characters); tests hold that line."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from billing_bridge.charge import normative_charge, tariff_in_force
from gateway.domain.errors import ErrorCode
from gateway.domain.model import Account, Service, Tariff, Zone
from gateway.domain.outcome import Charge, ReadingLine
from gateway.domain.periods import Window
from gateway.domain.rules import Rejection

SMS_LIMIT = 134
FORMAT_EXAMPLE = "1234567890 12345 6789"
_EXAMPLE_VALUES = ("12345", "6789", "123", "45", "67", "89")
_SERVICE_LABEL = {Service.ELECTRICITY: "ЭЭ", Service.HOT_WATER: "ГВС", Service.COLD_WATER: "ХВС"}
_ZONE_LABEL = {Zone.DAY: "день", Zone.NIGHT: "ночь", Zone.KITCHEN: "кухня", Zone.BATH: "ванна"}


def register_label(service: Service, zone: Zone) -> str:
    """``день``/``ночь`` for electricity zones, ``ГВС``, ``ХВС кухня``… otherwise."""
    if zone is Zone.SINGLE:
        return _SERVICE_LABEL[service]
    if service is Service.ELECTRICITY:
        return _ZONE_LABEL[zone]
    return f"{_SERVICE_LABEL[service]} {_ZONE_LABEL[zone]}"


def number(value: Decimal) -> str:
    """A reading or a consumption the Russian way: decimal comma, no exponent."""
    return format(value, "f").replace(".", ",")


def money(value: Decimal) -> str:
    return f"{value:.2f}".replace(".", ",") + " ₽"


def accepted(
    account: str,
    readings: Sequence[ReadingLine],
    charge: Charge,
    *,
    corrected: bool = False,
    period: str | None = None,
) -> str:
    """The confirmation; a correction says so, and a reading counted outside the window
    names its period (``за 12.2026``). Falls back to abbreviations when the full text
    would not fit two SMS segments."""
    when = ""
    if period is not None:
        year, month = period.split("-")
        when = f" за {month}.{year}"
    full, short = ("Исправлено", "Испр.") if corrected else ("Принято", "Принято")
    return _confirmation((full + when, short + when), account, readings, charge)


def review_approved(account: str, readings: Sequence[ReadingLine], charge: Charge) -> str:
    """Held readings an operator accepted: the confirmation they did not get at first."""
    return _confirmation(("Проверено и принято", "Проверено"), account, readings, charge)


def _confirmation(
    heads: tuple[str, str], account: str, readings: Sequence[ReadingLine], charge: Charge
) -> str:
    values = ", ".join(
        f"{register_label(Service(r.service), Zone(r.zone))} {number(r.value)}" for r in readings
    )
    owed = charge.debt > 0
    full = f"{heads[0]}, ЛС {account}: {values}. Предварительно к оплате {money(charge.total)}" + (
        f" (с долгом {money(charge.debt)})." if owed else "."
    )
    if len(full) <= SMS_LIMIT:
        return full
    return f"{heads[1]}, ЛС {account}: {values}. Предв. к оплате {money(charge.total)}" + (
        f" (долг {money(charge.debt)})." if owed else "."
    )


def held_for_review(account: str) -> str:
    return (
        f"ЛС {account}: показания приняты на проверку — расход намного выше обычного. "
        "Сообщим о решении."
    )


def review_rejected(account: str, reason: str) -> str:
    """Held readings an operator declined, with the operator's reason (shortened to fit)."""
    head = f"ЛС {account}: показания не приняты."
    return f"{head} {_short(reason.strip(), SMS_LIMIT - len(head) - 1)}".rstrip()


def outside_window(account: str, window: Window, opens: date) -> str:
    return (
        f"ЛС {account}: показания принимаются с {window.start} по {window.end} число. "
        f"Отправьте их с {opens:%d.%m.%Y}."
    )


def account_format(account: Account) -> str:
    """The message this account should send, e.g. ``1234567890 12345 6789``."""
    count = len(account.registers)
    return " ".join([account.number, *_EXAMPLE_VALUES[:count]])


def rejected(account: Account, rejection: Rejection, today: date) -> str:
    head = f"ЛС {account.number}:"
    code = rejection.code
    if code is ErrorCode.VALUE_COUNT:
        names = ", ".join(register_label(r.service, r.zone) for r in account.ordered_registers)
        count = len(account.registers)
        return f"{head} нужно {count} {_plural(count)} ({names}), напр. {account_format(account)}"
    if code is ErrorCode.UNKNOWN_METER:
        return f"{head} нет счётчика «{_short(rejection.detail)}». {_format_for(account)}"
    if code is ErrorCode.AMBIGUOUS_LABEL:
        return f"{head} неясно, к какому счётчику «{_short(rejection.detail)}». " + _format_for(
            account
        )
    register, value = rejection.register, rejection.value
    assert register is not None and value is not None
    label = register_label(register.service, register.zone)
    if code is ErrorCode.TOO_MANY_DIGITS:
        cap = register.capacity
        return (
            f"{head} {label} {number(value)} не помещается в счётчик {cap}: до "
            f"{cap.integer_digits} цифр до запятой и {cap.fraction_digits} после."
        )
    if code is ErrorCode.VERIFICATION_EXPIRED:
        until = register.verified_until.strftime("%d.%m.%Y") if register.verified_until else ""
        return (
            f"{head} срок поверки счётчика {register.meter} истёк {until}. "
            "Показания не приняты, обратитесь к поставщику."
        )
    if code is ErrorCode.BELOW_PREVIOUS:
        assert rejection.limit is not None
        return (
            f"{head} {label} {number(value)} меньше прежнего {number(rejection.limit)}. "
            "Проверьте показание и отправьте снова."
        )
    if code is ErrorCode.JUMP_TOO_LARGE:
        assert rejection.limit is not None
        return (
            f"{head} расход {label} больше допустимых {number(rejection.limit)}. "
            "Проверьте показание или обратитесь к поставщику."
        )
    raise ValueError(f"no reply text for {code}")


def unparseable(account: Account, problem: str) -> str:
    """A parse error for a known account: the problem and this account's own format."""
    return f"ЛС {account.number}: {problem[0].lower()}{problem[1:]}. {_format_for(account)}"


def _format_for(account: Account) -> str:
    names = " ".join(register_label(r.service, r.zone) for r in account.ordered_registers)
    return f"Формат: {account_format(account)} ({names})"


def _short(text: str | None, limit: int = 15) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def last_readings(account: Account, tariffs: Sequence[Tariff], today: date) -> str:
    """The answer to ``ПОСЛЕДНИЕ``: each register's last reading and date, and the tariffs
    in force today (one price when all registers share it)."""
    parts = []
    prices: dict[str, Decimal] = {}
    for register in account.ordered_registers:
        label = register_label(register.service, register.zone)
        previous = register.previous
        if previous is None:
            parts.append(f"{label} —")
        else:
            parts.append(f"{label} {number(previous.value)} ({previous.taken_on:%d.%m.%y})")
        tariff = tariff_in_force(tariffs, register.service, register.zone, today)
        if tariff is not None:
            prices[label] = tariff.price
    text = f"ЛС {account.number}: {', '.join(parts)}."
    if len(set(prices.values())) == 1:
        text += f" Тариф {money(next(iter(prices.values())))}."
    elif prices:
        listed = ", ".join(f"{label} {_price(p)}" for label, p in prices.items())
        text += f" Тарифы ₽: {listed}."
    services = [r.service for r in account.ordered_registers]
    normative = normative_charge(services, account.residents, tariffs, today)
    if normative is not None:
        with_normative = f"{text} Без показаний по нормативу {money(normative)}."
        if len(with_normative) <= SMS_LIMIT:
            return with_normative
    return text


def _price(value: Decimal) -> str:
    return f"{value:.2f}".replace(".", ",")


def unknown_account(number_: str) -> str:
    return (
        f"ЛС {number_} не найден. Проверьте номер в квитанции. "
        f"Формат: ЛС и показания, напр. {FORMAT_EXAMPLE}"
    )


INTERNAL_ERROR = "Техническая ошибка, показания не приняты. Попробуйте позже."


def _plural(count: int) -> str:
    if count % 10 == 1 and count % 100 != 11:
        return "показание"
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return "показания"
    return "показаний"
