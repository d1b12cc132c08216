"""gateway.renderers.sms: an outcome's typed reason worded as today's SMS texts (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import renderers, replies
from gateway.domain.errors import ErrorCode
from gateway.domain.model import Service, Tariff, Zone
from gateway.domain.outcome import (
    AccountRequired,
    Charge,
    ChargeLine,
    Confirmed,
    Failed,
    HeldForReview,
    LastReadings,
    NeedsHelp,
    NotAuthorized,
    Outcome,
    OutsideWindow,
    ReadingLine,
    Reason,
    Refused,
    Status,
    Unanswered,
    UnknownAccount,
    Unreadable,
)
from gateway.domain.periods import Window
from gateway.domain.rules import Rejection
from parsers import HELP_TEXT
from tests.unit.test_replies import account_of

D = Decimal
TODAY = date(2026, 11, 20)
ACCOUNT = account_of((Service.ELECTRICITY, Zone.DAY), (Service.ELECTRICITY, Zone.NIGHT))
READINGS = (
    ReadingLine("517480", "electricity", "day", D(12345), D(12000), D(345)),
    ReadingLine("517480", "electricity", "night", D(6789), D(6500), D(289)),
)
CHARGE = Charge(
    (
        ChargeLine("517480", "day", D(345), D("6.80"), D("2346.00")),
        ChargeLine("517480", "night", D(289), D("3.45"), D("997.05")),
    ),
    D("100.00"),
    D("3443.05"),
)


def outcome(reason: Reason, **kw: object) -> Outcome:
    return Outcome(Status.REJECTED, "1234567890", None, reason=reason, **kw)  # type: ignore[arg-type]


def test_a_confirmation_is_worded_with_the_outcomes_final_charge() -> None:
    confirmed = outcome(Confirmed("1234567890"), readings=READINGS, charge=CHARGE)

    assert renderers.sms(confirmed) == (
        "Принято, ЛС 1234567890: день 12345, ночь 6789. "
        "Предварительно к оплате 3443,05 ₽ (с долгом 100,00 ₽)."
    )


def test_a_correction_outside_the_window_says_so_and_names_the_period() -> None:
    reason = Confirmed("1234567890", corrected=True, period="2026-12")
    text = renderers.sms(outcome(reason, readings=READINGS, charge=CHARGE))

    assert text is not None and text.startswith("Исправлено за 12.2026, ЛС 1234567890:")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (HeldForReview("1234567890"), replies.held_for_review("1234567890")),
        (UnknownAccount("99"), replies.unknown_account("99")),
        (
            OutsideWindow("1234567890", Window(15, 25), date(2026, 12, 15)),
            replies.outside_window("1234567890", Window(15, 25), date(2026, 12, 15)),
        ),
        (
            Refused(ACCOUNT, Rejection(ErrorCode.VALUE_COUNT, limit=D(2)), TODAY),
            replies.rejected(ACCOUNT, Rejection(ErrorCode.VALUE_COUNT, limit=D(2)), TODAY),
        ),
        (NeedsHelp(), HELP_TEXT),
        (Unanswered(), None),
        (Failed(), replies.INTERNAL_ERROR),
        (
            LastReadings(ACCOUNT, (Tariff(Service.ELECTRICITY, Zone.DAY, D(6), TODAY),), TODAY),
            replies.last_readings(
                ACCOUNT, (Tariff(Service.ELECTRICITY, Zone.DAY, D(6), TODAY),), TODAY
            ),
        ),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str | None) else "",
)
def test_each_reason_is_worded_by_its_reply_builder(reason: Reason, expected: str | None) -> None:
    assert renderers.sms(outcome(reason)) == expected


def test_a_parse_problem_of_a_known_account_shows_that_accounts_format() -> None:
    problem = "Непонятное слово «абв». Формат: ЛС показание, напр. 1234567890 12345"
    unreadable = Unreadable(problem, ACCOUNT, kind="unknown_word", token="абв", position=11)

    assert renderers.sms(outcome(unreadable)) == (
        "ЛС 1234567890: непонятное слово «абв». Формат: 1234567890 12345 6789 (день ночь)"
    )


def test_a_parse_problem_without_an_account_is_the_parsers_text_made_safe() -> None:
    assert renderers.sms(outcome(Unreadable("Плохо\x00 «x»"))) == "Плохо «x»"


def test_an_outcome_stored_earlier_keeps_its_reply() -> None:
    stored = Outcome(Status.ACCEPTED, "1234567890", "the reply sent then")

    assert renderers.sms(stored) == "the reply sent then"


def test_not_authorized_and_account_required_are_worded_by_their_builders() -> None:
    refused = outcome(NotAuthorized("0012345678", "email"))
    required = outcome(AccountRequired(("1234567890", "1234567892")))

    assert renderers.sms(refused) == replies.not_authorized("0012345678", "email")
    assert renderers.sms(required) == replies.account_required(["1234567890", "1234567892"])


@given(
    accounts=st.lists(st.text(min_size=1, max_size=5000), min_size=1, max_size=40),
    channel=st.sampled_from(["email", "telegram", "sms"]),
)
def test_access_replies_fit_two_segments_whatever_the_accounts(
    accounts: list[str], channel: str
) -> None:
    for text in (
        replies.account_required(accounts),
        replies.not_authorized(accounts[0], channel),
    ):
        assert len(text) <= replies.SMS_LIMIT
        assert not any(ord(c) < 32 for c in text)


def test_a_parse_problem_is_worded_from_its_kind_and_token_not_from_the_sentence() -> None:
    """The parser's own sentence is not cut apart: a renderer words the data."""
    unreadable = Unreadable("any wording", ACCOUNT, kind="bad_number", position=16)

    assert renderers.sms(outcome(unreadable)) == (
        "ЛС 1234567890: число записано неверно. Формат: 1234567890 12345 6789 (день ночь)"
    )


# ----- chat ---------------------------------------------------------------------------


def test_the_chat_confirmation_lists_each_register_with_its_amount_and_the_total() -> None:
    confirmed = Outcome(
        Status.ACCEPTED,
        "1234567890",
        None,
        readings=READINGS,
        charge=CHARGE,
        reason=Confirmed("1234567890", corrected=True, period="2026-12"),
    )

    assert renderers.chat(confirmed) == (
        "Исправлено за 12.2026, ЛС 1234567890:\n"
        "• день (счётчик 517480): 12000 → 12345, расход 345 × 6,80 ₽ = 2346,00 ₽\n"
        "• ночь (счётчик 517480): 6500 → 6789, расход 289 × 3,45 ₽ = 997,05 ₽\n"
        "Долг: 100,00 ₽\n"
        "Итого к оплате (предварительно): 3443,05 ₽"
    )


def test_the_chat_tariff_sheet_adds_the_normative_charge_without_readings() -> None:
    with_residents = replace(ACCOUNT, residents=2)
    tariffs = (
        Tariff(Service.ELECTRICITY, Zone.DAY, D("6.80"), TODAY, D(100)),
        Tariff(Service.ELECTRICITY, Zone.NIGHT, D("3.45"), TODAY),
    )

    sheet = renderers.chat(outcome(LastReadings(with_residents, tariffs, TODAY)))

    assert sheet is not None
    assert sheet.splitlines()[-1] == "Без показаний по нормативу: 1360,00 ₽ в месяц"  # 2×100×6,80
    assert "тариф 6,80 ₽" in sheet and "тариф 3,45 ₽" in sheet


def test_a_chat_reply_never_exceeds_telegrams_limit() -> None:
    huge = Unreadable("x" * 10_000, None, "unparseable", None, None)

    reply = renderers.chat(outcome(huge))

    assert reply is not None and len(reply) <= renderers.CHAT_LIMIT
