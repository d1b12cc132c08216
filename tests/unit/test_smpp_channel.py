"""The SMPP channel's small rules (channels/sms_smpp.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from channels.sms_smpp import _address_type, _sender, _window_id, receipt_ids


def test_a_receipt_id_is_tried_in_both_bases() -> None:
    assert receipt_ids("255") == ["255", "ff", "FF"]
    assert receipt_ids("ff") == ["ff", "255"]
    assert receipt_ids("smsc-1") == ["smsc-1"]
    assert receipt_ids("") == [""]


def test_an_smsc_source_becomes_the_intakes_sender() -> None:
    assert _sender("79121234567") == "+79121234567"
    assert _sender("+79121234567") == "+79121234567"
    assert _sender("900") == "900"  # a short code stays as it is
    assert _sender("Beeline") == "Beeline"


def test_the_source_address_type_follows_its_form() -> None:
    assert _address_type("4444") == (3, 0)
    assert _address_type("79121234567") == (1, 1)
    assert _address_type("Vodokanal") == (5, 0)


def test_a_message_is_the_same_within_its_window_and_not_across_senders() -> None:
    at = datetime(2026, 11, 20, 9, 0, 5, tzinfo=UTC)
    same = _window_id("+79120000001", "1234567890 12345", at + timedelta(minutes=5))
    assert _window_id("+79120000001", "1234567890 12345", at) == same
    assert _window_id("+79120000002", "1234567890 12345", at) != same
    assert _window_id("+79120000001", "1234567890 12346", at) != same
    assert _window_id("+79120000001", "1234567890 12345", at + timedelta(minutes=11)) != same
