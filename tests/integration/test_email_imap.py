"""The IMAP poller against a real Dovecot (tests/dovecot.py): keyword and move marking,
a failing callback, oversized mail, IDLE, restarts, a cut connection, a refused login,
a server that drops keywords, a done folder that refuses mail, implicit TLS and STARTTLS.

Servers with other capabilities, ACLs or TLS are the same private Dovecot with a few
lines added to its configuration (``_config`` wrapped for the test)."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from channels import email_imap
from channels.email_imap import (
    PROCESSED_KEYWORD,
    ImapConfig,
    ImapConfigError,
    ImapLoginError,
    ImapPoller,
    mutf7,
)
from tests import dovecot as dovecot_module
from tests.dovecot import (
    Dovecot,
    dovecot_fixture,  # noqa: F401  (the `dovecot` fixture)
    free_port,
    quote,
    start_dovecot,
)
from tests.tcp_proxy import TcpProxy
from tests.tls import Certificate

WAIT = 10.0  # generous bound for anything that should take milliseconds


def mail(n: int, body: bytes = b"") -> bytes:
    return (
        f"From: Resident {n} <r{n}@example.org>\r\n"
        f"To: readings@example.org\r\n"
        f"Subject: readings {n}\r\n"
        f"Message-ID: <{n}@example.org>\r\n"
        "\r\n"
    ).encode() + (body or f"123456789{n} 5174{n}0 1234{n}\r\n".encode())


def header(raw: bytes) -> bytes:
    return raw[: raw.index(b"\r\n\r\n") + 4]


Hook = Callable[[int, bytes], Awaitable[None]]


class Inbox:
    """The callback: records every call, then runs ``hook`` (which may raise)."""

    def __init__(self, hook: Hook | None = None) -> None:
        self.calls: list[tuple[bytes, bool]] = []
        self.done: list[bytes] = []  # returned without raising
        self.hook = hook
        self.arrived: asyncio.Queue[bytes] = asyncio.Queue()

    async def __call__(self, raw: bytes, *, truncated: bool) -> None:
        self.calls.append((raw, truncated))
        if self.hook is not None:
            await self.hook(len(self.calls), raw)
        self.done.append(raw)
        self.arrived.put_nowait(raw)

    async def next(self) -> bytes:
        return await asyncio.wait_for(self.arrived.get(), WAIT)


def config(server: Dovecot, **overrides: Any) -> ImapConfig:
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "tls": "none",
        "timeout": 5.0,
    }
    return ImapConfig(**(values | overrides))


async def flags(server: Dovecot, uid: int, folder: str = "INBOX") -> set[str]:
    async with server.session() as imap:
        assert (await imap.select(quote(folder))).result == "OK"
        response = await imap.uid("fetch", str(uid), "(FLAGS)")
    assert response.result == "OK", response
    for line in response.lines:
        match = re.search(rb"FLAGS \(([^)]*)\)", bytes(line))
        if match:
            return set(match[1].decode().split())
    raise AssertionError(f"no FLAGS for {uid}: {response}")


async def until(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), WAIT)


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(email_imap, "RETRY_INITIAL", 0.05)
    monkeypatch.setattr(email_imap, "RETRY_MAX", 0.2)


class IdleSpy:
    def __init__(self) -> None:
        self.entered: asyncio.Queue[None] = asyncio.Queue()  # an item each time
        self.active = 0  # pollers in IDLE now

    async def next(self) -> None:
        await asyncio.wait_for(self.entered.get(), WAIT)


@pytest.fixture
def idling(monkeypatch: pytest.MonkeyPatch) -> IdleSpy:
    """Watches pollers enter and leave IDLE."""
    spy = IdleSpy()
    original = email_imap._Connection.idle

    async def idle(self: email_imap._Connection, period: float) -> None:
        spy.entered.put_nowait(None)
        spy.active += 1
        try:
            await original(self, period)
        finally:
            spy.active -= 1

    monkeypatch.setattr(email_imap._Connection, "idle", idle)
    return spy


@asynccontextmanager
async def custom_dovecot(
    monkeypatch: pytest.MonkeyPatch, extra: Callable[[Path], Callable[[str], str]]
) -> AsyncIterator[Dovecot]:
    """The private Dovecot, its configuration edited by ``extra(root)``."""
    dovecot_module.require_dovecot()
    original = dovecot_module._config

    def patched(version: tuple[int, int], root: Path, port: int, ident: Any) -> str:
        if version >= (2, 4):
            pytest.skip("configuration edits written for Dovecot 2.3")
        return extra(root)(original(version, root, port, ident))

    with monkeypatch.context() as patch:
        patch.setattr(dovecot_module, "_config", patched)
        async with start_dovecot() as server:
            yield server


def appended(text: str) -> Callable[[Path], Callable[[str], str]]:
    return lambda _root: lambda conf: conf + text


def run_until_stopped(poller: ImapPoller, stop: asyncio.Event) -> asyncio.Task[None]:
    return asyncio.create_task(poller.run_forever(stop))


async def stop_within(task: asyncio.Task[None], stop: asyncio.Event, seconds: float) -> float:
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, seconds)
    return time.monotonic() - started


# 1. keyword mode


async def test_keyword_mode_hands_over_in_uid_order_and_marks_without_seen(
    dovecot: Dovecot,
) -> None:
    raws = [mail(n) for n in (1, 2, 3)]
    uids = [await dovecot.append(raw) for raw in raws]
    inbox = Inbox()
    poller = ImapPoller(config(dovecot), inbox)

    assert await poller.run_once() == 3

    assert inbox.calls == [(raw, False) for raw in raws]
    for uid in uids:
        assert await flags(dovecot, uid) == {PROCESSED_KEYWORD}  # no \Seen
    assert await dovecot.uids() == uids  # still there

    assert await ImapPoller(config(dovecot), inbox).run_once() == 0
    assert await poller.run_once() == 0
    assert len(inbox.calls) == 3


# 2. move mode


async def test_move_mode_moves_to_a_done_folder_it_creates(dovecot: Dovecot) -> None:
    raws = [mail(n) for n in (1, 2, 3)]
    for raw in raws:
        await dovecot.append(raw)
    inbox = Inbox()
    done = "Обработано"  # sent in modified UTF-7

    assert await ImapPoller(config(dovecot, done_folder=done), inbox).run_once() == 3

    assert inbox.done == raws
    assert await dovecot.uids("INBOX") == []
    moved = await dovecot.uids(mutf7(done))
    assert len(moved) == 3
    async with dovecot.session() as imap:
        listed = await imap.list('""', "*")
        assert any(mutf7(done).encode() in bytes(line) for line in listed.lines), listed
        assert (await imap.select(quote(mutf7(done)))).result == "OK"
        first = await imap.uid("fetch", str(moved[0]), "(BODY.PEEK[] FLAGS)")
    assert raws[0] in [bytes(line) for line in first.lines]
    assert b"\\Seen" not in b" ".join(bytes(line) for line in first.lines)


@pytest.mark.parametrize(
    "capabilities",
    ["IMAP4rev1 LITERAL+ UIDPLUS", "IMAP4rev1 LITERAL+"],
    ids=["copy-uid-expunge", "copy-expunge"],
)
async def test_move_mode_without_the_move_capability_copies_and_expunges(
    monkeypatch: pytest.MonkeyPatch, capabilities: str
) -> None:
    """aioimaplib refuses UID MOVE without MOVE and UID EXPUNGE without UIDPLUS: taking the
    wrong path fails the test."""
    async with custom_dovecot(monkeypatch, appended(f"imap_capability = {capabilities}\n")) as (
        server
    ):
        await server.create_folder("Done")  # exists already: fine
        raws = [mail(n) for n in (1, 2)]
        for raw in raws:
            await server.append(raw)
        inbox = Inbox()

        assert await ImapPoller(config(server, done_folder="Done"), inbox).run_once() == 2

        assert inbox.done == raws
        assert await server.uids("INBOX") == []
        assert len(await server.uids("Done")) == 2


def test_mailbox_names_are_modified_utf7() -> None:
    assert mutf7("Отправленные") == "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"
    assert mutf7("Done & Dusted") == "Done &- Dusted"
    assert mutf7("INBOX") == "INBOX"


# 3. the callback raises


async def test_a_failing_callback_leaves_that_mail_and_the_rest_for_the_next_pass(
    dovecot: Dovecot, logs: list[MutableMapping[str, Any]]
) -> None:
    raws = [mail(n) for n in (1, 2, 3)]
    uids = [await dovecot.append(raw) for raw in raws]

    async def fail_second(call: int, _raw: bytes) -> None:
        if call == 2:
            raise RuntimeError("database down")

    inbox = Inbox(fail_second)
    poller = ImapPoller(config(dovecot), inbox)
    with pytest.raises(RuntimeError, match="database down"):
        await poller.run_once()

    assert [raw for raw, _ in inbox.calls] == raws[:2]
    assert await flags(dovecot, uids[0]) == {PROCESSED_KEYWORD}
    assert await flags(dovecot, uids[1]) == set()
    assert await flags(dovecot, uids[2]) == set()
    (failed,) = events(logs, "imap_message_failed")
    assert failed["uid"] == uids[1]
    assert failed["error"] == "RuntimeError"

    inbox.hook = None
    assert await poller.run_once() == 2

    assert inbox.done == raws  # each handed over successfully exactly once, in order
    for uid in uids:
        assert await flags(dovecot, uid) == {PROCESSED_KEYWORD}


# 4. oversized mail


async def test_an_oversized_mail_is_handed_over_as_its_header_only(dovecot: Dovecot) -> None:
    big = mail(1, b"x" * 5000 + b"\r\n")
    small = mail(2)
    big_uid = await dovecot.append(big)
    small_uid = await dovecot.append(small)
    inbox = Inbox()

    assert await ImapPoller(config(dovecot, max_message_bytes=2000), inbox).run_once() == 2

    assert inbox.calls == [(header(big), True), (small, False)]
    assert await flags(dovecot, big_uid) == {PROCESSED_KEYWORD}
    assert await flags(dovecot, small_uid) == {PROCESSED_KEYWORD}


# 5. IDLE


async def test_run_forever_is_woken_by_idle_and_stops_promptly(
    dovecot: Dovecot, idling: IdleSpy, logs: list[MutableMapping[str, Any]]
) -> None:
    first = await dovecot.append(mail(1))
    inbox = Inbox()
    # Neither the poll interval nor the IDLE period can explain a wake within WAIT.
    poller = ImapPoller(config(dovecot, poll_interval=300.0, idle_timeout=300.0), inbox)
    stop = asyncio.Event()
    task = run_until_stopped(poller, stop)

    assert await inbox.next() == mail(1)
    await idling.next()
    second = await dovecot.append(mail(2))
    assert await inbox.next() == mail(2)
    await idling.next()  # back in IDLE

    assert await stop_within(task, stop, 2.0) < 1.0
    assert await flags(dovecot, first) == await flags(dovecot, second) == {PROCESSED_KEYWORD}
    assert inbox.done == [mail(1), mail(2)]
    assert events(logs, "imap_error") == []
    assert len(events(logs, "imap_connected")) == 1  # one connection throughout


async def test_without_idle_it_polls_and_a_stop_ends_the_sleep(
    monkeypatch: pytest.MonkeyPatch, idling: IdleSpy, logs: list[MutableMapping[str, Any]]
) -> None:
    async with custom_dovecot(
        monkeypatch, appended("imap_capability = IMAP4rev1 LITERAL+ UIDPLUS MOVE\n")
    ) as server:
        inbox = Inbox()
        poller = ImapPoller(config(server, poll_interval=0.2), inbox)
        stop = asyncio.Event()
        task = run_until_stopped(poller, stop)
        await asyncio.sleep(0.3)  # a pass or two over the empty folder
        await server.append(mail(1))
        assert await inbox.next() == mail(1)

        poller_long = ImapPoller(config(server, poll_interval=300.0), Inbox())
        stop_long = asyncio.Event()
        task_long = run_until_stopped(poller_long, stop_long)
        await asyncio.sleep(0.3)  # asleep for 300 s now

        assert await stop_within(task_long, stop_long, 2.0) < 1.0
        assert await stop_within(task, stop, 2.0) < 1.0
        assert inbox.done == [mail(1)]
        assert idling.entered.empty()
        assert events(logs, "imap_error") == []
        assert len(events(logs, "imap_connected")) == 2  # one per poller


# 6. restart


async def test_a_stopped_poller_leaves_the_rest_to_the_next(dovecot: Dovecot) -> None:
    raws = [mail(n) for n in range(1, 6)]
    uids = [await dovecot.append(raw) for raw in raws]
    stop = asyncio.Event()

    async def stop_after_second(call: int, _raw: bytes) -> None:
        if call == 2:
            stop.set()

    first = Inbox(stop_after_second)
    await asyncio.wait_for(ImapPoller(config(dovecot), first).run_forever(stop), WAIT)
    assert first.done == raws[:2]
    assert [await flags(dovecot, uid) for uid in uids] == [{PROCESSED_KEYWORD}] * 2 + [set()] * 3

    second = Inbox()
    assert await ImapPoller(config(dovecot), second).run_once() == 3
    assert second.done == raws[2:]


# 7. connection lost


async def test_a_cut_connection_is_reestablished(
    dovecot: Dovecot,
    idling: IdleSpy,
    logs: list[MutableMapping[str, Any]],
    fast_retry: None,
) -> None:
    proxy = TcpProxy(dovecot.host, dovecot.port)
    await proxy.start()
    inbox = Inbox()
    poller = ImapPoller(config(dovecot, port=proxy.port, poll_interval=300.0), inbox)
    stop, stalled_stop = asyncio.Event(), asyncio.Event()
    task = run_until_stopped(poller, stop)
    stalled = None
    try:
        await dovecot.append(mail(1))
        assert await inbox.next() == mail(1)
        await idling.next()

        await proxy.cut()  # while idling: aioimaplib alone would wait out the 300 s
        await until(lambda: len(events(logs, "imap_error")) >= 4)  # lost, then refused
        errors = events(logs, "imap_error")
        assert errors[0]["error"] == "ImapConnectionLost"
        assert all(e["error"] == "ConnectionRefusedError" for e in errors[1:4]), errors
        assert [e["retry_in"] for e in errors[:4]] == [0.05, 0.1, 0.2, 0.2]  # doubles, capped
        assert not task.done()

        await proxy.restore()
        await dovecot.append(mail(2))
        assert await inbox.next() == mail(2)
        assert len(events(logs, "imap_connected")) == 2
        assert inbox.done == [mail(1), mail(2)]

        # A server that stops answering: the stop still ends IDLE and a connection
        # attempt promptly (aioimaplib alone would wait for the timeouts).
        await until(lambda: idling.active == 1)
        await proxy.stall()
        stalled = run_until_stopped(
            ImapPoller(config(dovecot, port=proxy.port), Inbox()), stalled_stop
        )
        await asyncio.sleep(0.3)  # waiting for a greeting that never comes
        assert await stop_within(stalled, stalled_stop, 2.0) < 0.3
        assert await stop_within(task, stop, 2.0) < 1.0  # DONE unanswered: 0.5 s grace
    finally:
        stop.set()
        stalled_stop.set()
        await asyncio.wait_for(asyncio.gather(task, *[stalled] if stalled else []), 2.0)
        await proxy.close()


# 8. wrong password

# Dovecot answers a failed login after 0.5 s, and after seconds (its anvil penalty) from
# the second on: a test waiting for several failures switches the penalty off.
NO_AUTH_PENALTY = "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"


async def test_a_refused_login_raises_once_and_is_retried_forever(
    monkeypatch: pytest.MonkeyPatch, logs: list[MutableMapping[str, Any]], fast_retry: None
) -> None:
    async with custom_dovecot(monkeypatch, appended(NO_AUTH_PENALTY)) as server:
        wrong = config(server, password="not-the-secret")
        with pytest.raises(ImapLoginError, match="AUTHENTICATIONFAILED"):
            await ImapPoller(wrong, Inbox()).run_once()

        logs.clear()
        stop = asyncio.Event()
        task = run_until_stopped(ImapPoller(wrong, Inbox()), stop)
        await until(lambda: len(events(logs, "imap_error")) >= 3)
        assert not task.done()
        assert await stop_within(task, stop, 1.0) < 1.0

    errors = events(logs, "imap_error")
    assert {e["error"] for e in errors} == {"ImapLoginError"}
    assert [e["retry_in"] for e in errors[:3]] == [0.05, 0.1, 0.2]
    assert all(e["log_level"] == "error" for e in errors)
    assert "not-the-secret" not in repr(logs)
    assert "not-the-secret" not in repr(wrong)


# Servers that cannot keep the keyword, or refuse the moved mail


def acl(rules: str) -> Callable[[Path], Callable[[str], str]]:
    """Dovecot's ACL plugin with a global ACL file of ``rules``."""

    def edit(root: Path) -> Callable[[str], str]:
        (root / "acl").write_text(rules)
        return lambda conf: conf + f"mail_plugins = acl\nplugin {{\n  acl = vfile:{root}/acl\n}}\n"

    return edit


async def test_a_server_that_drops_keywords_is_refused_in_keyword_mode(
    monkeypatch: pytest.MonkeyPatch, logs: list[MutableMapping[str, Any]], fast_retry: None
) -> None:
    """Without the ACL right "w" Dovecot answers a keyword STORE with OK and stores
    nothing; PERMANENTFLAGS shows it (no \\*)."""
    async with custom_dovecot(monkeypatch, acl("* owner lrstiekx\n")) as server:
        await server.append(mail(1))
        inbox = Inbox()
        with pytest.raises(ImapConfigError, match="GATEWAY_IMAP_DONE_FOLDER"):
            await ImapPoller(config(server), inbox).run_once()
        (refused,) = events(logs, "imap_keywords_not_allowed")
        assert "GATEWAY_IMAP_DONE_FOLDER" in refused["hint"]

        logs.clear()
        stop = asyncio.Event()
        task = run_until_stopped(ImapPoller(config(server), inbox), stop)
        await asyncio.sleep(0.6)  # 0.05 + 0.1 + 0.2 + 0.2: about four attempts, not hundreds
        await stop_within(task, stop, 2.0)
        attempts = len(events(logs, "imap_error"))
        assert 2 <= attempts <= 6, attempts
        assert {e["error"] for e in events(logs, "imap_error")} == {"ImapConfigError"}
        assert inbox.calls == []

        # Moving works on the same server.
        assert await ImapPoller(config(server, done_folder="Done"), inbox).run_once() == 1
        assert inbox.done == [mail(1)]


async def test_a_mail_whose_marking_fails_is_not_handed_over_again(
    monkeypatch: pytest.MonkeyPatch, logs: list[MutableMapping[str, Any]]
) -> None:
    """The done folder refuses mail (no ACL right "i"): each mail is handed over once per
    poller (marking is tried again once per connection), until the folder's UIDVALIDITY
    changes."""
    rules = "Done owner lr\n"  # every other folder: the owner's full rights
    async with custom_dovecot(monkeypatch, acl(rules)) as server:
        await server.create_folder("Box")
        await server.create_folder("Done")
        raws = [mail(1), mail(2)]
        for raw in raws:
            await server.append(raw, folder="Box")
        inbox = Inbox()
        poller = ImapPoller(config(server, folder="Box", done_folder="Done"), inbox)

        assert await poller.run_once() == 0
        assert inbox.done == raws
        assert len(events(logs, "imap_mark_failed")) == 2

        assert await poller.run_once() == 0  # marking tried again, nothing handed over
        assert inbox.done == raws
        assert len(events(logs, "imap_mark_failed")) == 4

        stop = asyncio.Event()
        task = run_until_stopped(poller, stop)
        await until(lambda: len(events(logs, "imap_connected")) == 3)
        await until(lambda: len(events(logs, "imap_mark_failed")) == 6)
        await server.append(mail(3), folder="Box")  # a pass; the two are not handed over
        await until(lambda: len(events(logs, "imap_mark_failed")) == 7)
        await asyncio.sleep(0.2)  # another pass would show here
        await stop_within(task, stop, 2.0)
        assert inbox.done == [*raws, mail(3)]
        assert len(events(logs, "imap_mark_failed")) == 7

        # A new folder of the same name: new UIDVALIDITY, the old UIDs mean nothing.
        async with server.session() as imap:
            assert (await imap.delete("Box")).result == "OK"
            assert (await imap.create("Box")).result == "OK"
        await server.append(mail(4), folder="Box")
        assert await poller.run_once() == 0
        assert inbox.done == [*raws, mail(3), mail(4)]
        assert len(events(logs, "imap_uidvalidity_changed")) == 1
        assert await server.uids("Box") != []  # still refused by Done


# TLS


@asynccontextmanager
async def tls_dovecot(
    monkeypatch: pytest.MonkeyPatch, certificate: Certificate
) -> AsyncIterator[tuple[Dovecot, int]]:
    """Dovecot with STARTTLS on its port and implicit TLS on the second (yielded) port."""
    tls_port = free_port()

    def edit(_root: Path) -> Callable[[str], str]:
        def conf(text: str) -> str:
            cert, key = certificate.cert, certificate.key
            text = text.replace("ssl = no\n", f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n")
            listener = "inet_listener imaps {\n    port = 0\n  }"
            assert listener in text
            return text.replace(
                listener,
                f"inet_listener imaps {{\n    address = 127.0.0.1\n    port = {tls_port}\n  }}",
            )

        return conf

    async with custom_dovecot(monkeypatch, edit) as server:
        yield server, tls_port


def logins(server: Dovecot) -> list[str]:
    return [line for line in server.log().splitlines() if "Login: user=" in line]


@pytest.mark.parametrize("tls", ["ssl", "starttls"])
async def test_tls_with_a_verified_certificate(
    monkeypatch: pytest.MonkeyPatch, certificate: Certificate, tls: str
) -> None:
    async with tls_dovecot(monkeypatch, certificate) as (server, tls_port):
        await server.append(mail(1))
        context = ssl.create_default_context(cafile=str(certificate.cert))
        port = tls_port if tls == "ssl" else server.port
        inbox = Inbox()
        poller = ImapPoller(config(server, tls=tls, port=port, ssl_context=context), inbox)

        assert await poller.run_once() == 1

        assert inbox.done == [mail(1)]
        await until(lambda: len(logins(server)) == 2)  # the append's, the poller's
        assert ", TLS," in logins(server)[1], logins(server)
        assert ", TLS," not in logins(server)[0]


@pytest.mark.parametrize("tls", ["ssl", "starttls"])
async def test_tls_refuses_an_unknown_certificate(
    monkeypatch: pytest.MonkeyPatch, certificate: Certificate, tls: str
) -> None:
    async with tls_dovecot(monkeypatch, certificate) as (server, tls_port):
        await server.append(mail(1))
        port = tls_port if tls == "ssl" else server.port
        inbox = Inbox()
        with pytest.raises(ssl.SSLCertVerificationError):  # the system's CAs only
            await ImapPoller(config(server, tls=tls, port=port), inbox).run_once()
        assert inbox.calls == []
        await asyncio.sleep(0.1)  # Dovecot's log is written by another process
        assert len(logins(server)) == 1  # the append's only


async def test_starttls_is_required_when_configured(dovecot: Dovecot) -> None:
    """The fixture's Dovecot has no TLS, so no STARTTLS: the poller does not log in."""
    inbox = Inbox()
    with pytest.raises(ImapConfigError, match="STARTTLS"):
        await ImapPoller(config(dovecot, tls="starttls"), inbox).run_once()
    await asyncio.sleep(0.1)  # Dovecot's log is written by another process
    assert logins(dovecot) == []
