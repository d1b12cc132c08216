"""Regressions: inputs that once escaped ParseError, and stored decimals printed plainly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.storage.tables import plain
from parsers import ParseError, parse_message, parse_submission


@pytest.mark.parametrize("text", ["1234567890,12.5.6", "1234567890,1.2.3", "6,1.949.3"])
def test_input_that_trips_lark_match_examples_is_still_a_parse_error(text: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_submission(text)
    assert caught.value.code == "unparseable"


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("13000", "13000"), ("13000.000000", "13000"), ("6.800000", "6.8"), ("0.000", "0")],
)
def test_stored_decimals_come_back_without_exponent_or_trailing_zeros(
    stored: str, shown: str
) -> None:
    assert str(plain(Decimal(stored))) == shown


@pytest.mark.parametrize(
    ("text", "kind", "token"),
    [
        ("1234567890 абв 12345", "unknown_word", "абв"),
        ("1234567890 1.2.3", "bad_number", None),
        ("1234567890", "no_values", None),
        ("привет", "no_digits", None),
        ("1" * 1601, "too_long", None),
    ],
)
def test_a_parse_error_carries_its_kind_and_token_as_data(
    text: str, kind: str, token: str | None
) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(text)
    assert (info.value.kind, info.value.token) == (kind, token)
