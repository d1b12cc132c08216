"""The SMS webhook served over real HTTP, and requests signed the way Twilio signs them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from xml.etree import ElementTree

import aiohttp
import pytest
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from gateway.bootstrap import Gateway, gateway
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, count_rows, empty_database, load_registry, loopback
from tests.tcp_proxy import TcpProxy

TOKEN = "test-auth-token"
PUBLIC = "https://gateway.example.org"
_sid = count(1)


@dataclass
class Server:
    gw: Gateway
    base: str
    session: aiohttp.ClientSession

    async def post(
        self,
        body: str,
        *,
        sender: str = "+79120000001",
        sid: str | None = None,
        token: str = TOKEN,
        signature: str | None = None,
    ) -> tuple[int, str]:
        form = {
            "MessageSid": sid or f"SM{next(_sid):032x}",
            "AccountSid": "AC" + "0" * 32,
            "From": sender,
            "To": "+79000000000",
            "Body": body,
            "NumMedia": "0",
        }
        if signature is None:
            signature = RequestValidator(token).compute_signature(PUBLIC + "/sms/twilio", form)
        async with self.session.post(
            self.base + "/sms/twilio", data=form, headers={"X-Twilio-Signature": signature}
        ) as response:
            return response.status, await response.text()

    async def count(self, table: t.Table) -> int:
        return await count_rows(self.gw.db, table)


async def _serve(settings: Settings, clock: Clock, folder: Path) -> AsyncIterator[Server]:
    async with gateway(settings, clock, upgrade=True) as gw:
        await load_registry(gw, folder)
        async with loopback(gw.web_app()) as base, aiohttp.ClientSession() as session:
            yield Server(gw, base, session)


@pytest.fixture
async def server(settings: Settings, clock: Clock, tmp_path: Path) -> AsyncIterator[Server]:
    async for s in _serve(settings, clock, tmp_path):
        yield s


def sms_reply(twiml: str) -> str | None:
    root = ElementTree.fromstring(twiml)
    assert root.tag == "Response"
    message = root.find("Message")
    return None if message is None else message.text


# ----- gateway serve as a process, on PostgreSQL behind a TCP proxy ---------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServeProcess:
    """``gateway serve`` as a process on 127.0.0.1, its standard error in ``log``."""

    port: int
    process: asyncio.subprocess.Process
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_serve(env: dict[str, str], log: Path, *args: str) -> ServeProcess:
    """``python -m gateway serve --port <free> *args`` with ``env``, once ``/healthz``
    answers (AssertionError with its log's tail if it does not within 15 s)."""
    port = _free_port()
    with log.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "--port", str(port), *args,
            env=env, stderr=err,
        )  # fmt: skip
    served = ServeProcess(port, process, log)
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(served.base + "/healthz") as response:
                    if response.status == 200:
                        return served
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"gateway serve did not start: {log.read_text()[-2000:]}")


def serve_env(database_url: str, folder: Path, **settings: str) -> dict[str, str]:
    """The environment of a ``gateway serve`` process in a test: this database, Twilio's
    test token and public URL, JSON logs, no config file, ``GATEWAY_<KEY>=value`` for
    each of ``settings``; metrics of its own."""
    (folder / "none.toml").write_text("")
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_TWILIO_AUTH_TOKEN": TOKEN,
        "GATEWAY_PUBLIC_URL": PUBLIC,
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_CONFIG": str(folder / "none.toml"),
        **{f"GATEWAY_{key.upper()}": value for key, value in settings.items()},
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


@pytest.fixture
async def loaded_postgres(postgres_database: str | None, tmp_path: Path) -> AsyncIterator[str]:
    """The run's PostgreSQL database with the standard registry, emptied afterwards."""
    if postgres_database is None:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
    async with gateway(
        Settings.from_mapping({"database_url": postgres_database}), Clock(), upgrade=True
    ) as gw:
        await load_registry(gw, tmp_path)
    try:
        yield postgres_database
    finally:
        await empty_database(postgres_database)


async def post_sms(
    session: aiohttp.ClientSession,
    base: str,
    sender: str,
    body: str,
    *,
    sid: str | None = None,
    request_id: str | None = None,
) -> int:
    """A Twilio webhook signed for ``PUBLIC``, posted to ``base``; its status."""
    form = {"MessageSid": sid or f"SM{uuid.uuid4().hex}", "From": sender, "Body": body}
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + "/sms/twilio", form)
    headers = {"X-Twilio-Signature": signature}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    async with session.post(base + "/sms/twilio", data=form, headers=headers) as response:
        await response.read()
        return response.status


@dataclass
class Served:
    base: str
    log: Path
    proxy: TcpProxy
    session: aiohttp.ClientSession

    async def sms(self, sender: str, body: str, request_id: str | None = None) -> int:
        return await post_sms(self.session, self.base, sender, body, request_id=request_id)


@pytest.fixture
async def served(loaded_postgres: str, tmp_path: Path) -> AsyncIterator[Served]:
    target = make_url(loaded_postgres)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    log = tmp_path / "gateway.log"
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    env = serve_env(proxied, tmp_path, database_timeout="1", relay_interval="0.5")
    server = await start_serve(env, log)
    try:
        async with aiohttp.ClientSession() as session:
            yield Served(server.base, log, proxy, session)
    finally:
        server.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.process.wait(), 30)
        await proxy.close()
