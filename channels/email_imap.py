"""The email channel's IMAP transport: fetch mail from one folder, hand each message's raw
bytes to a callback, and mark it processed once the callback returned.

It knows nothing about what a mail says. The callback commits the message's outcome
before it returns, so marking afterwards is safe; if marking fails the message is fetched
again later and the callback deduplicates it (by Message-ID).

**Unprocessed** means: with ``done_folder`` set, every message in ``folder`` (each one is
moved there when processed: ``UID MOVE``, else ``UID COPY`` + ``\\Deleted`` + ``UID
EXPUNGE``, or a plain ``EXPUNGE`` without UIDPLUS); without it, every message lacking the
keyword :data:`PROCESSED_KEYWORD` (added with ``UID STORE +FLAGS.SILENT``). A server that
does not keep new keywords (``PERMANENTFLAGS`` without ``\\*``) is refused: it would answer
``OK`` and drop the keyword, and every mail would be read again and again.

Messages are handled one at a time, oldest UID first, by UID throughout. A message's size
(``RFC822.SIZE``) is fetched first; one over ``max_message_bytes`` is never loaded: only
its header is (``BODY.PEEK[HEADER]``, itself cut at ``max_message_bytes``) and it is
handed over with ``truncated=True``. ``BODY.PEEK`` leaves ``\\Seen`` alone.

If the callback raises, that message stays unmarked and the pass ends (``run_once``
re-raises the callback's exception; ``run_forever`` reconnects after a back-off and tries
it again). A message handed over whose marking failed is remembered by (UIDVALIDITY, UID)
for the poller's life: it is not handed over again; only its marking is tried again, once
per connection.

TLS: ``"ssl"`` is implicit TLS (port 993); ``"starttls"`` connects in plain text and
upgrades with ``STARTTLS`` before anything else: a server that does not offer it, or
refuses it, is not logged in to; ``"none"`` sends the password in clear and is meant for
the loopback interface or a trusted network only. Certificates are verified with
``ssl_context`` (default: the system's CAs, ``ssl.create_default_context()``).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import aioimaplib
import structlog

from gateway.domain.privacy import mask_sender

log = structlog.get_logger("channels.email_imap")

ImapTls = Literal["ssl", "starttls", "none"]
PROCESSED_KEYWORD = "GatewayProcessed"

# Back-off between connection attempts in run_forever (seconds): doubles up to the cap,
# back to the start after a successful pass.
RETRY_INITIAL = 1.0
RETRY_MAX = 60.0
# Leaving IDLE and logging out once stop is set (or after an error), each at most this long.
STOP_GRACE = 0.5

T = TypeVar("T")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_PERMANENTFLAGS = re.compile(rb"\[PERMANENTFLAGS \(([^)]*)\)")
_RESPONSE_CODE = re.compile(rb"^\[([A-Za-z-]+)")
_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
# The literal announced at the end of a FETCH line for the body section we asked for.
_SECTION_LITERAL = re.compile(rb"BODY\[(?:HEADER)?\](?:<\d+>)? \{\d+\}$")
# The same section sent as a quoted string (allowed, rarely done for bodies).
_SECTION_QUOTED = re.compile(rb'BODY\[(?:HEADER)?\](?:<\d+>)? "((?:[^"\\]|\\.)*)"')
_NEW_MAIL = re.compile(rb"^\d+ (?:EXISTS|RECENT)$")


class OnMail(Protocol):
    async def __call__(self, raw: bytes, *, truncated: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class ImapConfig:
    host: str
    user: str
    password: str = field(repr=False)
    port: int = 0  # 0: 993 for ssl, 143 otherwise
    folder: str = "INBOX"
    tls: ImapTls = "ssl"
    # "": mark processed by the keyword PROCESSED_KEYWORD; else move there (created if missing)
    done_folder: str = ""
    # Seconds between polls when the server has no IDLE; also the longest IDLE.
    poll_interval: float = 60.0
    # Leave and re-enter IDLE at least this often (RFC 2177: less than 29 minutes).
    idle_timeout: float = 25 * 60.0
    max_message_bytes: int = 10 * 1024 * 1024
    timeout: float = 30.0  # connect / each command (a FETCH: without data for this long)
    ssl_context: ssl.SSLContext | None = None  # None: ssl.create_default_context()


class ImapError(Exception):
    """The server refused a command or broke the conversation. The text never holds the
    password or a mail's content."""


class ImapLoginError(ImapError):
    """The server refused the user name and password."""


class ImapConfigError(ImapError):
    """The configuration cannot work with this server (no STARTTLS, no new keywords, a
    read-only folder): trying again only helps once someone changed something."""


class ImapConnectionLost(ImapError):
    """The connection closed under a command."""


class _Stopped(Exception):
    """The stop event was set while waiting."""


@dataclass(frozen=True, slots=True)
class _Reply:
    result: str
    lines: list[bytes]

    @property
    def ok(self) -> bool:
        return self.result == "OK"

    def code(self) -> str:
        """The response code of the tagged line (``[AUTHENTICATIONFAILED]``…), or ""."""
        if not self.lines:
            return ""
        match = _RESPONSE_CODE.match(self.lines[-1])
        return match[1].decode() if match else ""


def _reply(response: Any) -> _Reply:
    return _Reply(str(response.result), [bytes(line) for line in response.lines])


def mutf7(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 §5.1.3): ``Отправленные`` →
    ``&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-``."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode()
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _mailbox(name: str) -> str:
    """A mailbox name as an IMAP quoted string (aioimaplib sends arguments as they are)."""
    return _quoted(mutf7(name))


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _section(lines: Sequence[bytes | bytearray], uid: int) -> bytes | None:
    """The body section of ``uid`` in a FETCH response (None if the server sent none: the
    message is gone). Each ``n FETCH (...)`` response is its lines up to the next one; a
    literal arrives as a bytearray after the line announcing it. Unsolicited FETCH
    responses (flag changes of other messages) hold no section and are passed over."""
    uid_re = re.compile(rb"\bUID %d\b" % uid)
    found: bytes | None = None
    has_uid = False
    body: bytes | None = None
    expect_literal = False
    for line in lines:
        if isinstance(line, bytearray):
            if expect_literal:
                body = bytes(line)
            expect_literal = False
            continue
        if _FETCH_START.match(line):
            if has_uid and body is not None:
                found = body
            has_uid, body = False, None
        if uid_re.search(line):
            has_uid = True
        expect_literal = bool(_SECTION_LITERAL.search(line))
        quoted = _SECTION_QUOTED.search(line)
        if quoted:
            body = re.sub(rb"\\(.)", rb"\1", quoted[1])
    if has_uid and body is not None:
        found = body
    return found


class _Connection:
    """One logged-in IMAP connection with ``folder`` selected. Every command is raced
    against the connection's loss (aioimaplib leaves a command waiting forever when the
    connection drops), bounded by ``timeout`` and, unless it marks a mail, interrupted
    when ``stop`` is set."""

    def __init__(self, config: ImapConfig, serial: int, stop: asyncio.Event | None) -> None:
        self.config = config
        self.serial = serial
        self.stop = stop
        self.lost = asyncio.Event()
        self.imap: Any = None
        self.uidvalidity = 0

    def _on_lost(self, _exc: Exception | None) -> None:
        self.lost.set()

    async def call(
        self,
        aw: Awaitable[T],
        *,
        timeout: float | None = -1.0,
        interruptible: bool = True,
    ) -> T:
        """``await aw``; raises ImapConnectionLost if the connection closes first,
        TimeoutError after ``timeout`` (-1: the configured one, None: no limit), _Stopped
        when ``interruptible`` and ``stop`` is set first."""
        task = asyncio.ensure_future(aw)
        waiters = [asyncio.ensure_future(self.lost.wait())]
        if interruptible and self.stop is not None:
            waiters.append(asyncio.ensure_future(self.stop.wait()))
        limit = self.config.timeout if timeout == -1.0 else timeout
        try:
            done, _ = await asyncio.wait(
                {task, *waiters}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
            if not task.done():
                task.cancel()
        if task in done:
            return task.result()
        if waiters[0] in done:
            raise ImapConnectionLost("connection lost")
        if len(waiters) > 1 and waiters[1] in done:
            raise _Stopped
        raise TimeoutError(f"no answer from the IMAP server in {limit} s")

    def has(self, capability: str) -> bool:
        return bool(self.imap.has_capability(capability))

    async def open(self) -> None:
        """Connect and log in."""
        cfg = self.config
        port = cfg.port or (993 if cfg.tls == "ssl" else 143)
        if cfg.tls == "ssl":
            context = cfg.ssl_context or ssl.create_default_context()
            self.imap = aioimaplib.IMAP4_SSL(
                host=cfg.host, port=port, timeout=cfg.timeout, ssl_context=context
            )
        else:
            self.imap = aioimaplib.IMAP4(host=cfg.host, port=port, timeout=cfg.timeout)
        # IMAP4_SSL does not pass conn_lost_cb on; the protocol exists already.
        self.imap.protocol.conn_lost_cb = self._on_lost
        await self.call(self.imap.wait_hello_from_server())
        if cfg.tls == "starttls":
            await self._starttls()
        reply = _reply(await self.call(self.imap.login(_quoted(cfg.user), cfg.password)))
        if not reply.ok:
            raise ImapLoginError(f"login refused: {reply.result} {reply.code()}".rstrip())
        # The capabilities after login (aioimaplib's parsing of a CAPABILITY response code
        # in the LOGIN answer can leave a bracket on the last one).
        await self.call(self.imap.protocol.capability())

    async def _starttls(self) -> None:
        """aioimaplib 2.0.3 knows the STARTTLS command but has no method for it: send it,
        upgrade the transport with ``loop.start_tls`` and ask the capabilities again
        (those from before TLS are not to be trusted)."""
        cfg = self.config
        if not self.has("STARTTLS"):
            raise ImapConfigError("the server does not offer STARTTLS: not logging in")
        protocol = self.imap.protocol
        command = aioimaplib.Command(
            "STARTTLS", protocol.new_tag(), loop=protocol.loop, timeout=cfg.timeout
        )
        reply = _reply(await self.call(protocol.execute(command)))
        if not reply.ok:
            raise ImapConfigError(f"STARTTLS refused: {reply.result}: not logging in")
        if protocol.incomplete_line:
            raise ImapError("plain-text data after the STARTTLS answer: not logging in")
        context = cfg.ssl_context or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        protocol.transport = await self.call(
            loop.start_tls(
                protocol.transport,
                protocol,
                context,
                server_hostname=cfg.host,
                ssl_handshake_timeout=cfg.timeout,
            )
        )
        await self.call(protocol.capability())

    async def ensure_folder(self, name: str) -> None:
        """Create ``name`` unless it exists."""
        if await self._listed(name):
            return
        reply = _reply(await self.call(self.imap.create(_mailbox(name))))
        if reply.ok:
            log.info("imap_folder_created", folder=name)
        elif not await self._listed(name):  # created meanwhile by someone else: fine
            raise ImapError(f"cannot create folder {name!r}: {reply.result} {reply.code()}")

    async def _listed(self, name: str) -> bool:
        reply = _reply(await self.call(self.imap.list('""', _mailbox(name))))
        if not reply.ok:
            raise ImapError(f"LIST failed: {reply.result}")
        return any(
            line and b"\\noselect" not in line.lower() and b"\\nonexistent" not in line.lower()
            for line in reply.lines[:-1]
        )

    async def select(self, folder: str, *, need_keyword: bool) -> None:
        reply = _reply(await self.call(self.imap.select(_mailbox(folder))))
        if not reply.ok:
            raise ImapError(f"cannot select folder {folder!r}: {reply.result} {reply.code()}")
        text = b"\n".join(reply.lines)
        if b"[READ-ONLY]" in text.upper():
            raise ImapConfigError(f"folder {folder!r} is read-only: cannot mark mail processed")
        validity = _UIDVALIDITY.search(text)
        if validity is None:
            raise ImapError("no UIDVALIDITY in the SELECT answer")
        self.uidvalidity = int(validity[1])
        if need_keyword:
            flags = _PERMANENTFLAGS.search(text)
            # No PERMANENTFLAGS: every flag is permanent (RFC 3501 §7.1). aioimaplib
            # strips every "* " of an untagged line, so a "\*" not last shows as "\\".
            if flags is not None and not (
                b"\\*" in flags[1]
                or b"\\\\" in flags[1]
                or PROCESSED_KEYWORD.lower().encode() in flags[1].lower().split()
            ):
                log.error(
                    "imap_keywords_not_allowed",
                    folder=folder,
                    keyword=PROCESSED_KEYWORD,
                    permanent_flags=flags[1].decode(errors="replace"),
                    hint="the server does not keep new keywords: set GATEWAY_IMAP_DONE_FOLDER "
                    "to move processed mail to a folder instead",
                )
                raise ImapConfigError(
                    f"the server does not keep the keyword {PROCESSED_KEYWORD} in {folder!r}: "
                    "set GATEWAY_IMAP_DONE_FOLDER"
                )

    async def search(self, *criteria: str) -> list[int]:
        reply = _reply(await self.call(self.imap.uid_search(*criteria, charset=None)))
        if not reply.ok:
            raise ImapError(f"UID SEARCH failed: {reply.result} {reply.code()}")
        return sorted(
            {int(token) for line in reply.lines[:-1] for token in line.split() if token.isdigit()}
        )

    async def fetch(self, uid: int, items: str) -> list[bytes | bytearray]:
        # aioimaplib's FETCH timeout is one of inactivity (reset by every chunk): a large
        # mail on a slow link is not cut, a silent server is.
        response = await self.call(self.imap.uid("fetch", str(uid), items), timeout=None)
        if response.result != "OK":
            raise ImapError(f"UID FETCH {items} failed: {response.result}")
        return list(response.lines)

    async def size(self, uid: int) -> int | None:
        uid_re = re.compile(rb"\bUID %d\b" % uid)
        for line in await self.fetch(uid, "(RFC822.SIZE)"):
            if isinstance(line, bytes) and uid_re.search(line):
                match = _SIZE.search(line)
                if match:
                    return int(match[1])
        return None

    async def mark(self, *args: str) -> _Reply:
        """``UID <args>`` (STORE, COPY, MOVE, EXPUNGE) to mark a mail the callback took:
        finished even when stop is set (within ``timeout``)."""
        return _reply(await self.call(self.imap.uid(*args), interruptible=False))

    async def idle(self, period: float) -> None:
        """IDLE until the server pushes EXISTS/RECENT, ``period`` passed or stop is set."""
        imap = self.imap
        idle = await self.call(imap.idle_start(timeout=period + self.config.timeout))
        log.debug("imap_idle", folder=self.config.folder, period=period)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + period
        try:
            while (remaining := deadline - loop.time()) > 0:
                push = await self.call(imap.wait_server_push(timeout=remaining), timeout=None)
                if push == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                if any(_NEW_MAIL.match(bytes(line)) for line in push):
                    log.debug("imap_new_mail", folder=self.config.folder)
                    break
        except (TimeoutError, _Stopped):
            pass
        if self.lost.is_set():
            raise ImapConnectionLost("connection lost")
        if not idle.done():  # DONE outside IDLE would be a command named DONE
            imap.idle_done()
        stopping = self.stop is not None and self.stop.is_set()
        grace = STOP_GRACE if stopping else self.config.timeout
        reply = _reply(await self.call(idle, timeout=grace, interruptible=False))
        queue = imap.protocol.idle_queue
        while not queue.empty():  # pushes after the last look: the next pass sees them
            queue.get_nowait()
        if not reply.ok:
            raise ImapError(f"IDLE ended with {reply.result}")

    async def close(self, *, graceful: bool) -> None:
        imap = self.imap
        if imap is None:
            return
        try:
            if graceful and not self.lost.is_set() and imap.protocol.transport is not None:
                with suppress(Exception):
                    await self.call(imap.logout(), timeout=STOP_GRACE, interruptible=False)
        finally:
            transport = imap.protocol.transport
            if transport is not None:
                transport.abort()
            if imap._idle_waiter is not None:
                imap._idle_waiter.cancel()
            for task in [*imap.tasks, *imap.protocol.tasks, imap._client_task]:
                task.cancel()


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``event`` is set."""
    with suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


class ImapPoller:
    """Fetches mail from one IMAP folder and hands it to ``on_mail`` (see the module)."""

    def __init__(self, config: ImapConfig, on_mail: OnMail) -> None:
        if config.tls not in ("ssl", "starttls", "none"):
            raise ValueError(f"tls must be ssl, starttls or none, not {config.tls!r}")
        if not config.folder:
            raise ValueError("folder must not be empty")
        if config.done_folder and config.done_folder.upper() == config.folder.upper():
            raise ValueError("done_folder must not be the polled folder")
        for name in ("poll_interval", "idle_timeout", "timeout", "max_message_bytes"):
            if getattr(config, name) <= 0:
                raise ValueError(f"{name} must be positive")
        self._config = config
        self._on_mail = on_mail
        # (UIDVALIDITY, UID) handed over successfully → serial of the connection on which
        # its marking was last tried. Pruned to what the folder still holds unprocessed.
        self._handed: dict[tuple[int, int], int] = {}
        self._uidvalidity: int | None = None
        self._serial = 0
        # Whether a connection is logged in and its folder selected (metrics, readiness).
        self.connected = False
        if config.tls == "none" and not _is_loopback(config.host):
            log.warning("imap_plaintext", host=config.host, reason="tls is none")

    async def run_once(self) -> int:
        """Connect, log in, select the folder, process every unprocessed message (oldest
        UID first), log out; how many were processed (marked). Raises on connection/login
        errors, and re-raises what ``on_mail`` raised (the pass ends there)."""
        async with self._session(None) as conn:
            return await self._pass(conn, None)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: keep one connection; process what is unprocessed; then
        IDLE when the server offers it (woken by EXISTS/RECENT, after
        ``min(idle_timeout, poll_interval)``, or at once when ``stop`` is set), else sleep
        ``poll_interval``. After any error: log it, reconnect after a back-off of 1 s
        doubling to 60 s (back to 1 s after a successful pass). Never raises (but lets a
        cancellation through)."""
        retry = RETRY_INITIAL
        cfg = self._config
        period = min(cfg.idle_timeout, cfg.poll_interval)
        while not stop.is_set():
            try:
                async with self._session(stop) as conn:
                    while not stop.is_set():
                        # Until a pass finds nothing new: mail that came during a pass
                        # may have been announced in an answer already read.
                        while await self._pass(conn, stop) and not stop.is_set():
                            pass
                        retry = RETRY_INITIAL
                        if stop.is_set():
                            break
                        if conn.has("IDLE"):
                            await conn.idle(period)
                        else:
                            await _wait(stop, cfg.poll_interval)
            except _Stopped:
                break
            except Exception as exc:
                self._log_error(exc, retry)
                await _wait(stop, retry)
                retry = min(retry * 2, RETRY_MAX)
        log.info("imap_stopped", folder=cfg.folder)

    @asynccontextmanager
    async def _session(self, stop: asyncio.Event | None) -> AsyncIterator[_Connection]:
        cfg = self._config
        self._serial += 1
        conn = _Connection(cfg, self._serial, stop)
        graceful = False
        try:
            await conn.open()
            if cfg.done_folder:
                await conn.ensure_folder(cfg.done_folder)
            await conn.select(cfg.folder, need_keyword=not cfg.done_folder)
            if self._uidvalidity is not None and self._uidvalidity != conn.uidvalidity:
                log.warning(
                    "imap_uidvalidity_changed",
                    folder=cfg.folder,
                    old=self._uidvalidity,
                    new=conn.uidvalidity,
                )
                self._handed.clear()
            self._uidvalidity = conn.uidvalidity
            log.info(
                "imap_connected",
                host=cfg.host,
                tls=cfg.tls,
                user=mask_sender(cfg.user),
                folder=cfg.folder,
                idle=conn.has("IDLE"),
                mode="move" if cfg.done_folder else "keyword",
            )
            self.connected = True
            yield conn
            graceful = True
        except (asyncio.CancelledError, _Stopped):
            raise  # at once: a LOGOUT would wait for the command under way
        except Exception:
            # Log out politely if the connection still stands, unless stopping.
            graceful = stop is None or not stop.is_set()
            raise
        finally:
            self.connected = False
            await conn.close(graceful=graceful)

    async def _pass(self, conn: _Connection, stop: asyncio.Event | None) -> int:
        """Process every unprocessed message once, oldest first; how many were marked."""
        cfg = self._config
        criteria = ("ALL",) if cfg.done_folder else ("UNKEYWORD", PROCESSED_KEYWORD)
        uids = await conn.search(*criteria)
        present = set(uids)
        for key in [k for k in self._handed if k[0] != conn.uidvalidity or k[1] not in present]:
            del self._handed[key]
        marked = 0
        for uid in uids:
            if stop is not None and stop.is_set():
                break
            if await self._process(conn, uid):
                marked += 1
        return marked

    async def _process(self, conn: _Connection, uid: int) -> bool:
        """Hand message ``uid`` over and mark it; whether it was marked now."""
        cfg = self._config
        key = (conn.uidvalidity, uid)
        tried_on = self._handed.get(key)
        if tried_on is not None:
            if tried_on == conn.serial:
                return False  # handed over, marking failed on this connection already
            self._handed[key] = conn.serial
            if not await self._mark(conn, uid):
                return False
            log.info("imap_processed", uid=uid, folder=cfg.folder, remarked=True)
            return True
        size = await conn.size(uid)
        if size is None:
            log.info("imap_message_vanished", uid=uid, folder=cfg.folder)
            return False
        truncated = size > cfg.max_message_bytes
        items = f"(BODY.PEEK[HEADER]<0.{cfg.max_message_bytes}>)" if truncated else "(BODY.PEEK[])"
        raw = _section(await conn.fetch(uid, items), uid)
        if raw is None:
            log.info("imap_message_vanished", uid=uid, folder=cfg.folder)
            return False
        try:
            await self._on_mail(raw, truncated=truncated)
        except Exception as exc:
            log.warning("imap_message_failed", uid=uid, folder=cfg.folder, error=type(exc).__name__)
            raise
        self._handed[key] = conn.serial
        if not await self._mark(conn, uid):
            return False
        log.info("imap_processed", uid=uid, folder=cfg.folder, size=size, truncated=truncated)
        return True

    async def _mark(self, conn: _Connection, uid: int) -> bool:
        cfg = self._config
        steps: list[tuple[str, ...]]
        if not cfg.done_folder:
            steps = [("store", str(uid), "+FLAGS.SILENT", f"({PROCESSED_KEYWORD})")]
        elif conn.has("MOVE"):
            steps = [("move", str(uid), _mailbox(cfg.done_folder))]
        else:
            steps = [
                ("copy", str(uid), _mailbox(cfg.done_folder)),
                ("store", str(uid), "+FLAGS.SILENT", "(\\Deleted)"),
            ]
        for step in steps:
            reply = await conn.mark(*step)
            if not reply.ok:
                log.warning(
                    "imap_mark_failed",
                    uid=uid,
                    folder=cfg.folder,
                    command=step[0].upper(),
                    result=reply.result,
                    code=reply.code(),
                )
                return False
        if cfg.done_folder and not conn.has("MOVE"):
            if conn.has("UIDPLUS"):
                reply = await conn.mark("expunge", str(uid))
            else:
                reply = _reply(await conn.call(conn.imap.expunge(), interruptible=False))
            if not reply.ok:  # copied and \Deleted: gone at the next expunge
                log.warning("imap_expunge_failed", uid=uid, folder=cfg.folder)
        return True

    def _log_error(self, exc: Exception, retry: float) -> None:
        fields: dict[str, Any] = {
            "folder": self._config.folder,
            "error": type(exc).__name__,
            "retry_in": retry,
        }
        # Only texts known to hold no secret (an aioimaplib timeout's text is the command,
        # a LOGIN with its password; a callback's may quote the mail).
        if isinstance(exc, ImapError | OSError):
            fields["detail"] = str(exc)
        if isinstance(exc, ImapLoginError | ImapConfigError):
            log.error("imap_error", **fields)
        else:
            log.warning("imap_error", **fields)
