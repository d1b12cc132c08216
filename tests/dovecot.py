"""A private, throw-away Dovecot IMAP server for the email channel's integration tests.

Each ``dovecot`` fixture (function-scoped) writes a minimal ``dovecot.conf`` into a fresh
temporary directory (base_dir, state_dir, log, passwd-file and the Maildir store all live
there), starts ``dovecot -F -c <conf>`` in the foreground on 127.0.0.1 and a free port,
waits for the IMAP greeting, and on teardown terminates it and removes the directory.
The system's Dovecot configuration, service, sockets and mail are never touched::

    from tests.dovecot import dovecot_fixture  # noqa: F401  (provides the `dovecot` fixture)

    async def test_poll(dovecot: Dovecot) -> None:
        uid = await dovecot.append(b"From: a@example.org\\r\\nSubject: x\\r\\n\\r\\n12345\\r\\n")
        assert await dovecot.uids() == [uid]
        imap = await dovecot.connect()  # a logged-in aioimaplib.IMAP4
        ...

Outside pytest use ``async with start_dovecot() as server: ...``.

When the ``dovecot`` binary is missing the fixture skips ("dovecot not installed: apt-get
install dovecot-imapd"), except in CI (``CI=true``), where it fails: CI never silently skips.

Privileges (Dovecot 2.3 refuses some combinations): run as root, the master and the
internal services run as root, the login processes as ``dovenull`` (imap-login refuses to
run as root) and the mailboxes belong to ``nobody`` (Dovecot refuses uid 0 for mail
users). Run as an ordinary user, everything runs as that user.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aioimaplib
import pytest
import pytest_asyncio

HOST = "127.0.0.1"
DEFAULT_USERS: Mapping[str, str] = {"tester": "secret", "other": "secret2"}
NOT_INSTALLED = "dovecot not installed: apt-get install dovecot-imapd"
START_TIMEOUT = 10.0
START_ATTEMPTS = 5


class DovecotError(RuntimeError):
    """Dovecot could not be started (the message carries the tail of its log)."""


def dovecot_binary() -> str | None:
    """The ``dovecot`` executable (it lives in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("dovecot")
    if found:
        return found
    for candidate in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def dovecot_version(binary: str) -> tuple[int, int]:
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    match = re.match(r"\s*(\d+)\.(\d+)", out)
    if not match:
        raise DovecotError(f"cannot parse `dovecot --version`: {out!r}")
    return int(match[1]), int(match[2])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def quote(mailbox: str) -> str:
    """An IMAP quoted string (aioimaplib sends mailbox names as they are)."""
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class _Identity:
    root: bool
    internal_user: str
    internal_group: str
    login_user: str
    mail_user: str
    mail_group: str
    mail_uid: int
    mail_gid: int


def _identity() -> _Identity:
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(os.getegid()).gr_name
        return _Identity(
            False, me.pw_name, group, me.pw_name, me.pw_name, group, me.pw_uid, os.getegid()
        )
    login = "dovenull"
    try:
        pwd.getpwnam(login)
    except KeyError:
        login = "nobody"
    mail = pwd.getpwnam("nobody")
    return _Identity(
        root=True,
        internal_user="root",
        internal_group="root",
        login_user=login,
        mail_user=mail.pw_name,
        mail_group=grp.getgrgid(mail.pw_gid).gr_name,
        mail_uid=mail.pw_uid,
        mail_gid=mail.pw_gid,
    )


def _config(version: tuple[int, int], root: Path, port: int, ident: _Identity) -> str:
    # Only root may chroot(); an ordinary user runs the chrooted services unchrooted.
    chroot = "" if ident.root else "chroot ="
    no_chroot = "" if ident.root else "service anvil {\n  chroot =\n}\n"
    common = f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = test-dovecot-{port}
listen = {HOST}
ssl = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {ident.internal_user}
default_internal_group = {ident.internal_group}
default_login_user = {ident.login_user}
mail_uid = {ident.mail_user}
mail_gid = {ident.mail_group}
first_valid_uid = 1
first_valid_gid = 0
mail_fsync = never
"""
    if version >= (2, 4):
        # Untested here (Debian 12 ships 2.3): the 2.4 names of the same settings.
        return f"""\
dovecot_config_version = {version[0]}.{version[1]}.0
dovecot_storage_version = {version[0]}.{version[1]}.0
{common}protocols = imap
auth_allow_cleartext = yes
mail_driver = maildir
mail_path = {root}/mail/%{{user}}
passdb passwd-file {{
  passwd_file_path = {root}/passwd
  default_password_scheme = PLAIN
}}
userdb passwd-file {{
  passwd_file_path = {root}/passwd
}}
service imap-login {{
  {chroot}
  inet_listener imap {{
    listen = {HOST}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
{no_chroot}"""
    return f"""\
{common}protocols = imap
disable_plaintext_auth = no
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
service imap-login {{
  {chroot}
  inet_listener imap {{
    address = {HOST}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
{no_chroot}"""


@dataclass
class Dovecot:
    """A running private Dovecot; ``user``/``password`` are the first test user."""

    host: str
    port: int
    users: dict[str, str]
    root: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def user(self) -> str:
        return next(iter(self.users))

    @property
    def password(self) -> str:
        return self.users[self.user]

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def log(self) -> str:
        parts = []
        for name in ("dovecot.log", "stderr.log"):
            with contextlib.suppress(OSError):
                parts.append((self.root / name).read_text(errors="replace"))
        return "".join(parts)

    async def connect(self, user: str | None = None, timeout: float = 5.0) -> aioimaplib.IMAP4:
        """A logged-in aioimaplib client (the caller logs out)."""
        user = user or self.user
        client = aioimaplib.IMAP4(host=self.host, port=self.port, timeout=timeout)
        await client.wait_hello_from_server()
        response = await client.login(user, self.users[user])
        if response.result != "OK":
            raise DovecotError(f"login {user!r} failed: {response}\n{self.log()[-2000:]}")
        return client

    @asynccontextmanager
    async def session(self, user: str | None = None) -> AsyncIterator[aioimaplib.IMAP4]:
        client = await self.connect(user)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                await client.logout()

    async def append(
        self,
        raw: bytes,
        folder: str = "INBOX",
        *,
        flags: str | None = None,
        user: str | None = None,
    ) -> int:
        """APPEND ``raw`` to ``folder``; returns the new message's UID (from APPENDUID)."""
        async with self.session(user) as imap:
            response = await imap.append(raw, mailbox=quote(folder), flags=flags)
        _check(response, "APPEND")
        for line in response.lines:
            match = re.search(rb"\[APPENDUID \d+ (\d+)\]", bytes(line))
            if match:
                return int(match[1])
        raise DovecotError(f"no APPENDUID in {response}")

    async def uids(self, folder: str = "INBOX", *, user: str | None = None) -> list[int]:
        async with self.session(user) as imap:
            _check(await imap.select(quote(folder)), "SELECT")
            response = await imap.uid_search("ALL", charset=None)
        _check(response, "UID SEARCH")
        return sorted(int(n) for n in bytes(response.lines[0]).split())

    async def create_folder(self, name: str, *, user: str | None = None) -> None:
        async with self.session(user) as imap:
            _check(await imap.create(quote(name)), "CREATE")

    async def stop(self) -> None:
        """SIGTERM the whole process group, SIGKILL it if it lingers: the master alone takes
        ~1 s to shut its children down, and a child that is just being forked can miss the
        SIGTERM and keep the master waiting for it. Nothing needs saving (the store is
        thrown away)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.process.wait, 0.5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await asyncio.to_thread(self.process.wait, 5)


def _check(response: aioimaplib.Response, what: str) -> None:
    if response.result != "OK":
        raise DovecotError(f"{what} failed: {response}")


async def _greeting(port: int) -> bool:
    """True once an imap-login process answers with ``* OK`` (a bare TCP accept is not
    enough: the master listens before a login process can start)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        line = await asyncio.wait_for(reader.readline(), 0.5)
        return line.startswith(b"* OK")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _prepare(root: Path, users: Mapping[str, str], ident: _Identity) -> None:
    root.chmod(0o755)  # mail processes run as another user and must reach mail/ and home/
    for sub in ("mail", "home"):
        (root / sub).mkdir()
        os.chown(root / sub, ident.mail_uid, ident.mail_gid)
    lines = []
    for name, password in users.items():
        if ":" in name + password or "\n" in name + password:
            raise ValueError("test user names and passwords must not contain ':' or newlines")
        # user:password:uid:gid:(gecos):home:(shell):extra — uid/gid fall back to mail_uid/gid.
        lines.append(f"{name}:{{PLAIN}}{password}::::{root}/home/{name}::\n")
    (root / "passwd").write_text("".join(lines))


@asynccontextmanager
async def start_dovecot(users: Mapping[str, str] | None = None) -> AsyncIterator[Dovecot]:
    binary = dovecot_binary()
    if binary is None:
        raise DovecotError(NOT_INSTALLED)
    version = dovecot_version(binary)
    ident = _identity()
    users = dict(users or DEFAULT_USERS)
    root = Path(tempfile.mkdtemp(prefix="test-dovecot-"))
    server: Dovecot | None = None
    try:
        _prepare(root, users, ident)
        for attempt in range(1, START_ATTEMPTS + 1):
            port = free_port()
            conf = root / "dovecot.conf"
            conf.write_text(_config(version, root, port, ident))
            (root / "dovecot.log").unlink(missing_ok=True)  # the log of this attempt only
            with (root / "stderr.log").open("wb") as stderr:
                process = subprocess.Popen(
                    [binary, "-F", "-c", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                    start_new_session=True,
                )
            server = Dovecot(HOST, port, users, root, process)
            deadline = time.monotonic() + START_TIMEOUT
            while process.poll() is None and time.monotonic() < deadline:
                if await _greeting(port):
                    break
                if "Fatal:" in server.log():
                    break  # a refused setting: Dovecot would only retry, throttled
                await asyncio.sleep(0.02)
            else:
                log = server.log()
                await server.stop()
                server = None
                if "in use" in log and attempt < START_ATTEMPTS:
                    continue  # another process took the port between probe and bind
                raise DovecotError(f"dovecot did not start on {HOST}:{port}:\n{log[-4000:]}")
            break
        assert server is not None
        yield server
    finally:
        if server is not None:
            await server.stop()
        shutil.rmtree(root, ignore_errors=True)


def require_dovecot() -> None:
    """Skip the test when Dovecot is missing, or fail it in CI (``CI=true``)."""
    if dovecot_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{NOT_INSTALLED} (CI=true: not skipping)")
        pytest.skip(NOT_INSTALLED)


@pytest_asyncio.fixture(name="dovecot")
async def dovecot_fixture() -> AsyncIterator[Dovecot]:
    """A fresh private Dovecot per test (users ``tester``/``secret``, ``other``/``secret2``)."""
    require_dovecot()
    async with start_dovecot() as server:
        yield server
