"""The Twilio webhook's own fast paths hold to the twilio library's answers: the TwiML
document is byte for byte what ``MessagingResponse`` writes, and a signature is accepted
exactly when ``RequestValidator.validate`` accepts it."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from channels.sms_twilio import _NOT_XML, _signature, _signed, twiml

TOKEN = "test-auth-token"
validator = RequestValidator(TOKEN)


def library_twiml(reply: str | None) -> str:
    response = MessagingResponse()
    if reply:
        response.message(_NOT_XML.sub("", reply))
    return str(response)


@given(st.text() | st.none())
def test_twiml_is_what_the_library_writes(reply: str | None) -> None:
    assert twiml(reply) == library_twiml(reply)


def test_twiml_of_replies_with_markup_and_quotes() -> None:
    for reply in ("", None, "a < b & c > \"d\" 'e'", "Принято: 1 234,50 ₽\nспасибо", "]]>"):
        assert twiml(reply) == library_twiml(reply)


forms = st.dictionaries(
    st.sampled_from(["MessageSid", "From", "To", "Body", "AccountSid", "NumMedia"]),
    st.text(max_size=40),
)
urls = st.sampled_from(
    [
        "https://gateway.example.org/sms/twilio",
        "https://gateway.example.org:443/sms/twilio",
        "http://127.0.0.1:8080/sms/twilio",
        "https://gateway.example.org/sms/twilio?rc=3&rp=all",
    ]
)


@given(urls, urls, forms, st.booleans())
def test_a_signature_is_accepted_exactly_when_the_library_accepts_it(
    signed_url: str, requested_url: str, form: dict[str, str], tamper: bool
) -> None:
    signature = validator.compute_signature(signed_url, form)
    if tamper:
        signature = re.sub("^.", lambda m: "A" if m.group() != "A" else "B", signature)
    expected = validator.validate(requested_url, form, signature)
    assert _signed(validator, requested_url, form, signature) == expected


@given(urls, forms)
def test_the_signature_is_the_one_the_library_computes(url: str, form: dict[str, str]) -> None:
    assert _signature(validator.token, url, form) == validator.compute_signature(url, form)


def test_the_signed_url_with_or_without_its_port_is_accepted_as_the_library_does() -> None:
    form = {"Body": "1234567890 12345", "From": "+79120000001"}
    signature = validator.compute_signature("https://gateway.example.org:443/sms/twilio", form)

    assert _signed(validator, "https://gateway.example.org/sms/twilio", form, signature)
    assert not _signed(validator, "https://gateway.example.org/sms/other", form, signature)
    assert not _signed(validator, "https://gateway.example.org/sms/twilio", form, "")
    assert not _signed(validator, "https://gateway.example.org/sms/twilio", form, "Ωmega")
