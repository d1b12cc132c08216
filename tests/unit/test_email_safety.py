"""channels.email_safety: when the gateway may answer a mail, and when its From may be
believed (Authentication-Results of the configured authserv-id only)."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from channels.email_safety import (
    authenticated_sender,
    from_address,
    may_reply,
    parse_authentication_results,
)

MX = "mx.supplier.ru"


def mail(*headers: tuple[str, str], sender: str = "Elder <elder@example.ru>") -> EmailMessage:
    message = EmailMessage()
    if sender:
        message["From"] = sender
    message["To"] = "meters@supplier.ru"
    message["Subject"] = "Показания"
    for name, value in headers:
        message[name] = value
    message.set_content("1234567890 1")
    return message


def two_froms() -> EmailMessage:
    raw = b"From: elder@example.ru\r\nFrom: evil@evil.ru\r\nSubject: x\r\n\r\n1234567890 1\r\n"
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


# --- may_reply -------------------------------------------------------------------------


def test_person_may_be_answered() -> None:
    assert may_reply(mail(), envelope_from="elder@example.ru") == (True, "ok")
    assert may_reply(mail(("Return-Path", "<elder@example.ru>"))) == (True, "ok")
    assert may_reply(mail(("Auto-Submitted", "no")), envelope_from="elder@example.ru")[0]
    assert may_reply(mail(("Precedence", "first-class")), envelope_from="e@example.ru")[0]


@pytest.mark.parametrize(
    ("message", "envelope", "reason"),
    [
        (mail(), "", "bounce: null envelope sender"),
        (mail(), "<>", "bounce: null envelope sender"),
        (mail(("Return-Path", "<elder@example.ru>")), "<>", "bounce: null envelope sender"),
        (mail(("Return-Path", "<>")), None, "bounce: null Return-Path"),
        (mail(), None, "bounce?: no Return-Path and no envelope sender"),
        (mail(("Auto-Submitted", "auto-replied")), "e@x.ru", "auto-submitted: auto-replied"),
        (
            mail(("Auto-Submitted", 'Auto-Generated; owner-email="x@y.ru"')),
            "e@x.ru",
            "auto-submitted: auto-generated",
        ),
        (mail(("Auto-Submitted", "")), "e@x.ru", "auto-submitted: empty"),
        (mail(("X-Autoreply", "yes")), "e@x.ru", "auto-reply: X-Autoreply"),
        (mail(("List-Id", "<tenants.example.ru>")), "e@x.ru", "mailing list: List-Id"),
        (mail(("Precedence", "bulk")), "e@x.ru", "precedence: bulk"),
        (mail(("Precedence", "List")), "e@x.ru", "precedence: list"),
        (mail(("Precedence", "junk (spam)")), "e@x.ru", "precedence: junk"),
        (mail(sender="MAILER-DAEMON@mx.example.ru"), "e@x.ru", "daemon sender"),
        (mail(sender="postmaster@example.ru"), "e@x.ru", "daemon sender"),
        (mail(sender=""), "e@x.ru", "no single From address"),
        (mail(sender="a@example.ru, b@example.ru"), "e@x.ru", "no single From address"),
        (two_froms(), "e@x.ru", "no single From address"),
    ],
)
def test_refusals(message: EmailMessage, envelope: str | None, reason: str) -> None:
    allowed, why = may_reply(message, envelope_from=envelope)
    assert not allowed
    assert why.startswith(reason)


def test_multipart_report_refused() -> None:
    message = EmailMessage()
    message["From"] = "elder@example.ru"
    message.set_content("Delivery failed")
    message.make_mixed()
    message.replace_header(
        "Content-Type", 'multipart/report; report-type=delivery-status; boundary="b"'
    )
    assert may_reply(message, envelope_from="elder@example.ru") == (
        False,
        "bounce: multipart/report",
    )


def test_from_address_is_bare_and_lower_case() -> None:
    assert from_address(mail(sender='"Иван" <Ivan@Example.RU>')) == "ivan@example.ru"
    assert from_address(mail(sender="not an address")) is None


# --- authenticated_sender ------------------------------------------------------------------


def test_no_authserv_configured_trusts_from() -> None:
    assert authenticated_sender(mail(), None)[0]
    assert authenticated_sender(mail(), "")[0]


def test_dmarc_pass() -> None:
    message = mail(
        ("Authentication-Results", f"{MX}; dmarc=pass (p=none dis=none) header.from=example.ru")
    )
    assert authenticated_sender(message, MX) == (True, "dmarc=pass for example.ru")
    assert authenticated_sender(message, MX.upper())[0]


def test_dmarc_pass_for_another_from_domain_does_not_count() -> None:
    message = mail(("Authentication-Results", f"{MX}; dmarc=pass header.from=evil.ru"))
    assert not authenticated_sender(message, MX)[0]


def test_forged_results_from_another_authserv_id_ignored() -> None:
    message = mail(
        ("Authentication-Results", f"{MX}; dkim=fail header.d=example.ru; dmarc=fail"),
        ("Authentication-Results", "mx.evil.ru; dkim=pass header.d=example.ru; dmarc=pass"),
    )
    allowed, why = authenticated_sender(message, MX)
    assert not allowed
    assert "no dmarc=pass" in why


def test_only_forged_headers_means_none_of_ours() -> None:
    message = mail(("Authentication-Results", "mx.evil.ru; dmarc=pass"))
    assert authenticated_sender(message, MX) == (False, f"no Authentication-Results from {MX}")


def test_topmost_trusted_header_wins_per_method() -> None:
    message = mail(
        ("Authentication-Results", f"{MX}; dmarc=fail header.from=example.ru"),
        ("Authentication-Results", f"{MX}; dmarc=pass header.from=example.ru"),
    )
    assert not authenticated_sender(message, MX)[0]


def test_separate_milter_headers_combine() -> None:
    message = mail(
        ("Authentication-Results", f"{MX}; spf=pass smtp.mailfrom=example.ru"),
        ("Authentication-Results", f"{MX}; dkim=pass (2048-bit key) header.d=example.ru"),
    )
    assert authenticated_sender(message, MX)[0]


@pytest.mark.parametrize(
    ("result", "sender", "trusted"),
    [
        ("dkim=pass header.d=example.ru header.s=mail", "elder@example.ru", True),
        ("dkim=pass header.d=Example.RU", "elder@mail.example.ru", True),  # parent domain
        ("dkim=pass header.i=@example.ru", "elder@example.ru", True),
        ("dkim=pass header.i=robot@example.ru", "elder@example.ru", True),
        ("dkim=pass (good signature) header.d=mailer.ru", "elder@example.ru", False),
        ("dkim=pass header.d=evil.msk.ru", "elder@ivanov.msk.ru", False),
        ("dkim=pass header.d=notexample.ru", "elder@example.ru", False),
        ("dkim=pass header.d=ru", "elder@example.ru", False),
        ("dkim=fail header.d=example.ru", "elder@example.ru", False),
        ("dkim=pass", "elder@example.ru", False),
        (
            "dkim=pass header.d=mailer.ru; dkim=pass header.d=example.ru",
            "elder@example.ru",
            True,
        ),
    ],
)
def test_dkim_alignment(result: str, sender: str, trusted: bool) -> None:
    message = mail(("Authentication-Results", f"{MX} 1; {result}"), sender=sender)
    assert authenticated_sender(message, MX)[0] is trusted


def test_comments_and_none_tolerated() -> None:
    server, results = parse_authentication_results(
        "mx.supplier.ru (Postfix (v3)); dkim=pass (1024-bit key; unprotected) "
        'header.d=example.ru header.b="AbC;d"; spf=none'
    )
    assert server == "mx.supplier.ru"
    assert [(r.method, r.result) for r in results] == [("dkim", "pass"), ("spf", "none")]
    assert results[0].properties["header.d"] == "example.ru"
    assert parse_authentication_results(f"{MX}; none") == (MX, [])
    assert not authenticated_sender(mail(("Authentication-Results", f"{MX}; none")), MX)[0]


def test_two_from_headers_not_authenticated() -> None:
    message = two_froms()
    message["Authentication-Results"] = f"{MX}; dmarc=pass header.from=example.ru"
    assert authenticated_sender(message, MX) == (False, "no single From address")


def test_no_from_is_not_authenticated() -> None:
    message = mail(("Authentication-Results", f"{MX}; dmarc=pass"), sender="")
    assert authenticated_sender(message, MX) == (False, "no single From address")
