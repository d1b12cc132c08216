"""The SMS webhook served over real HTTP, and requests signed the way Twilio signs them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from xml.etree import ElementTree

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from gateway.bootstrap import Gateway, gateway
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, count_rows, load_registry, loopback

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
