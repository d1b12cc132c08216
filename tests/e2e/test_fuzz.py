"""Hypothesis drives real HTTP requests at ``POST /sms/twilio``: signed and forged, forms and
other media types, readings and garbage, phones written any way, repeated and over-long
MessageSids. For every request:

- no 5xx (no outage is induced here);
- a 200 is well-formed TwiML whose reply is at most two UCS-2 segments (134 characters);
- a 200 has its audit row (a repeated MessageSid: the one already there); a refusal
  (403, 413, 415) records nothing;
- the answer comes within a bound.

The gateway runs in a thread of its own with its own event loop, as a server would; the
test talks to it over loopback with a plain HTTP client.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from gateway.bootstrap import Gateway, gateway
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, drop_schema, load_registry, loopback
from tests.e2e.conftest import PUBLIC, TOKEN

EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "1200"))
ANSWER_WITHIN = 10.0  # seconds: far above any honest answer, far below a stalled one
SMS_LIMIT = 134
VALIDATOR = RequestValidator(TOKEN)


@dataclass
class Running:
    """The gateway served from a thread; ``call`` runs a coroutine on its loop."""

    port: int
    gw: Gateway
    clock: Clock
    loop: asyncio.AbstractEventLoop
    seen: dict[str, str] = field(default_factory=dict)  # MessageSid → first 200 body

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(ANSWER_WITHIN)

    def messages(self) -> int:
        return int(
            self.call(
                self.gw.db.run(lambda uow: uow.conn.scalar(select(func.count(t.messages.c.id))))
            )
        )


def _backends() -> list[Any]:
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=_backends())
def running(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_database: str | None,
) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'gateway.db'}"
    elif postgres_database is None:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
    else:
        url = postgres_database
    config = Settings.from_mapping(
        {"database_url": url, "twilio_auth_token": TOKEN, "public_url": PUBLIC}
    )
    clock = Clock()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        async with gateway(config, clock, upgrade=True) as gw:
            await load_registry(gw, folder)
            async with loopback(gw.web_app()) as base:
                holder["running"] = Running(int(base.rsplit(":", 1)[1]), gw, clock, loop)
                ready.set()
                await stop.wait()
            if not gw.db.is_sqlite:
                await gw.db.run(lambda uow: drop_schema(uow.conn))

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(60), "the gateway did not start"
    try:
        yield holder["running"]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()


# ----- what is sent ---------------------------------------------------------------------

ACCOUNTS = ["1234567890", "1234567891", "1234567892", "0012345678"]
numbers = st.integers(0, 10**7).map(str)
separators = st.sampled_from([" ", "  ", ",", ";", "#", ":", " - ", "\n", "\t", "\x00", "\u200b"])
labels = st.sampled_from(["", "день ", "ночь ", "Д", "Н", "Т1 ", "ГВС ", "кухня ", "1ЭД", "2Г"])


@st.composite
def readings(draw: st.DrawFn) -> str:
    """Something close to what customers send: an account and labelled or plain values."""
    parts = [draw(st.sampled_from(ACCOUNTS))]
    for _ in range(draw(st.integers(0, 7))):
        parts.append(draw(separators) + draw(labels) + draw(numbers))
    return "".join(parts) + draw(st.sampled_from(["", " спасибо", "\x00", " Иван"]))


@st.composite
def grouping_bombs(draw: st.DrawFn) -> str:
    """An account followed by a long run of short numbers: thousands-grouping bait."""
    count = draw(st.integers(10, 790))
    group = draw(st.sampled_from(["1 ", "12 ", "123 ", "1 234 "]))
    return draw(st.sampled_from(ACCOUNTS)) + " " + group * count


bodies = st.one_of(
    readings(),
    grouping_bombs(),
    st.text(max_size=300),
    st.text(st.characters(codec="utf-8"), max_size=2000),
    st.builds(lambda n, c: c * n, st.integers(1, 70_000), st.sampled_from([" ", "1", "д", ","])),
    st.builds(
        lambda a, v: f"{a} {v}",
        st.sampled_from(ACCOUNTS),
        st.integers(1, 5000).map(lambda n: "9" * n),
    ),
    st.sampled_from(["ПОМОЩЬ", "?", "1234567890 ?", "ПОСЛЕДНИЕ 9" + "9" * 3000, ""]),
)
senders = st.one_of(
    st.sampled_from(["+79120000001", "+7 912 000-00-01", "89120000002", "4545", ""]),
    st.text(st.characters(codec="utf-8"), max_size=600),
)
sids = st.one_of(
    st.none(),
    st.sampled_from(["SMrepeat1", "SMrepeat2"]),
    st.text("abcdefSM0123456789", min_size=1, max_size=400),
)


@dataclass(frozen=True)
class Request:
    body: str
    sender: str
    sid: str | None
    forged: bool
    media: str


requests = st.builds(
    Request,
    body=bodies,
    sender=senders,
    sid=sids,
    forged=st.sampled_from([False] * 9 + [True]),
    media=st.sampled_from(["application/x-www-form-urlencoded"] * 12 + ["application/json"]),
)


def signed(request: Request) -> tuple[bytes, str]:
    form = {"From": request.sender, "To": "+79000000000", "Body": request.body}
    if request.sid is not None:
        form["MessageSid"] = request.sid
    signature = VALIDATOR.compute_signature(PUBLIC + "/sms/twilio", form)
    if request.forged:
        signature = signature[::-1]
    return urlencode(form).encode(), signature


def send(port: int, payload: bytes, signature: str, media: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_WITHIN)
    try:
        connection.request(
            "POST",
            "/sms/twilio",
            body=payload,
            headers={"Content-Type": media, "X-Twilio-Signature": signature},
        )
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests)
def test_every_request_gets_a_valid_bounded_answer_and_every_200_is_recorded(
    running: Running, request: Request
) -> None:
    running.clock.advance(seconds=7)
    before = running.messages()

    payload, signature = signed(request)
    status, body = send(running.port, payload, signature, request.media)

    after = running.messages()
    if len(payload) > 64 * 1024:
        assert status == 413
    elif request.media != "application/x-www-form-urlencoded":
        assert status == 415
    elif request.forged:
        assert status == 403
    else:
        assert status == 200, body
    if status != 200:
        assert after == before
        return
    root = ElementTree.fromstring(body)
    assert root.tag == "Response"
    reply = root.findtext("Message")
    assert reply is None or 0 < len(reply) <= SMS_LIMIT, reply
    repeated = request.sid is not None and request.sid.strip() in running.seen
    if repeated:
        assert after == before
        assert body == running.seen[request.sid.strip()]
    else:
        assert after == before + 1
        if request.sid is not None and request.sid.strip():
            running.seen[request.sid.strip()] = body
