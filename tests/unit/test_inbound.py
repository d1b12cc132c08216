"""gateway.domain.inbound (what the intake does to every message first) and the storage's
``fit`` for over-long keys (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.inbound import admit, clean_text, e164
from gateway.domain.model import InboundMessage
from gateway.storage.messages import fit

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "phone"),
    [
        ("+79120000001", "+79120000001"),
        ("+7 912 000-00-01", "+79120000001"),
        ("+7 (912) 000-00-01", "+79120000001"),
        ("89120000001", "+79120000001"),
        ("8 (912) 000 00 01", "+79120000001"),
        ("79120000001", "+79120000001"),
        ("9120000001", "+79120000001"),
        ("0079120000001", "+79120000001"),
        ("+441632960961", "+441632960961"),
        ("4545", "4545"),  # a short number stays
        ("MegaFon", "MegaFon"),  # an alphanumeric sender stays
        ("", ""),
        ("+", "+"),
    ],
)
def test_e164_with_the_russian_country_code(raw: str, phone: str) -> None:
    assert e164(raw) == phone


def test_e164_with_another_country_code_adds_the_plus_only() -> None:
    assert e164("441632960961", "44") == "+441632960961"
    assert e164("89120000001", "44") == "89120000001"


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("1234567890 12345\x00", "1234567890 12345 "),
        ("1234567890\x0012345", "1234567890 12345"),
        ("a\x1bb\x7fc\x85d\x9fe", "a b c d e"),
        ("tab\tand\nlines\r", "tab\tand\nlines\r"),
        ("lone \ud800 surrogate", "lone   surrogate"),
        ("non\ufffechar\uffff", "non char "),
        ("день 12345 ₽ «»", "день 12345 ₽ «»"),
    ],
)
def test_clean_text_turns_controls_into_spaces(text: str, clean: str) -> None:
    assert clean_text(text) == clean


def test_admit_cleans_the_text_sender_and_id_and_writes_sms_senders_in_e164() -> None:
    message = InboundMessage("sms", "8 (912)\x00 000-00-01", "1 2\x00", NOW, "SM\x001 ")

    assert admit(message) == InboundMessage("sms", "+79120000001", "1 2 ", NOW, "SM1")


def test_admit_leaves_other_channels_senders_as_written_but_clean() -> None:
    message = InboundMessage("email", "Elder@Example.org\x00", "x", NOW, None)

    assert admit(message).sender == "Elder@Example.org"


def test_admit_turns_an_id_of_only_controls_into_none() -> None:
    assert admit(InboundMessage("sms", "", "", NOW, "\x00 \x01")).external_id is None


@given(st.text())
def test_clean_text_leaves_nothing_xml_or_postgresql_refuses(text: str) -> None:
    cleaned = clean_text(text)
    assert len(cleaned) == len(text)
    allowed = [
        c in "\t\n\r"
        or " " <= c <= "\x7e"
        or (c >= "\xa0" and c not in "\ufffe\uffff" and not "\ud800" <= c <= "\udfff")
        for c in cleaned
    ]
    assert all(allowed)
    cleaned.encode("utf-8")


def test_fit_keeps_a_value_within_its_length() -> None:
    assert fit("+79120000001", 254) == "+79120000001"
    assert fit("x" * 254, 254) == "x" * 254
    assert fit("anything", None) == "anything"


def test_fit_cuts_a_long_value_with_a_marker_and_a_digest() -> None:
    cut = fit("9" * 5000, 32)

    assert len(cut) == 32
    assert cut.startswith("9" * 19 + "…")
    assert fit("9" * 5000, 32) == cut  # the same value is always cut the same way
    assert fit("9" * 4999 + "8", 32) != cut  # two values that share a head stay apart
