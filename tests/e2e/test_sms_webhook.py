"""``POST /sms/twilio`` over real HTTP, signed the way Twilio signs requests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from gateway.bootstrap import version
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, select_rows
from tests.e2e.conftest import TOKEN, Server, _serve, sms_reply


async def test_accepted_sms_gets_twiml_with_the_preliminary_charge(server: Server) -> None:
    status, body = await server.post("1234567890 12345 6789")

    assert status == 200
    assert sms_reply(body) == (
        "Принято, ЛС 1234567890: день 12345, ночь 6789. "
        "Предварительно к оплате 3443,05 ₽ (с долгом 100,00 ₽)."
    )
    assert await server.count(t.readings) == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "абв 12",
            "Непонятное слово «абв». Формат: ЛС показание, "
            "напр. 1234567890 12345 или 1234567890 12345 6789 (день ночь)",
        ),
        (
            "привет",
            "Показания: ЛС и значения через пробел, напр. 1234567890 12345 6789 (день ночь) "
            "или Д12345 Н6789. Последние: 1234567890 ?",
        ),
        (
            "9999999999 100",
            "ЛС 9999999999 не найден. Проверьте номер в квитанции. "
            "Формат: ЛС и показания, напр. 1234567890 12345 6789",
        ),
        (
            "1234567890 12345",
            "ЛС 1234567890: нужно 2 показания (день, ночь), напр. 1234567890 12345 6789",
        ),
        (
            "1234567891 123456",
            "ЛС 1234567891: ЭЭ 123456 не помещается в счётчик 5.1: до 5 цифр до запятой и 1 после.",
        ),
        (
            "0012345678 999990 311",
            "ЛС 0012345678: срок поверки счётчика 812001 истёк 01.11.2026. "
            "Показания не приняты, обратитесь к поставщику.",
        ),
        (
            "1234567890 11999 6789",
            "ЛС 1234567890: день 11999 меньше прежнего 12000. "
            "Проверьте показание и отправьте снова.",
        ),
        (
            "1234567890 13001 6789",
            "ЛС 1234567890: расход день больше допустимых 1000. "
            "Проверьте показание или обратитесь к поставщику.",
        ),
    ],
    ids=[
        "unparseable",
        "not_readings",
        "unknown_account",
        "value_count",
        "too_many_digits",
        "verification_expired",
        "below_previous",
        "jump_too_large",
    ],
)
async def test_each_error_code_gets_its_reply_and_is_recorded(
    server: Server, body: str, expected: str, request: pytest.FixtureRequest
) -> None:
    status, twiml = await server.post(body)

    assert status == 200
    assert sms_reply(twiml) == expected
    (message,) = await select_rows(server.gw.db, t.messages)
    code = message["error_code"]
    assert code == request.node.callspec.id.split("-")[-1]
    assert await server.count(t.readings) == 0


async def test_wrong_signature_is_refused_and_nothing_is_processed(server: Server) -> None:
    status, _ = await server.post("1234567890 12345 6789", token="not-the-token")

    assert status == 403
    assert await server.count(t.messages) == 0


async def test_missing_signature_is_refused(server: Server) -> None:
    status, _ = await server.post("1234567890 12345 6789", signature="")

    assert status == 403
    assert await server.count(t.messages) == 0


async def test_no_auth_token_configured_refuses_every_request(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    async for server in _serve(replace(settings, twilio_auth_token=""), clock, tmp_path):
        status, text = await server.post("1234567890 12345 6789")
        assert (status, text) == (403, "sms channel is not configured")
        assert await server.count(t.messages) == 0


async def test_signature_is_checked_against_the_public_url_not_the_local_one(
    server: Server,
) -> None:
    """Signed for the address Twilio sees (behind a proxy), served on 127.0.0.1."""
    form = {"MessageSid": "SMproxy", "From": "+79120000001", "Body": "1234567891 4600"}
    local_signature = RequestValidator(TOKEN).compute_signature(server.base + "/sms/twilio", form)
    async with server.session.post(
        server.base + "/sms/twilio", data=form, headers={"X-Twilio-Signature": local_signature}
    ) as response:
        assert response.status == 403


async def test_same_message_sid_twice_gives_the_same_reply_and_one_reading(
    server: Server,
) -> None:
    first = await server.post("1234567891 4600", sid="SMsame")
    second = await server.post("1234567891 4600", sid="SMsame")

    assert first == second
    assert first[0] == 200
    assert await server.count(t.readings) == 1
    assert await server.count(t.messages) == 1


async def test_body_over_64_kib_is_413_and_not_processed(server: Server) -> None:
    status, _ = await server.post("1234567891 " + "1" * (64 * 1024))

    assert status == 413
    assert await server.count(t.messages) == 0


async def test_eleventh_sms_in_a_minute_gets_no_reply_but_is_recorded(
    server: Server, clock: Clock
) -> None:
    replies = []
    for _ in range(11):
        status, body = await server.post("абв 12", sender="+79995550000")
        assert status == 200
        replies.append(sms_reply(body))
        clock.advance(seconds=2)

    assert all(replies[:10])
    assert replies[10] is None
    assert await server.count(t.messages) == 11


async def test_health_check_answers(server: Server) -> None:
    async with server.session.get(server.base + "/healthz") as response:
        # Added in issue 13: the version (the installed distribution's).
        expected = {"status": "ok", "version": version()}
        assert (response.status, await response.json()) == (200, expected)
