"""gateway.replies (the Russian texts senders receive) and mask_sender (pure)."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from gateway import replies
from gateway.domain.errors import ErrorCode
from gateway.domain.model import Account, Capacity, PreviousReading, Register, Service, Zone
from gateway.domain.outcome import Charge, ReadingLine
from gateway.domain.privacy import mask_sender
from gateway.domain.rules import Rejection
from parsers import ParseError, parse_submission

D = Decimal
TODAY = date(2026, 3, 20)
SMS_LIMIT = 134

KINDS = [(s, z) for s in Service for z in Zone]
# Every account shape with one or two registers.
LAYOUTS = [(k,) for k in KINDS] + list(itertools.combinations_with_replacement(KINDS, 2))

WORST_ACCOUNT = "123456789012"  # 12 digits, the longest account
WORST_METER = "12345678901234567890"  # a 20-character meter serial
WORST_VALUE = D("999999.999")  # 6 integer + 3 fraction digits
WORST_DEBT = D("9999999.99")
WORST_TOTAL = D("99999999.99")


def register(
    service: Service = Service.ELECTRICITY,
    zone: Zone = Zone.SINGLE,
    *,
    id: int = 1,
    meter: str = "517480",
    account: str = "1234567890",
    capacity: str = "6.3",
    verified_until: date | None = None,
) -> Register:
    return Register(
        id=id,
        account=account,
        meter=meter,
        service=service,
        zone=zone,
        capacity=Capacity.parse(capacity),
        verified_until=verified_until,
        previous=PreviousReading(D(0), date(2026, 2, 20)),
    )


def account_of(*kinds: tuple[Service, Zone], number: str = "1234567890", **kw: object) -> Account:
    registers = tuple(
        register(s, z, id=i, account=number, **kw)  # type: ignore[arg-type]
        for i, (s, z) in enumerate(kinds, start=1)
    )
    return Account(number, D(0), registers)


def reading(service: Service, zone: Zone, value: Decimal, meter: str = "517480") -> ReadingLine:
    return ReadingLine(meter, service.value, zone.value, value, None, D(0))


ELECTRICITY_DAY_NIGHT = ((Service.ELECTRICITY, Zone.DAY), (Service.ELECTRICITY, Zone.NIGHT))


# --- exact texts ----------------------------------------------------------------------------


def test_accepted_reply_lists_values_total_and_debt() -> None:
    readings = [
        reading(Service.ELECTRICITY, Zone.DAY, D(12345)),
        reading(Service.ELECTRICITY, Zone.NIGHT, D(6789)),
    ]
    text = replies.accepted("1234567890", readings, Charge((), D("100.00"), D("2318.35")))
    assert text == (
        "Принято, ЛС 1234567890: день 12345, ночь 6789. "
        "Предварительно к оплате 2318,35 ₽ (с долгом 100,00 ₽)."
    )


@pytest.mark.parametrize("debt", [D("0.00"), D("-250.00")])
def test_accepted_reply_without_debt_does_not_mention_debt(debt: Decimal) -> None:
    readings = [reading(Service.HOT_WATER, Zone.SINGLE, D("123.45"))]
    text = replies.accepted("1234567890", readings, Charge((), debt, D("183.83")))
    assert text == "Принято, ЛС 1234567890: ГВС 123,45. Предварительно к оплате 183,83 ₽."


def test_accepted_reply_says_the_charge_is_preliminary() -> None:
    readings = [reading(Service.ELECTRICITY, Zone.SINGLE, D(1))]
    text = replies.accepted("1", readings, Charge((), D(0), D("6.43")))
    assert "Предварительно к оплате" in text


def test_value_count_reply_names_registers_and_shows_the_format() -> None:
    account = account_of(*ELECTRICITY_DAY_NIGHT)
    rejection = Rejection(ErrorCode.VALUE_COUNT, limit=D(2))
    assert replies.rejected(account, rejection, TODAY) == (
        "ЛС 1234567890: нужно 2 показания (день, ночь), напр. 1234567890 12345 6789"
    )


def test_value_count_reply_names_registers_in_message_order() -> None:
    account = account_of(
        (Service.COLD_WATER, Zone.BATH),
        (Service.HOT_WATER, Zone.KITCHEN),
        (Service.ELECTRICITY, Zone.SINGLE),
    )
    rejection = Rejection(ErrorCode.VALUE_COUNT, limit=D(3))
    assert replies.rejected(account, rejection, TODAY) == (
        "ЛС 1234567890: нужно 3 показания (ЭЭ, ГВС кухня, ХВС ванна), "
        "напр. 1234567890 12345 6789 123"
    )


def test_value_count_reply_for_one_register_uses_the_singular() -> None:
    account = account_of((Service.ELECTRICITY, Zone.SINGLE), number="0012345678")
    rejection = Rejection(ErrorCode.VALUE_COUNT, limit=D(1))
    assert replies.rejected(account, rejection, TODAY) == (
        "ЛС 0012345678: нужно 1 показание (ЭЭ), напр. 0012345678 12345"
    )


def test_value_count_reply_for_five_registers_uses_the_genitive_plural() -> None:
    account = account_of(
        (Service.ELECTRICITY, Zone.DAY),
        (Service.ELECTRICITY, Zone.NIGHT),
        (Service.HOT_WATER, Zone.KITCHEN),
        (Service.HOT_WATER, Zone.BATH),
        (Service.COLD_WATER, Zone.SINGLE),
    )
    text = replies.rejected(account, Rejection(ErrorCode.VALUE_COUNT, limit=D(5)), TODAY)
    assert text.startswith("ЛС 1234567890: нужно 5 показаний (")
    assert text.endswith("напр. 1234567890 12345 6789 123 45 67")


def test_too_many_digits_reply_shows_the_capacity() -> None:
    account = account_of((Service.ELECTRICITY, Zone.SINGLE))
    r = account.registers[0]
    text = replies.rejected(account, Rejection(ErrorCode.TOO_MANY_DIGITS, r, D(1234567)), TODAY)
    assert text == (
        "ЛС 1234567890: ЭЭ 1234567 не помещается в счётчик 6.3: до 6 цифр до запятой и 3 после."
    )


def test_verification_expired_reply_names_the_meter_and_date() -> None:
    account = account_of((Service.HOT_WATER, Zone.SINGLE), verified_until=date(2026, 3, 1))
    r = account.registers[0]
    rejection = Rejection(ErrorCode.VERIFICATION_EXPIRED, r, D(150))
    assert replies.rejected(account, rejection, TODAY) == (
        "ЛС 1234567890: срок поверки счётчика 517480 истёк 01.03.2026. "
        "Показания не приняты, обратитесь к поставщику."
    )


def test_below_previous_reply_shows_value_and_previous_with_decimal_comma() -> None:
    account = account_of(*ELECTRICITY_DAY_NIGHT)
    r = account.registers[0]
    rejection = Rejection(ErrorCode.BELOW_PREVIOUS, r, D("12340.5"), D("12345.25"))
    assert replies.rejected(account, rejection, TODAY) == (
        "ЛС 1234567890: день 12340,5 меньше прежнего 12345,25. "
        "Проверьте показание и отправьте снова."
    )


def test_jump_too_large_reply_shows_the_limit() -> None:
    account = account_of((Service.COLD_WATER, Zone.KITCHEN), (Service.COLD_WATER, Zone.BATH))
    r = account.registers[1]
    rejection = Rejection(ErrorCode.JUMP_TOO_LARGE, r, D(500), D(30))
    assert replies.rejected(account, rejection, TODAY) == (
        "ЛС 1234567890: расход ХВС ванна больше допустимых 30. "
        "Проверьте показание или обратитесь к поставщику."
    )


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.UNPARSEABLE,
        ErrorCode.UNKNOWN_ACCOUNT,
        ErrorCode.OUTSIDE_WINDOW,
        ErrorCode.NOT_AUTHORIZED,
        ErrorCode.RATE_LIMITED,
        ErrorCode.INTERNAL,
    ],
)
def test_rejected_has_no_text_for_codes_handled_elsewhere(code: ErrorCode) -> None:
    account = account_of((Service.ELECTRICITY, Zone.SINGLE))
    rejection = Rejection(code, account.registers[0], D(1), D(1))
    with pytest.raises(ValueError, match=code.value):
        replies.rejected(account, rejection, TODAY)


def test_unknown_account_reply_repeats_the_number_and_the_format() -> None:
    assert replies.unknown_account("9999999999") == (
        "ЛС 9999999999 не найден. Проверьте номер в квитанции. "
        "Формат: ЛС и показания, напр. 1234567890 12345 6789"
    )


@pytest.mark.parametrize(
    ("service", "zone", "label"),
    [
        (Service.ELECTRICITY, Zone.SINGLE, "ЭЭ"),
        (Service.ELECTRICITY, Zone.DAY, "день"),
        (Service.ELECTRICITY, Zone.NIGHT, "ночь"),
        (Service.HOT_WATER, Zone.SINGLE, "ГВС"),
        (Service.HOT_WATER, Zone.KITCHEN, "ГВС кухня"),
        (Service.HOT_WATER, Zone.BATH, "ГВС ванна"),
        (Service.COLD_WATER, Zone.SINGLE, "ХВС"),
        (Service.COLD_WATER, Zone.KITCHEN, "ХВС кухня"),
        (Service.COLD_WATER, Zone.BATH, "ХВС ванна"),
    ],
)
def test_register_label(service: Service, zone: Zone, label: str) -> None:
    assert replies.register_label(service, zone) == label


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("12345"), "12345"),
        (D("123.45"), "123,45"),
        (D("5778.0"), "5778,0"),
        (D("0.001"), "0,001"),
        (D("1E+3"), "1000"),
        (D("999999.999"), "999999,999"),
    ],
)
def test_number_uses_a_decimal_comma_and_no_exponent(value: Decimal, text: str) -> None:
    assert replies.number(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("2318.35"), "2318,35 ₽"),
        (D("100"), "100,00 ₽"),
        (D("0"), "0,00 ₽"),
        (D("183.8"), "183,80 ₽"),
        (D("9999999.99"), "9999999,99 ₽"),
    ],
)
def test_money_shows_kopecks_with_a_decimal_comma(value: Decimal, text: str) -> None:
    assert replies.money(value) == text


@pytest.mark.parametrize(
    ("count", "word"),
    [
        (1, "показание"),
        (2, "показания"),
        (3, "показания"),
        (4, "показания"),
        (5, "показаний"),
        (6, "показаний"),
        (10, "показаний"),
        (11, "показаний"),
        (12, "показаний"),
        (14, "показаний"),
        (21, "показание"),
        (22, "показания"),
        (25, "показаний"),
        (101, "показание"),
        (111, "показаний"),
        (112, "показаний"),
        (122, "показания"),
    ],
)
def test_russian_plural_of_reading(count: int, word: str) -> None:
    assert replies._plural(count) == word


@pytest.mark.parametrize(
    ("count", "example"),
    [
        (1, "1234567890 12345"),
        (2, "1234567890 12345 6789"),
        (4, "1234567890 12345 6789 123 45"),
    ],
)
def test_account_format_has_one_example_value_per_register(count: int, example: str) -> None:
    account = account_of(*[(Service.ELECTRICITY, Zone.SINGLE)] * count)
    assert replies.account_format(account) == example


# --- every reply fits two SMS segments ---------------------------------------------------


def _over(texts: list[str]) -> list[tuple[int, str]]:
    return [(len(t), t) for t in texts if len(t) > SMS_LIMIT]


def test_sms_limit_constant_is_two_ucs2_segments() -> None:
    assert replies.SMS_LIMIT == SMS_LIMIT


def test_worst_case_accepted_reply_fits_two_sms_segments() -> None:
    texts = []
    for layout in LAYOUTS:
        readings = [reading(s, z, WORST_VALUE, WORST_METER) for s, z in layout]
        charge = Charge((), WORST_DEBT, WORST_TOTAL)
        texts += [
            replies.accepted(WORST_ACCOUNT, readings, charge),
            replies.accepted(WORST_ACCOUNT, readings, charge, corrected=True, period="2026-12"),
            replies.review_approved(WORST_ACCOUNT, readings, charge),
        ]
    assert _over(texts) == []


def test_review_rejection_keeps_a_short_reason_whole() -> None:
    assert replies.review_rejected("1234567890", " Сфотографируйте счётчик. ") == (
        "ЛС 1234567890: показания не приняты. Сфотографируйте счётчик."
    )


@settings(max_examples=300, deadline=None)
@given(
    layout=st.sampled_from(LAYOUTS),
    account=st.from_regex(r"[0-9]{1,12}", fullmatch=True),
    values=st.lists(
        st.decimals(min_value=0, max_value=WORST_VALUE, places=3), min_size=2, max_size=2
    ),
    debt=st.decimals(min_value=-WORST_DEBT, max_value=WORST_DEBT, places=2),
    total=st.decimals(min_value=0, max_value=WORST_TOTAL, places=2),
)
def test_any_accepted_reply_for_two_registers_fits_two_sms_segments(
    layout: tuple[tuple[Service, Zone], ...],
    account: str,
    values: list[Decimal],
    debt: Decimal,
    total: Decimal,
) -> None:
    readings = [reading(s, z, v) for (s, z), v in zip(layout, values, strict=False)]
    text = replies.accepted(account, readings, Charge((), debt, total))
    assert len(text) <= SMS_LIMIT, text


def _worst_rejections(layout: tuple[tuple[Service, Zone], ...], code: ErrorCode) -> list[str]:
    """The longest reply of ``code`` for an account of ``layout``, for each register."""
    texts = []
    for capacity, too_big in [
        ("5.2", D("999999.999")),
        ("6.3", D("9999999.9999")),
        ("12.6", D("9999999999999.9999999")),
    ]:
        account = account_of(
            *layout,
            number=WORST_ACCOUNT,
            meter=WORST_METER,
            capacity=capacity,
            verified_until=date(2025, 12, 31),
        )
        for r in account.registers:
            rejection = {
                ErrorCode.VALUE_COUNT: Rejection(code, limit=D(len(layout))),
                ErrorCode.TOO_MANY_DIGITS: Rejection(code, r, too_big),
                ErrorCode.VERIFICATION_EXPIRED: Rejection(code, r, WORST_VALUE),
                ErrorCode.BELOW_PREVIOUS: Rejection(code, r, WORST_VALUE, WORST_VALUE),
                ErrorCode.JUMP_TOO_LARGE: Rejection(code, r, WORST_VALUE, D("99999.999")),
            }[code]
            texts.append(replies.rejected(account, rejection, TODAY))
    return texts


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.VALUE_COUNT,
        ErrorCode.TOO_MANY_DIGITS,
        ErrorCode.VERIFICATION_EXPIRED,
        ErrorCode.BELOW_PREVIOUS,
        ErrorCode.JUMP_TOO_LARGE,
    ],
)
def test_worst_case_rejection_reply_fits_two_sms_segments(code: ErrorCode) -> None:
    texts = [t for layout in LAYOUTS for t in _worst_rejections(layout, code)]
    assert len(texts) == 3 * sum(len(layout) for layout in LAYOUTS)
    assert _over(texts) == []


def test_unknown_account_reply_for_a_12_digit_account_fits_two_sms_segments() -> None:
    assert len(replies.unknown_account(WORST_ACCOUNT)) <= SMS_LIMIT


def test_internal_error_reply_fits_one_sms_segment() -> None:
    assert len(replies.INTERNAL_ERROR) <= 70


@pytest.mark.parametrize("text", ["", "привет"])
def test_parse_error_reply_fits_two_sms_segments(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_submission(text)
    assert len(info.value.message) <= SMS_LIMIT


# --- mask_sender --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "masked"),
    [
        ("+79121234567", "+7912***4567"),
        ("89121234567", "89121***4567"),
        ("name@example.org", "n***@example.org"),
        ("ivan.petrov@mail.ru", "i***@mail.ru"),
        ("@example.org", "***@example.org"),
        ("", "***"),
        ("123", "***"),
        ("123456", "***"),
        ("+7912", "***"),
    ],
)
def test_mask_sender(sender: str, masked: str) -> None:
    assert mask_sender(sender) == masked


@pytest.mark.parametrize(
    "sender",
    [
        "1234567",  # a 7-character sender
        "12345678",
        "123456789",  # a 9-digit Telegram user id
        "1234567890",
        "+79121234567",
    ],
)
def test_mask_sender_never_reveals_every_character(sender: str) -> None:
    """The masked form shows fewer characters than the sender has."""
    masked = mask_sender(sender)
    shown = len(masked.replace("***", ""))
    assert shown < len(sender), masked


@pytest.mark.parametrize(
    ("corrected", "period"), [(True, "2026-12"), (False, "2026-12"), (True, None)]
)
def test_correction_and_next_period_replies_fit_two_segments_in_the_worst_case(
    corrected: bool, period: str | None
) -> None:
    lines = [
        ReadingLine("1", "electricity", "night", Decimal("123456.789"), None, Decimal(0)),
        ReadingLine("2", "cold_water", "bath", Decimal("123456.789"), None, Decimal(0)),
    ]
    big = Decimal("9999999.99")
    text = replies.accepted(
        "123456789012", lines, Charge((), big, big), corrected=corrected, period=period
    )

    assert len(text) <= SMS_LIMIT
    assert text.startswith("Испр" if corrected else "Принято")
    assert ("за 12.2026" in text) is (period is not None)
