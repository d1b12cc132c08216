"""The Russian texts senders receive.

Two rules hold for every reply, whatever the inputs (tests hold both, with hostile values):

* **Valid.** Everything the reply repeats back — an account number, a value, a word or a
  label the sender wrote, a meter serial, an operator's reason — passes through
  :func:`safe`, which drops what XML 1.0 cannot carry and what no SMS should (control
  characters, lone surrogates, noncharacters, bidi overrides) and bounds the fragment.
* **Fits.** Every builder offers candidates from the richest to the shortest; the first
  that fits two UCS-2 SMS segments (:data:`SMS_LIMIT` UTF-16 code units) wins, and the
  last is built from bounded fragments only, so it always fits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from decimal import Decimal

from billing_bridge.charge import normative_charge, tariff_in_force
from gateway.domain import periods
from gateway.domain.errors import ErrorCode
from gateway.domain.model import SERVICE_OF, ZONE_OF, Account, Register, Service, Tariff, Zone
from gateway.domain.outcome import Charge, ReadingLine
from gateway.domain.periods import Window
from gateway.domain.rules import Rejection

SMS_LIMIT = 134  # two UCS-2 segments of 67 UTF-16 code units
FORMAT_EXAMPLE = "1234567890 12345 6789"

# The longest each kind of echo may be (UTF-16 code units, "…" included).
ACCOUNT_ECHO = 32  # the registry's longest account number: always shown whole
METER_ECHO = 64  # the registry's longest meter serial
SHORT_METER_ECHO = 20  # a meter serial in a shortest form
VALUE_ECHO = 20  # a reading: 12 integer + 6 fraction digits and the comma fit
MONEY_ECHO = 24  # an amount with kopecks and " ₽": 14 integer digits fit with room
WORD_ECHO = 15  # a label or a word the sender wrote
PROBLEM_ECHO = 60  # a parse error's first sentence

_EXAMPLE_VALUES = ("12345", "6789", "123", "45", "67", "89")
_SERVICE_LABEL = {Service.ELECTRICITY: "ЭЭ", Service.HOT_WATER: "ГВС", Service.COLD_WATER: "ХВС"}
_ZONE_LABEL = {Zone.DAY: "день", Zone.NIGHT: "ночь", Zone.KITCHEN: "кухня", Zone.BATH: "ванна"}
# The shortest labels the parser reads back: Д/Н for electricity, К/В for kitchen/bath.
_SHORT_ZONE_LABEL = {Zone.DAY: "Д", Zone.NIGHT: "Н", Zone.KITCHEN: "К", Zone.BATH: "В"}

# Dropped from an echo: control characters other than white space (C0, DEL, C1), which
# XML 1.0 cannot carry or no SMS should; lone surrogates; noncharacters (U+FDD0–U+FDEF and
# U+xFFFE/U+xFFFF of every plane); and the bidi embeddings, overrides and isolates, which
# would reorder the rest of the reply.
_DROPPED = re.compile(
    "["
    + "".join(c for c in map(chr, [*range(0x20), *range(0x7F, 0xA0)]) if not c.isspace())
    + "\ud800-\udfff\ufdd0-\ufdef\u202a-\u202e\u2066-\u2069"
    + "".join(chr(plane * 0x10000 + last) for plane in range(17) for last in (0xFFFE, 0xFFFF))
    + "]"
)
# White space, tab, CR, LF and the other line breaks included (a run of it): one space.
_SPACED = re.compile(r"\s+")


def safe(text: str | None, limit: int = SMS_LIMIT) -> str:
    """``text`` fit to be repeated in a reply: control characters, characters XML 1.0
    cannot carry and bidi controls dropped, every run of white space (tab, CR, LF…) made
    one space, trimmed, and shortened to ``limit`` UTF-16 code units with "…" when
    longer. The one function every echoed fragment passes through."""
    text = text or ""
    if text.isprintable():
        # Nothing to drop: every dropped character and every white space but the space
        # is unprintable (a test holds this to the general case).
        cleaned = (_SPACED.sub(" ", text) if "  " in text else text).strip()
    else:
        cleaned = _SPACED.sub(" ", _DROPPED.sub("", text)).strip()
    return _cut(cleaned, limit)


def _units(text: str) -> int:
    """UTF-16 code units: what an SMS segment counts (a character beyond the BMP is two)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _cut(text: str, limit: int) -> str:
    if _units(text) <= limit:
        return text
    if limit < 1:
        return ""
    kept, used = [], 0
    for char in text:
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit - 1:
            break
        kept.append(char)
    return "".join(kept).rstrip() + "…"


def _fit(*candidates: str) -> str:
    """The first candidate that fits two SMS segments. The last one is built to fit
    whatever the inputs; should it ever not, it is cut rather than sent over the limit."""
    return _first_fitting(candidates)


def _first_fitting(candidates: Iterable[str]) -> str:
    """:func:`_fit` of candidates made one by one, as far as needed."""
    text = ""
    for text in candidates:
        if _units(text) <= SMS_LIMIT:
            return text
    return _cut(text, SMS_LIMIT)


def register_label(service: Service, zone: Zone) -> str:
    """``день``/``ночь`` for electricity zones, ``ГВС``, ``ХВС кухня``… otherwise."""
    if zone is Zone.SINGLE:
        return _SERVICE_LABEL[service]
    if service is Service.ELECTRICITY:
        return _ZONE_LABEL[zone]
    return f"{_SERVICE_LABEL[service]} {_ZONE_LABEL[zone]}"


def short_label(service: Service, zone: Zone) -> str:
    """``Д``/``Н`` for electricity zones, ``ГВС``, ``ХВС К``… otherwise."""
    if zone is Zone.SINGLE:
        return _SERVICE_LABEL[service]
    if service is Service.ELECTRICITY:
        return _SHORT_ZONE_LABEL[zone]
    return f"{_SERVICE_LABEL[service]} {_SHORT_ZONE_LABEL[zone]}"


def number(value: Decimal) -> str:
    """A reading or a consumption the Russian way: decimal comma, no exponent."""
    return format(value, "f").replace(".", ",")


def money(value: Decimal) -> str:
    return f"{value:.2f}".replace(".", ",") + " ₽"


def _account(text: str) -> str:
    return safe(text, ACCOUNT_ECHO)


def _value(value: Decimal) -> str:
    return safe(number(value), VALUE_ECHO)


def _money(value: Decimal) -> str:
    return safe(money(value), MONEY_ECHO)


def accepted(
    account: str,
    readings: Sequence[ReadingLine],
    charge: Charge,
    *,
    corrected: bool = False,
    period: str | None = None,
) -> str:
    """The confirmation; a correction says so, and a reading counted outside the window
    names its period (``за 12.2026``). Falls back to abbreviations, then short labels,
    then a count of the readings when the full text would not fit two SMS segments."""
    when = ""
    if period is not None:
        when = f" за {safe(periods.label(period), 7)}"
    full, short = ("Исправлено", "Испр.") if corrected else ("Принято", "Принято")
    return _confirmation((full + when, short + when), account, readings, charge)


def review_approved(account: str, readings: Sequence[ReadingLine], charge: Charge) -> str:
    """Held readings an operator accepted: the confirmation they did not get at first."""
    return _confirmation(("Проверено и принято", "Проверено"), account, readings, charge)


def _confirmation(
    heads: tuple[str, str], account: str, readings: Sequence[ReadingLine], charge: Charge
) -> str:
    """Every form names the account and the total and says it is preliminary."""
    pairs = [(SERVICE_OF[r.service], ZONE_OF[r.zone], number(r.value)) for r in readings]
    acc, total = _account(account), _money(charge.total)
    owed = charge.debt > 0
    debt = _money(charge.debt) if owed else ""

    def short(listed: str, note: str) -> str:
        return f"{heads[1]}, ЛС {acc}: {listed}. Предв. к оплате {total}{note}"

    def candidates() -> Iterator[str]:  # made one by one: the first nearly always fits
        values = ", ".join(f"{register_label(s, z)} {v}" for s, z, v in pairs)
        owing = f" (с долгом {debt})." if owed else "."
        yield f"{heads[0]}, ЛС {acc}: {values}. Предварительно к оплате {total}{owing}"
        debt_note = f" (долг {debt})." if owed else "."
        yield short(values, debt_note)
        short_values = ", ".join(f"{short_label(s, z)} {v}" for s, z, v in pairs)
        yield short(short_values, debt_note)
        yield short(short_values, ".")
        count = f"{len(readings)} {_plural(len(readings))}"
        yield short(count, debt_note)
        yield short(count, ".")

    return _first_fitting(candidates())


def held_for_review(account: str, *, notify: bool = True) -> str:
    """Held for an operator; the decision is promised only when it can be sent."""
    held = f"ЛС {_account(account)}: показания приняты на проверку — расход намного выше обычного."
    return _fit(f"{held} Сообщим о решении." if notify else held)


def review_rejected(account: str, reason: str) -> str:
    """Held readings an operator declined, with the operator's reason (shortened to fit)."""
    head = f"ЛС {_account(account)}: показания не приняты."
    return _fit(f"{head} {safe(reason, SMS_LIMIT - _units(head) - 1)}".rstrip())


def outside_window(account: str, window: Window, opens: date) -> str:
    return _fit(
        f"ЛС {_account(account)}: показания принимаются с {window.start} по {window.end} "
        f"число. Отправьте их с {opens:%d.%m.%Y}."
    )


def account_format(account: Account) -> str:
    """The message this account should send, e.g. ``1234567890 12345 6789``."""
    count = len(account.registers)
    return " ".join([_account(account.number), *_EXAMPLE_VALUES[:count]])


def rejected(account: Account, rejection: Rejection, today: date) -> str:
    head = f"ЛС {_account(account.number)}:"
    code = rejection.code
    if code is ErrorCode.VALUE_COUNT:
        registers = account.ordered_registers
        names = ", ".join(register_label(r.service, r.zone) for r in registers)
        short_names = ", ".join(short_label(r.service, r.zone) for r in registers)
        count = len(account.registers)
        need = f"{head} нужно {count} {_plural(count)}"
        example = account_format(account)
        return _fit(
            f"{need} ({names}), напр. {example}",
            f"{need} ({short_names}), напр. {example}",
            f"{need}, напр. {example}",
            f"{need} ({short_names}).",
            f"{need}.",
        )
    if code is ErrorCode.UNKNOWN_METER:
        return _with_format(account, f"{head} нет счётчика «{safe(rejection.detail, WORD_ECHO)}».")
    if code is ErrorCode.AMBIGUOUS_LABEL:
        word = safe(rejection.detail, WORD_ECHO)
        unclear = _with_format(account, f"{head} неясно, к какому счётчику «{word}».")
        return _which_register(head, rejection, unclear) if rejection.choices else unclear
    register, value = rejection.register, rejection.value
    assert register is not None and value is not None
    label = register_label(register.service, register.zone)
    if code is ErrorCode.TOO_MANY_DIGITS:
        cap = register.capacity
        too_big = f"{head} {label} {_value(value)} не помещается в счётчик {cap}"
        return _fit(
            f"{too_big}: до {cap.integer_digits} цифр до запятой и {cap.fraction_digits} после.",
            f"{too_big}.",
        )
    if code is ErrorCode.VERIFICATION_EXPIRED:
        return _verification_expired(head, register)
    if code is ErrorCode.BELOW_PREVIOUS:
        assert rejection.limit is not None
        below = f"{head} {label} {_value(value)} меньше прежнего {_value(rejection.limit)}."
        return _fit(f"{below} Проверьте показание и отправьте снова.", below)
    if code is ErrorCode.JUMP_TOO_LARGE:
        assert rejection.limit is not None
        jump = f"{head} расход {label} больше допустимых {_value(rejection.limit)}."
        return _fit(
            f"{jump} Проверьте показание или обратитесь к поставщику.",
            f"{jump} Проверьте показание.",
            jump,
        )
    raise ValueError(f"no reply text for {code}")


# Service words the sender wrote that read better in capitals when echoed: «ЭЭ 12100».
_ABBREVIATIONS = frozenset({"ээ", "э/э", "гвс", "хвс"})


def _which_register(head: str, rejection: Rejection, unclear: str) -> str:
    """A service word before one value of a service with two registers (``ЭЭ 12100`` on a
    day/night meter): which register it is for, asked with the value and an example of
    each answer, e.g. ``ЛС 1234567890: «ЭЭ 12100» — день или ночь? Напишите, например:
    день 12100 или ночь 12100.`` Registers without distinct zones cannot be asked for by
    name: then ``unclear`` (the generic text)."""
    registers = rejection.choices
    zones = [r.zone for r in registers]
    if Zone.SINGLE in zones or len(set(zones)) != len(zones) or rejection.choice_value is None:
        return unclear
    word = safe(rejection.detail, WORD_ECHO)
    word = word.upper() if word in _ABBREVIATIONS else word
    value = _value(rejection.choice_value)
    asked = _either([_ZONE_LABEL[z] for z in zones])
    said = f"{head} «{word} {value}» — {asked}?"
    full = _either([f"{register_label(r.service, r.zone)} {value}" for r in registers])
    short = _either([f"{short_label(r.service, r.zone)} {value}" for r in registers])
    return _fit(
        f"{said} Напишите, например: {full}.",
        f"{said} Напишите, напр.: {short}.",
        said,
        unclear,
    )


def _either(options: Sequence[str]) -> str:
    """``a или b``; ``a, b или c``."""
    return " или ".join([", ".join(options[:-1]), options[-1]]) if len(options) > 1 else options[0]


def _verification_expired(head: str, register: Register) -> str:
    until = register.verified_until.strftime("%d.%m.%Y") if register.verified_until else ""

    def expired(meter: str) -> str:
        return f"{head} срок поверки счётчика {meter} истёк {until}"

    meter = safe(register.meter, METER_ECHO)
    return _fit(
        f"{expired(meter)}. Показания не приняты, обратитесь к поставщику.",
        f"{expired(meter)}, показания не приняты.",
        f"{expired(safe(meter, SHORT_METER_ECHO))}, показания не приняты.",
    )


def unparseable(account: Account, problem: str) -> str:
    """A parse error for a known account: the problem and this account's own format."""
    said = safe(problem, PROBLEM_ECHO) or "не удалось прочитать показания"
    return _with_format(account, f"ЛС {_account(account.number)}: {said[0].lower()}{said[1:]}.")


def _with_format(account: Account, text: str) -> str:
    """``text`` followed by this account's format with its register names, with short
    names, without them, or alone: the first that fits."""
    registers = account.ordered_registers
    names = " ".join(register_label(r.service, r.zone) for r in registers)
    short_names = " ".join(short_label(r.service, r.zone) for r in registers)
    example = f"{text} Формат: {account_format(account)}"
    return _fit(f"{example} ({names})", f"{example} ({short_names})", example, text)


def last_readings(account: Account, tariffs: Sequence[Tariff], today: date) -> str:
    """The answer to ``ПОСЛЕДНИЕ``: each register's last reading and date, and the tariffs
    in force today (one price when all registers share it), and the normative charge.
    What does not fit is left off: the normative, the tariffs, then the dates (with short
    labels), and at last the registers that do not fit are shown as "…"."""
    acc = _account(account.number)
    dated, undated = [], []
    prices: dict[str, Decimal] = {}
    for register in account.ordered_registers:
        label = register_label(register.service, register.zone)
        short = short_label(register.service, register.zone)
        previous = register.previous
        if previous is None:
            dated.append((f"{label} —", f"{short} —"))
            undated.append(f"{short} —")
        else:
            value = number(previous.value)
            on = f"({previous.taken_on:%d.%m.%y})"
            dated.append((f"{label} {value} {on}", f"{short} {value} {on}"))
            undated.append(f"{short} {_value(previous.value)}")
        tariff = tariff_in_force(tariffs, register.service, register.zone, today)
        if tariff is not None:
            prices[label] = tariff.price
    text = f"ЛС {acc}: {', '.join(long for long, _ in dated)}."
    candidates = []
    if len(set(prices.values())) == 1:
        priced = f"{text} Тариф {money(next(iter(prices.values())))}."
    elif prices:
        listed = ", ".join(f"{label} {_price(p)}" for label, p in prices.items())
        priced = f"{text} Тарифы ₽: {listed}."
    else:
        priced = text
    services = [r.service for r in account.ordered_registers]
    normative = normative_charge(services, account.residents, tariffs, today)
    if normative is not None:
        candidates.append(f"{priced} Без показаний по нормативу {money(normative)}.")
    candidates += [
        priced,
        text,
        f"ЛС {acc}: {', '.join(short for _, short in dated)}.",
        _as_many_as_fit(f"ЛС {acc}: ", undated),
    ]
    return _fit(*candidates)


def _as_many_as_fit(prefix: str, items: Sequence[str]) -> str:
    """``prefix`` and the items that fit, then "…" for the rest (bounded items only)."""
    shown: list[str] = []
    for index, item in enumerate(items):
        end = "." if index == len(items) - 1 else ", …"
        if _units(prefix + ", ".join([*shown, item]) + end) > SMS_LIMIT:
            return prefix + ", ".join([*shown, "…"])
        shown.append(item)
    return prefix + ", ".join(shown) + "."


def _price(value: Decimal) -> str:
    return f"{value:.2f}".replace(".", ",")


def unknown_account(number_: str) -> str:
    """The number the sender wrote (shortened when longer than any account) and the format."""
    return _fit(
        f"ЛС {_account(number_)} не найден. Проверьте номер в квитанции. "
        f"Формат: ЛС и показания, напр. {FORMAT_EXAMPLE}"
    )


INTERNAL_ERROR = "Техническая ошибка, показания не приняты. Попробуйте позже."


def _plural(count: int) -> str:
    if count % 10 == 1 and count % 100 != 11:
        return "показание"
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return "показания"
    return "показаний"


def not_authorized(account: str, channel: str) -> str:
    """The sender may not act on this account: how to get access on that channel."""
    head = f"ЛС {_account(account)}: нет доступа к этому ЛС."
    if channel == "email":
        how = (
            "Показания по нему передаёт старший по его дому; "
            "чтобы добавить дом, обратитесь к поставщику."
        )
    elif channel == "telegram":
        how = "Сначала привяжите его командой /add."
    else:
        how = "Сначала привяжите ЛС к этому каналу."
    return _fit(f"{head} {how}", head)


def account_required(accounts: Sequence[str]) -> str:
    """The number was left out and the phone belongs to several accounts: name them
    (as many as fit) and ask for the number."""
    shown = [_account(a) for a in accounts[:10]]
    ask = f"Укажите номер ЛС перед показаниями, напр. {shown[0]} 12345."
    head = "С вашего номера зарегистрированы ЛС"
    listed = [
        f"{head} {', '.join(shown[:k])}{'.' if k == len(accounts) else ' и др.'} {ask}"
        for k in range(len(shown), 0, -1)
    ]
    return _fit(*listed, ask)


# СТОП / СТАРТ (one SMS segment each).
STOPPED = (
    "Уведомления и напоминания отключены. Ответы на ваши показания будут приходить. Включить: СТАРТ"
)
STARTED = "Уведомления и напоминания снова включены. Отключить: СТОП"
