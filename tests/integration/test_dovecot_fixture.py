"""The private Dovecot fixture speaks real IMAP the way the email channel will use it:
APPEND/UIDs/UIDVALIDITY, UID FETCH of the exact bytes, IDLE woken by another connection,
COPY/MOVE to another folder, flags and keywords."""

from __future__ import annotations

import asyncio
import re

import aioimaplib
import pytest

from tests import dovecot as dovecot_module
from tests.dovecot import (
    Dovecot,
    dovecot_fixture,  # noqa: F401  (the `dovecot` fixture)
    start_dovecot,
)

FIRST = (
    b"From: Ivan <ivan@example.org>\r\n"
    b"To: readings@example.org\r\n"
    b"Subject: =?utf-8?b?0J/QvtC60LDQt9Cw0L3QuNGP?=\r\n"
    b"Message-ID: <1@example.org>\r\n"
    b"\r\n"
    b"1234567890 517480 12345\r\n"
)
SECOND = (
    b"From: Petr <petr@example.org>\r\n"
    b"Subject: meter\r\n"
    b"Message-ID: <2@example.org>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n" + "1234567891 611002 4600 — спасибо\r\n".encode()
)


def uidvalidity(response: aioimaplib.Response) -> int:
    for line in response.lines:
        match = re.search(rb"\[UIDVALIDITY (\d+)\]", bytes(line))
        if match:
            return int(match[1])
    raise AssertionError(f"no UIDVALIDITY in {response}")


def literal(response: aioimaplib.Response) -> bytes:
    """The message bytes of a single-message FETCH BODY[] (aioimaplib yields a bytearray)."""
    (body,) = [bytes(line) for line in response.lines if isinstance(line, bytearray)]
    return body


def search_uids(response: aioimaplib.Response) -> list[int]:
    assert response.result == "OK", response
    return [int(n) for n in bytes(response.lines[0]).split()]


async def test_append_uids_uidvalidity_and_fetch_by_uid(dovecot: Dovecot) -> None:
    first = await dovecot.append(FIRST)
    second = await dovecot.append(SECOND)
    assert second > first
    assert await dovecot.uids() == [first, second]

    async with dovecot.session() as imap:
        selected = await imap.select("INBOX")
        assert selected.result == "OK"
        validity = uidvalidity(selected)
        assert validity > 0
        assert search_uids(await imap.uid_search("ALL", charset=None)) == [first, second]

        fetched = await imap.uid("fetch", str(second), "(BODY.PEEK[])")
        assert fetched.result == "OK"
        assert literal(fetched) == SECOND

    # UIDs and UIDVALIDITY are stable across sessions (what a poller relies on).
    async with dovecot.session() as imap:
        assert uidvalidity(await imap.examine("INBOX")) == validity


async def test_idle_is_woken_by_an_append_from_another_connection(dovecot: Dovecot) -> None:
    async with dovecot.session() as imap:
        await imap.protocol.capability()  # the greeting lists pre-login capabilities only
        assert imap.has_capability("IDLE")
        assert imap.has_capability("UIDPLUS")
        assert imap.has_capability("MOVE")
        assert (await imap.select("INBOX")).result == "OK"

        idle = await imap.idle_start(timeout=10)
        uid = await dovecot.append(FIRST)  # a second connection
        pushed = await imap.wait_server_push(timeout=5)
        imap.idle_done()
        assert (await asyncio.wait_for(idle, 5)).result == "OK"
        assert any(re.fullmatch(rb"\d+ EXISTS", bytes(line)) for line in pushed), pushed

        assert search_uids(await imap.uid_search("ALL", charset=None)) == [uid]


async def test_copy_and_move_to_another_folder(dovecot: Dovecot) -> None:
    await dovecot.create_folder("Processed")
    first = await dovecot.append(FIRST)
    second = await dovecot.append(SECOND)

    async with dovecot.session() as imap:
        assert (await imap.select("INBOX")).result == "OK"
        copied = await imap.uid("copy", str(first), "Processed")
        assert copied.result == "OK"
        assert any(b"COPYUID" in bytes(line) for line in copied.lines), copied
        moved = await imap.uid("move", str(second), "Processed")
        assert moved.result == "OK"

    assert await dovecot.uids("INBOX") == [first]
    assert len(await dovecot.uids("Processed")) == 2
    async with dovecot.session() as imap:
        assert (await imap.select("Processed")).result == "OK"
        (last,) = search_uids(await imap.uid_search("HEADER", "Message-ID", "<2@example.org>"))
        assert literal(await imap.uid("fetch", str(last), "(BODY.PEEK[])")) == SECOND


async def test_seen_flag_and_custom_keyword(dovecot: Dovecot) -> None:
    first = await dovecot.append(FIRST)
    second = await dovecot.append(SECOND)

    async with dovecot.session() as imap:
        assert (await imap.select("INBOX")).result == "OK"
        assert search_uids(await imap.uid_search("UNSEEN", charset=None)) == [first, second]
        stored = await imap.uid("store", str(first), "+FLAGS", r"(\Seen $GatewayDone)")
        assert stored.result == "OK"

    async with dovecot.session() as imap:
        assert (await imap.select("INBOX")).result == "OK"
        fetched = await imap.uid("fetch", str(first), "(FLAGS)")
        flags = b" ".join(bytes(line) for line in fetched.lines)
        assert rb"\Seen" in flags
        assert b"$GatewayDone" in flags
        assert search_uids(await imap.uid_search("UNSEEN", charset=None)) == [second]
        assert search_uids(await imap.uid_search("KEYWORD", "$GatewayDone", charset=None)) == [
            first
        ]


async def test_users_are_separate_and_a_wrong_password_is_refused(dovecot: Dovecot) -> None:
    await dovecot.append(FIRST)
    assert await dovecot.uids(user="other") == []

    imap = aioimaplib.IMAP4(host=dovecot.host, port=dovecot.port, timeout=5)
    await imap.wait_hello_from_server()
    assert (await imap.login(dovecot.user, "wrong")).result == "NO"
    await imap.logout()


async def test_the_server_and_its_directory_are_gone_after_teardown() -> None:
    dovecot_module.require_dovecot()
    async with start_dovecot({"solo": "pw"}) as server:
        assert (server.user, server.password) == ("solo", "pw")
        await server.append(FIRST)
        root, process = server.root, server.process
        assert (root / "mail" / "solo").is_dir()
    assert process.poll() is not None
    assert not root.exists()
    with pytest.raises(OSError):
        await asyncio.open_connection(server.host, server.port)


def test_missing_dovecot_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dovecot_module, "dovecot_binary", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install dovecot-imapd"):
        dovecot_module.require_dovecot()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="dovecot not installed"):
        dovecot_module.require_dovecot()
