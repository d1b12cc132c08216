"""``POST /sms/twilio`` against hostile and unlucky input: bodies split across packets,
wrong media types, control characters, over-long fields, phones written several ways,
concurrent senders, and a database that goes away (through a TCP proxy the test cuts)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, empty_database, select_rows
from tests.e2e.conftest import PUBLIC, TOKEN, Server, _serve, sms_reply
from tests.tcp_proxy import TcpProxy

ACCEPTED = (
    "Принято, ЛС 1234567890: день 12345, ночь 6789. "
    "Предварительно к оплате 3443,05 ₽ (с долгом 100,00 ₽)."
)


def signed_form(body: str, sid: str, sender: str = "+79120000001") -> tuple[bytes, str]:
    form = {"MessageSid": sid, "From": sender, "To": "+79000000000", "Body": body}
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + "/sms/twilio", form)
    return urlencode(form).encode(), signature


async def raw_post(base: str, payload: bytes, headers: dict[str, str], split: int) -> bytes:
    """POST ``payload`` in two TCP writes: the headers and ``split`` bytes, a pause, the rest."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        f"POST /sms/twilio HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(payload)}\r\n"
        f"{head}Connection: close\r\n\r\n".encode()
        + payload[:split]
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.write(payload[split:])
    await writer.drain()
    response = await reader.read()
    writer.close()
    return response


async def test_body_in_two_tcp_writes_is_read_whole_and_accepted(server: Server) -> None:
    payload, signature = signed_form("1234567890 12345 6789", "SMsplit")
    response = await raw_post(
        server.base,
        payload,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
        split=len(payload) // 2,
    )

    status_line, _, rest = response.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK"
    assert sms_reply(rest.split(b"\r\n\r\n", 1)[1].decode()) == ACCEPTED
    assert await server.count(t.readings) == 2


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "multipart/form-data; boundary=x"]
)
async def test_a_body_that_is_not_a_form_is_415_and_not_processed(
    server: Server, content_type: str
) -> None:
    payload, signature = signed_form("1234567890 12345 6789", "SMjson")
    async with server.session.post(
        server.base + "/sms/twilio",
        data=payload,
        headers={"Content-Type": content_type, "X-Twilio-Signature": signature},
    ) as response:
        assert response.status == 415
    assert await server.count(t.messages) == 0


@pytest.mark.parametrize(
    "body",
    ["1234567890 12345 6789\x00", "1234567890\x0012345\x1f6789", "\x001234567890 12345 6789\x7f"],
    ids=["trailing_nul", "controls_as_separators", "nul_and_del_at_the_edges"],
)
async def test_control_characters_are_separators_and_the_reading_is_accepted(
    server: Server, body: str
) -> None:
    status, twiml = await server.post(body)

    assert (status, sms_reply(twiml)) == (200, ACCEPTED)
    (message,) = await select_rows(server.gw.db, t.messages)
    assert message["status"] == "accepted"
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in message["text"])


async def test_control_characters_never_reach_the_twiml_reply(server: Server) -> None:
    status, twiml = await server.post("1234567890 12\x01абв\x02 5")

    assert status == 200
    reply = sms_reply(twiml)  # parses: the document is well-formed XML
    assert reply is not None
    assert reply.startswith("ЛС 1234567890: непонятное слово «абв».")
    assert not any(ord(c) < 32 for c in reply)


async def test_a_sender_longer_than_its_column_is_stored_cut_with_a_marker(
    server: Server,
) -> None:
    sender = "+7" + "9" * 400
    status, twiml = await server.post("1234567891 4600", sender=sender)

    assert (status, sms_reply(twiml) is not None) == (200, True)
    (message,) = await select_rows(server.gw.db, t.messages)
    assert len(message["sender"]) == 254
    assert message["sender"].startswith("+7999") and "…" in message["sender"]
    assert message["status"] == "accepted"


async def test_a_message_sid_longer_than_its_column_still_deduplicates(server: Server) -> None:
    sid = "SM" + "a" * 500
    first = await server.post("1234567891 4600", sid=sid)
    second = await server.post("1234567891 4600", sid=sid)

    assert first == second
    assert await server.count(t.messages) == 1
    assert await server.count(t.readings) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("9" * 1500 + " 12345", "unknown_account"),
        ("1234567891 " + "4" * 1500, "too_many_digits"),
        ("1234567890 " + "4" * 1500 + " 6789", "too_many_digits"),
        ("9" * 5000 + " 12345", "unparseable"),
        ("1234567891 " + "4" * 60000, "unparseable"),
    ],
    ids=["account_1500", "value_1500", "day_1500", "account_5000", "value_60000"],
)
async def test_numbers_of_thousands_of_digits_are_ordinary_rejections(
    server: Server, body: str, code: str
) -> None:
    status, twiml = await server.post(body)

    assert status == 200
    (message,) = await select_rows(server.gw.db, t.messages)
    assert (message["status"], message["error_code"]) == ("rejected", code)
    assert 0 < len(sms_reply(twiml) or "") <= 134


async def test_one_phone_written_three_ways_is_one_sender_for_the_rate_limit(
    server: Server, clock: Clock
) -> None:
    ways = ["+7 912 555-00-01", "89125550001", "+79125550001", "8 (912) 555 00 01"]
    replies = []
    for i in range(11):
        status, body = await server.post("абв 12", sender=ways[i % len(ways)])
        assert status == 200
        replies.append(sms_reply(body))
        clock.advance(seconds=1)

    assert all(replies[:10])
    assert replies[10] is None
    senders = {m["sender"] for m in await select_rows(server.gw.db, t.messages)}
    assert senders == {"+79125550001"}


async def test_concurrent_messages_of_one_sender_pass_the_rate_limit_ten_times(
    server: Server,
) -> None:
    results = await asyncio.gather(
        *(server.post("абв 12", sender="+79125550002") for _ in range(60))
    )

    assert {status for status, _ in results} == {200}
    rows = await select_rows(server.gw.db, t.messages)
    assert len(rows) == 60
    assert sum(1 for r in rows if r["error_code"] != "rate_limited") == 10


async def test_readiness_answers_while_the_database_does(server: Server) -> None:
    async with server.session.get(server.base + "/readyz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ready", "database": "ok"}


# ----- outages ------------------------------------------------------------------------


@pytest.fixture
async def proxied(
    postgres_database: str | None, clock: Clock, tmp_path: Path
) -> AsyncIterator[tuple[Server, TcpProxy]]:
    """The gateway on PostgreSQL through a TCP proxy the test controls."""
    if postgres_database is None:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
    target = make_url(postgres_database)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    url = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings.from_mapping(
        {
            "database_url": url,
            "database_timeout": 1,
            "twilio_auth_token": TOKEN,
            "public_url": PUBLIC,
        }
    )
    try:
        async for server in _serve(settings, clock, tmp_path):
            yield server, proxy
    finally:
        await proxy.close()
        await empty_database(postgres_database)


async def _ready(server: Server) -> int:
    async with server.session.get(server.base + "/readyz") as response:
        return response.status


async def _healthy(server: Server) -> int:
    async with server.session.get(server.base + "/healthz") as response:
        return response.status


@pytest.mark.postgres
@pytest.mark.parametrize("failure", ["cut", "stall"])
async def test_database_outage_is_503_then_the_gateway_recovers_by_itself(
    proxied: tuple[Server, TcpProxy], failure: str
) -> None:
    server, proxy = proxied
    assert (await server.post("1234567891 4600"))[0] == 200

    await (proxy.cut() if failure == "cut" else proxy.stall())
    loop = asyncio.get_running_loop()
    started = loop.time()
    during = [await server.post(f"1234567891 {4601 + i}") for i in range(3)]
    waited = loop.time() - started
    ready, healthy = await _ready(server), await _healthy(server)
    await proxy.restore()
    after = await server.post("1234567890 12345 6789")

    assert [status for status, _ in during] == [503, 503, 503]
    assert (ready, healthy) == (503, 200)
    # Each message waits at most about two database timeouts (1 s here) before the 503.
    assert waited < 3 * 2.5
    assert after == (200, after[1]) and sms_reply(after[1]) == ACCEPTED
    assert await _ready(server) == 200
    rows = await select_rows(server.gw.db, t.messages)
    assert [r["status"] for r in rows] == ["accepted", "accepted"]


@pytest.fixture
async def sqlite_server(clock: Clock, tmp_path: Path) -> AsyncIterator[tuple[Server, Path]]:
    path = tmp_path / "gateway.db"
    settings = Settings.from_mapping(
        {
            "database_url": f"sqlite+aiosqlite:///{path}",
            "database_timeout": 0.5,
            "twilio_auth_token": TOKEN,
            "public_url": PUBLIC,
        }
    )
    async for server in _serve(settings, clock, tmp_path):
        yield server, path


async def test_sqlite_locked_by_another_process_is_503_until_released(
    sqlite_server: tuple[Server, Path],
) -> None:
    server, path = sqlite_server
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        locked = await server.post("1234567891 4600")
        ready = await _ready(server)
    finally:
        other.execute("ROLLBACK")
        other.close()
    after = await server.post("1234567891 4600")

    assert (locked[0], ready) == (503, 503)
    assert after[0] == 200
    assert await server.count(t.messages) == 1


async def test_client_disconnect_does_not_break_the_next_request(server: Server) -> None:
    payload, signature = signed_form("1234567891 4600", "SMgone")
    host, port = server.base.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /sms/twilio HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(payload)}\r\nX-Twilio-Signature: {signature}\r\n\r\n".encode()
        + payload[:10]
    )
    await writer.drain()
    writer.close()
    status, twiml = await server.post("1234567890 12345 6789")
    assert (status, sms_reply(twiml)) == (200, ACCEPTED)


def test_twiml_replies_parse_as_xml() -> None:
    from channels.sms_twilio import twiml

    document = twiml("a\x00b\x0bc\ud800d\ufffee\x85f")
    assert ElementTree.fromstring(document).findtext("Message") == "abcdef"
