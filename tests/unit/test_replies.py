"""gateway.replies (the Russian texts senders receive) and mask_sender (pure)."""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, example, given, settings

from gateway import replies
from gateway.domain.errors import ErrorCode
from gateway.domain.model import (
    Account,
    Capacity,
    PreviousReading,
    Register,
    Service,
    Tariff,
    Zone,
)
from gateway.domain.outcome import Charge, ReadingLine
from gateway.domain.periods import Window
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


# --- every echo is safe: one function ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "echo"),
    [
        ("абв", "абв"),
        (None, ""),
        ("  к  ", "к"),
        ("a\x00b\x1bc\x7fd\x9be", "abcde"),  # control characters are dropped
        ("a\tb\r\nc", "a b c"),  # tab, CR and LF are one space
        ("a\x85b\u2028c\u2029d\x1ce", "a b c d e"),  # so are the other line breaks
        ("a\ud800b\udfffc", "abc"),  # lone surrogates
        ("a\ufffeb\uffffc\U0001fffed\ufdd0e", "abcde"),  # noncharacters
        ("\u202eабв\u2066г\u2069", "абвг"),  # bidi overrides and isolates
        ("😀 ₽ «»", "😀 ₽ «»"),
    ],
)
def test_safe_drops_what_xml_and_sms_cannot_carry(text: str | None, echo: str) -> None:
    assert replies.safe(text) == echo


@given(
    text=st.text(
        alphabet=st.one_of(
            st.characters(),  # any code point, surrogates and noncharacters included
            st.sampled_from(" \t\r\n\x85\xa0\u2028\u2029\u202e\u3000\x00\x1c\ufffe"),
        ),
        max_size=60,
    ),
    limit=st.integers(min_value=0, max_value=80),
)
@example(text="ЛС  12   34 ", limit=80)
@example(text="  к  ", limit=80)
@example(text="a\u3000 b", limit=80)
def test_safe_of_a_printable_text_skips_no_cleaning(text: str, limit: int) -> None:
    """safe() takes a short way for printable texts (nearly every echo): it must give
    what dropping and collapsing white space gives for any text."""
    cleaned = replies._SPACED.sub(" ", replies._DROPPED.sub("", text)).strip()
    assert replies.safe(text, limit) == replies._cut(cleaned, limit)


def test_safe_shortens_to_its_bound_with_an_ellipsis() -> None:
    assert replies.safe("9" * 65_000, 32) == "9" * 31 + "…"
    assert replies.safe("9" * 32, 32) == "9" * 32


def test_safe_counts_a_character_beyond_the_bmp_as_two_sms_units() -> None:
    assert replies.safe("😀" * 20, 10) == "😀" * 4 + "…"


def test_safe_by_default_bounds_a_text_sent_as_is_to_two_sms_segments() -> None:
    text = replies.safe("Непонятное слово «а\x00б». " + "Формат… " * 40)
    assert text.startswith("Непонятное слово «аб». ")
    assert len(text) == SMS_LIMIT and text.endswith("…")


# --- the shortest forms -----------------------------------------------------------------------

E, HW, CW = Service.ELECTRICITY, Service.HOT_WATER, Service.COLD_WATER
# The largest account: day and night, hot and cold water in kitchen and bath.
SIX: tuple[tuple[Service, Zone], ...] = (
    (E, Zone.DAY),
    (E, Zone.NIGHT),
    (HW, Zone.KITCHEN),
    (HW, Zone.BATH),
    (CW, Zone.KITCHEN),
    (CW, Zone.BATH),
)
ACCOUNT_32 = "12345678901234567890123456789012"
BIG_DEBT = D("12345678901234.56")  # 14 integer digits


def six_readings(*values: str) -> list[ReadingLine]:
    return [reading(s, z, D(v)) for (s, z), v in zip(SIX, values, strict=True)]


def test_six_register_acceptance_falls_back_to_short_labels() -> None:
    readings = six_readings("12345", "6789", "123", "45", "67", "89")
    text = replies.accepted("1234567890", readings, Charge((), D(100), D("23443.05")))
    assert text == (
        "Принято, ЛС 1234567890: Д 12345, Н 6789, ГВС К 123, ГВС В 45, ХВС К 67, ХВС В 89. "
        "Предв. к оплате 23443,05 ₽ (долг 100,00 ₽)."
    )


def test_six_register_acceptance_with_large_values_and_debt_counts_the_readings() -> None:
    readings = six_readings(*["123456.789"] * 6)
    total = BIG_DEBT + D("99999.99")
    text = replies.accepted(
        ACCOUNT_32, readings, Charge((), BIG_DEBT, total), corrected=True, period="2026-12"
    )
    assert text == (
        f"Испр. за 12.2026, ЛС {ACCOUNT_32}: 6 показаний. "
        "Предв. к оплате 12345679001234,55 ₽ (долг 12345678901234,56 ₽)."
    )


def test_acceptance_with_absurd_money_drops_the_debt_and_shortens_the_total() -> None:
    readings = six_readings(*["9" * 5000] * 6)
    huge = D("9" * 5000 + ".99")
    text = replies.accepted(
        ACCOUNT_32, readings, Charge((), huge, huge), corrected=True, period="2026-12"
    )
    assert text == f"Испр. за 12.2026, ЛС {ACCOUNT_32}: 6 показаний. Предв. к оплате {'9' * 23}…."


def six_account(number: str = ACCOUNT_32, *, meter: str = "517480", value: str = "0") -> Account:
    registers = tuple(
        Register(
            id=i,
            account=number,
            meter=meter,
            service=s,
            zone=z,
            capacity=Capacity.parse("12.6"),
            verified_until=date(2025, 12, 31),
            previous=PreviousReading(D(value), date(2026, 2, 20)),
        )
        for i, (s, z) in enumerate(SIX, start=1)
    )
    return Account(number, D(0), registers, residents=3)


def test_value_count_for_six_registers_and_a_long_account_leaves_off_the_names() -> None:
    text = replies.rejected(six_account(), Rejection(ErrorCode.VALUE_COUNT, limit=D(6)), TODAY)
    assert text == (
        f"ЛС {ACCOUNT_32}: нужно 6 показаний, напр. {ACCOUNT_32} 12345 6789 123 45 67 89"
    )


def test_ambiguous_label_for_six_registers_names_them_shortly() -> None:
    rejection = Rejection(ErrorCode.AMBIGUOUS_LABEL, detail="к")
    assert replies.rejected(six_account("5550000001"), rejection, TODAY) == (
        "ЛС 5550000001: неясно, к какому счётчику «к». "
        "Формат: 5550000001 12345 6789 123 45 67 89 (Д Н ГВС К ГВС В ХВС К ХВС В)"
    )


def test_value_count_for_six_registers_and_a_20_digit_account_names_them_shortly() -> None:
    account = six_account("12345678901234567890")
    text = replies.rejected(account, Rejection(ErrorCode.VALUE_COUNT, limit=D(6)), TODAY)
    assert text == (
        "ЛС 12345678901234567890: нужно 6 показаний (Д, Н, ГВС К, ГВС В, ХВС К, ХВС В), "
        "напр. 12345678901234567890 12345 6789 123 45 67 89"
    )


def test_unknown_meter_for_a_long_account_leaves_off_the_names_and_bounds_the_word() -> None:
    rejection = Rejection(ErrorCode.UNKNOWN_METER, detail="гвс\x00\nкухня-и-ещё-много-букв")
    assert replies.rejected(six_account(), rejection, TODAY) == (
        f"ЛС {ACCOUNT_32}: нет счётчика «гвс кухня-и-ещ…». "
        f"Формат: {ACCOUNT_32} 12345 6789 123 45 67 89"
    )


def test_verification_expired_with_a_64_character_meter_shortens_the_serial() -> None:
    account = six_account(meter="M" * 64)
    rejection = Rejection(ErrorCode.VERIFICATION_EXPIRED, account.registers[0], D(1))
    assert replies.rejected(account, rejection, TODAY) == (
        f"ЛС {ACCOUNT_32}: срок поверки счётчика {'M' * 19}… истёк 31.12.2025, "
        "показания не приняты."
    )


def test_too_many_digits_echoes_at_most_20_characters_of_the_value() -> None:
    account = six_account("1234567890")
    rejection = Rejection(ErrorCode.TOO_MANY_DIGITS, account.registers[2], D("9" * 5000))
    assert replies.rejected(account, rejection, TODAY) == (
        f"ЛС 1234567890: ГВС кухня {'9' * 19}… не помещается в счётчик 12.6: "
        "до 12 цифр до запятой и 6 после."
    )


def test_below_previous_with_long_values_leaves_off_the_advice() -> None:
    account = six_account()
    value = D("9" * 5000 + ".5")
    rejection = Rejection(ErrorCode.BELOW_PREVIOUS, account.registers[2], value, value)
    assert replies.rejected(account, rejection, TODAY) == (
        f"ЛС {ACCOUNT_32}: ГВС кухня {'9' * 19}… меньше прежнего {'9' * 19}…."
    )


def test_jump_too_large_with_a_long_limit_keeps_the_short_advice() -> None:
    account = six_account()
    rejection = Rejection(ErrorCode.JUMP_TOO_LARGE, account.registers[5], D(1), D("9" * 5000))
    assert replies.rejected(account, rejection, TODAY) == (
        f"ЛС {ACCOUNT_32}: расход ХВС ванна больше допустимых {'9' * 19}…. Проверьте показание."
    )


def test_unparseable_drops_control_characters_from_the_problem() -> None:
    account = account_of(*ELECTRICITY_DAY_NIGHT)
    assert replies.unparseable(account, "Непонятное\tслово «аб\x00\x1bв»\r\n") == (
        "ЛС 1234567890: непонятное слово «абв». Формат: 1234567890 12345 6789 (день ночь)"
    )


def test_unparseable_with_an_empty_problem_says_the_readings_were_not_read() -> None:
    account = account_of(*ELECTRICITY_DAY_NIGHT)
    assert replies.unparseable(account, "") == (
        "ЛС 1234567890: не удалось прочитать показания. Формат: 1234567890 12345 6789 (день ночь)"
    )


def test_unknown_account_of_65000_digits_echoes_the_first_31() -> None:
    assert replies.unknown_account("1" * 65_000) == (
        f"ЛС {'1' * 31}… не найден. Проверьте номер в квитанции. "
        "Формат: ЛС и показания, напр. 1234567890 12345 6789"
    )


def test_review_rejection_reason_is_one_line() -> None:
    text = replies.review_rejected("1234567890", "Нет фото.\r\n\tПришлите\x00 снова.")
    assert text == "ЛС 1234567890: показания не приняты. Нет фото. Пришлите снова."


def test_held_for_review_for_the_longest_account_is_whole() -> None:
    assert replies.held_for_review(ACCOUNT_32) == (
        f"ЛС {ACCOUNT_32}: показания приняты на проверку — расход намного выше обычного. "
        "Сообщим о решении."
    )


SIX_TARIFFS = [Tariff(s, z, D("6.43") + i, date(2020, 1, 1)) for i, (s, z) in enumerate(SIX)]


def test_last_readings_of_six_registers_leave_off_tariffs_then_dates() -> None:
    text = replies.last_readings(six_account("1234567890", value="12345"), SIX_TARIFFS, TODAY)
    assert text == (
        "ЛС 1234567890: Д 12345, Н 12345, ГВС К 12345, ГВС В 12345, ХВС К 12345, ХВС В 12345."
    )


def test_last_readings_that_cannot_all_fit_end_with_an_ellipsis() -> None:
    account = six_account(value="9" * 5000)
    assert replies.last_readings(account, SIX_TARIFFS, TODAY) == (
        f"ЛС {ACCOUNT_32}: Д {'9' * 19}…, Н {'9' * 19}…, ГВС К {'9' * 19}…, …"
    )


# --- every reply of every kind, hostile values ------------------------------------------------

# Characters an echo must never carry through, mixed into arbitrary text.
NASTY = "\x00\x01\x08\t\n\x0b\x0c\r\x1b\x1f\x7f\x85\x9f"  # C0, DEL, C1
NASTY += "\ud800\udfff\ufffe\uffff\U0001fffe\U0010ffff"  # surrogates, noncharacters
NASTY += "\u2028\u202e\u2066😀«»₽"
ECHO_TEXT = st.text(st.one_of(st.characters(), st.sampled_from(NASTY)), max_size=100)
# Long digit strings are built as text: str(int) refuses more than 4,300 digits.
DIGITS = st.integers(1, 5000).map(lambda n: "9" * n)
ECHO = st.one_of(ECHO_TEXT, DIGITS, st.tuples(DIGITS, ECHO_TEXT).map("".join))
ACCOUNTS = st.one_of(st.from_regex(r"[0-9]{1,32}", fullmatch=True), DIGITS, ECHO_TEXT)
VALUES = st.one_of(
    st.decimals(min_value=0, max_value=D("999999999999.999999"), places=6),
    DIGITS.map(D),
    st.tuples(DIGITS, DIGITS).map(lambda t: D(f"{t[0]}.{t[1]}")),
)
MONEY = st.one_of(
    st.decimals(min_value=D("-99999999999999.99"), max_value=D("99999999999999.99"), places=2),
    DIGITS.map(lambda d: D(f"{d}.99")),
)
LAYOUTS_UP_TO_SIX = st.one_of(
    st.just(SIX), st.lists(st.sampled_from(KINDS), min_size=1, max_size=6)
)
XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@st.composite
def hostile_accounts(draw: st.DrawFn) -> Account:
    number = draw(ACCOUNTS)
    registers = tuple(
        Register(
            id=i,
            account=number,
            meter=draw(st.one_of(st.from_regex(r"[0-9A-Z]{1,64}", fullmatch=True), ECHO)),
            service=s,
            zone=z,
            capacity=Capacity.parse(draw(st.sampled_from(["1.0", "5.2", "6.3", "12.6"]))),
            verified_until=draw(st.dates()),
            previous=draw(st.none() | st.builds(PreviousReading, VALUES, st.dates())),
        )
        for i, (s, z) in enumerate(draw(LAYOUTS_UP_TO_SIX), start=1)
    )
    return Account(number, D(0), registers, residents=draw(st.none() | st.integers(1, 20)))


def _confirmation(kind: str) -> Callable[[st.DataObject], tuple[str, str]]:
    def build(data: st.DataObject) -> tuple[str, str]:
        number = data.draw(ACCOUNTS)
        layout = data.draw(LAYOUTS_UP_TO_SIX)
        readings = [reading(s, z, data.draw(VALUES)) for s, z in layout]
        charge = Charge((), data.draw(MONEY), data.draw(MONEY))
        if kind == "review_approved":
            text = replies.review_approved(number, readings, charge)
        else:
            corrected = kind == "corrected"
            period = data.draw(st.from_regex(r"20[0-9]{2}-(0[1-9]|1[0-2])", fullmatch=True))
            period_or_none = period if kind == "next_period" else None
            text = replies.accepted(
                number, readings, charge, corrected=corrected, period=period_or_none
            )
        assert "Предв" in text
        assert replies.safe(replies.money(charge.total), replies.MONEY_ECHO) in text
        return text, number

    return build


def _rejection(code: ErrorCode) -> Callable[[st.DataObject], tuple[str, str]]:
    def build(data: st.DataObject) -> tuple[str, str]:
        account = data.draw(hostile_accounts())
        register_ = data.draw(st.sampled_from(account.registers))
        value, limit = data.draw(VALUES), data.draw(VALUES)
        rejection = {
            ErrorCode.VALUE_COUNT: Rejection(code, limit=D(len(account.registers))),
            ErrorCode.UNKNOWN_METER: Rejection(code, detail=data.draw(ECHO)),
            ErrorCode.AMBIGUOUS_LABEL: Rejection(code, detail=data.draw(ECHO)),
            ErrorCode.TOO_MANY_DIGITS: Rejection(code, register_, value),
            ErrorCode.VERIFICATION_EXPIRED: Rejection(code, register_, value),
            ErrorCode.BELOW_PREVIOUS: Rejection(code, register_, value, limit),
            ErrorCode.JUMP_TOO_LARGE: Rejection(code, register_, value, limit),
        }[code]
        return replies.rejected(account, rejection, TODAY), account.number

    return build


def _held(data: st.DataObject) -> tuple[str, str]:
    number = data.draw(ACCOUNTS)
    return replies.held_for_review(number), number


def _review_rejected(data: st.DataObject) -> tuple[str, str]:
    number = data.draw(ACCOUNTS)
    return replies.review_rejected(number, data.draw(ECHO)), number


def _outside_window(data: st.DataObject) -> tuple[str, str]:
    number = data.draw(ACCOUNTS)
    start = data.draw(st.integers(1, 31))
    window = Window(start, data.draw(st.integers(start, 31)))
    return replies.outside_window(number, window, data.draw(st.dates())), number


def _unparseable(data: st.DataObject) -> tuple[str, str]:
    account = data.draw(hostile_accounts())
    return replies.unparseable(account, data.draw(ECHO)), account.number


def _unknown_account(data: st.DataObject) -> tuple[str, str]:
    number = data.draw(ACCOUNTS)
    return replies.unknown_account(number), number


def _last_readings(data: st.DataObject) -> tuple[str, str]:
    account = data.draw(hostile_accounts())
    tariff = st.builds(
        Tariff,
        st.sampled_from(Service),
        st.sampled_from(Zone),
        st.decimals(min_value=0, max_value=D("999999.99"), places=2),
        st.dates(max_value=TODAY),
        st.none() | st.decimals(min_value=0, max_value=1000, places=2),
    )
    tariffs = data.draw(st.lists(tariff, max_size=8))
    return replies.last_readings(account, tariffs, TODAY), account.number


def _internal_error(data: st.DataObject) -> tuple[str, str | None]:
    return replies.INTERNAL_ERROR, None


REPLY_KINDS: dict[str, Callable[[st.DataObject], tuple[str, str | None]]] = {
    "accepted": _confirmation("accepted"),
    "corrected": _confirmation("corrected"),
    "next_period": _confirmation("next_period"),
    "review_approved": _confirmation("review_approved"),
    "held_for_review": _held,
    "review_rejected": _review_rejected,
    "outside_window": _outside_window,
    **{
        code.value: _rejection(code)
        for code in (
            ErrorCode.VALUE_COUNT,
            ErrorCode.UNKNOWN_METER,
            ErrorCode.AMBIGUOUS_LABEL,
            ErrorCode.TOO_MANY_DIGITS,
            ErrorCode.VERIFICATION_EXPIRED,
            ErrorCode.BELOW_PREVIOUS,
            ErrorCode.JUMP_TOO_LARGE,
        )
    },
    "unparseable": _unparseable,
    "unknown_account": _unknown_account,
    "last_readings": _last_readings,
    "internal_error": _internal_error,
}


def sms_units(text: str) -> int:
    """UTF-16 code units, what an SMS segment counts."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@pytest.mark.parametrize("kind", REPLY_KINDS)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_reply_fits_is_valid_xml_and_names_a_short_account(
    kind: str, data: st.DataObject
) -> None:
    """Hostile echoes: control characters, surrogates, 5,000-digit accounts and values."""
    text, account = REPLY_KINDS[kind](data)

    assert len(text) <= SMS_LIMIT and sms_units(text) <= SMS_LIMIT, text
    assert XML_INVALID.search(text) is None, repr(text)
    assert not [c for c in text if unicodedata.category(c) in ("Cc", "Cs")], repr(text)
    if account is not None and sms_units(account) <= 32:
        assert replies.safe(account) in text, (account, text)


# --- mask_sender --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "masked"),
    [
        ("+79121234567", "+7***4567"),  # the country code's first digit, the last four
        ("89121234567", "***4567"),
        ("+441632960961", "+4***0961"),
        ("12345678", "***78"),  # a short id: its last two
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


# --- a service word before one value of two registers: which one? ---------------------------


def _which_register(account: Account, detail: str, value: str, service: Service) -> Rejection:
    """The rejection matching gives ``ЭЭ 12100`` (``detail``, ``value``) on ``account``."""
    choices = tuple(r for r in account.ordered_registers if r.service is service)
    return Rejection(
        ErrorCode.AMBIGUOUS_LABEL, detail=detail, choices=choices, choice_value=D(value)
    )


def test_a_service_word_before_one_value_asks_day_or_night_with_an_example_of_each() -> None:
    account = account_of(*ELECTRICITY_DAY_NIGHT)
    rejection = _which_register(account, "ээ", "12100", E)
    assert replies.rejected(account, rejection, TODAY) == (
        "ЛС 1234567890: «ЭЭ 12100» — день или ночь? Напишите, например: день 12100 или ночь 12100."
    )


def test_a_water_service_word_asks_kitchen_or_bath_with_the_decimal_comma() -> None:
    account = account_of((HW, Zone.KITCHEN), (HW, Zone.BATH))
    rejection = _which_register(account, "гвс", "12.5", HW)
    assert replies.rejected(account, rejection, TODAY) == (
        "ЛС 1234567890: «ГВС 12,5» — кухня или ванна? "
        "Напишите, например: ГВС кухня 12,5 или ГВС ванна 12,5."
    )


def test_a_service_word_that_is_no_abbreviation_is_echoed_as_written() -> None:
    account = account_of(*ELECTRICITY_DAY_NIGHT)
    text = replies.rejected(account, _which_register(account, "свет", "12100", E), TODAY)
    assert text.startswith("ЛС 1234567890: «свет 12100» — день или ночь?")


def test_the_which_register_question_falls_back_to_short_labels_for_a_long_account() -> None:
    account = six_account(ACCOUNT_32)
    rejection = _which_register(account, "хвс", "999999.999", CW)
    assert replies.rejected(account, rejection, TODAY) == (
        f"ЛС {ACCOUNT_32}: «ХВС 999999,999» — кухня или ванна? "
        "Напишите, напр.: ХВС К 999999,999 или ХВС В 999999,999."
    )


def test_registers_without_distinct_zones_get_the_generic_ambiguous_text() -> None:
    account = account_of((HW, Zone.SINGLE), (HW, Zone.SINGLE))
    rejection = _which_register(account, "гвс", "12", HW)
    assert replies.rejected(account, rejection, TODAY) == replies.rejected(
        account, Rejection(ErrorCode.AMBIGUOUS_LABEL, detail="гвс"), TODAY
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_which_register_question_fits_and_is_valid_for_hostile_inputs(
    data: st.DataObject,
) -> None:
    account = data.draw(hostile_accounts())
    service = data.draw(st.sampled_from([r.service for r in account.registers]))
    choices = tuple(r for r in account.ordered_registers if r.service is service)
    rejection = Rejection(
        ErrorCode.AMBIGUOUS_LABEL,
        detail=data.draw(ECHO),
        choices=choices,
        choice_value=data.draw(VALUES),
    )
    text = replies.rejected(account, rejection, TODAY)

    assert len(text) <= SMS_LIMIT and sms_units(text) <= SMS_LIMIT, text
    assert XML_INVALID.search(text) is None, repr(text)
    assert not [c for c in text if unicodedata.category(c) in ("Cc", "Cs")], repr(text)
    if sms_units(account.number) <= 32:
        assert replies.safe(account.number) in text, (account.number, text)
