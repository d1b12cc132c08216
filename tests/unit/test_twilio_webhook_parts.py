"""The Twilio webhook's own fast paths hold to the libraries' answers: the TwiML document
is byte for byte what ``MessagingResponse`` writes, a signature is accepted exactly when
``RequestValidator.validate`` accepts it, and a form reads as ``parse_qsl`` reads it."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote_plus, urlencode

from hypothesis import example, given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from channels.sms_twilio import _NOT_XML, _parse_form, _signature, _signed, twiml

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


def library_form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


# Raw bodies: the separators and escapes a form is made of, among any characters.
bodies = st.lists(
    st.sampled_from(["&", "=", "+", "%", "%2B", "%D0%9F", "%zz", "%4", "a", "Б", " ", ";"])
    | st.text(max_size=5),
    max_size=25,
).map(lambda parts: "".join(parts).encode("utf-8"))


@given(bodies | st.binary(max_size=60))
@example(b"From=%2B79120000001&Body=8800000000+12345+6789&NumMedia=0")
@example(b"&&a&=b&c=&=&d=e=f&Body=%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82+%2B")
@example(b"\xff\xfe=%FF&x=%E2%82")
def test_a_form_reads_as_parse_qsl_reads_it(body: bytes) -> None:
    assert _parse_form(body) == library_form(body)


@given(forms)
def test_an_encoded_form_reads_back(form: dict[str, str]) -> None:
    for encoded in (urlencode(form), urlencode(form, quote_via=quote_plus, safe="")):
        assert _parse_form(encoded.encode()) == library_form(encoded.encode()) == form
