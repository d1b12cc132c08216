"""nginx in front of ``gateway serve``, as deployed.

The site under test is ``deploy/nginx/gateway.conf`` itself, the whole file: the test
substitutes only what must differ on a test machine (the ports, a self-signed certificate
for ``localhost``, the upstream's port, the log and webroot directories) and asserts that
every one of those strings is still in the file, so a change to the shipped config is
tested, and a change that breaks the substitution fails loudly instead of testing
something else. (Copying its location blocks into a test config would leave the
server-level settings — body limit, proxy headers, timeouts, TLS — untested, and they are
what matters.)

nginx runs in the foreground (``-g 'daemon off;'``) with ``-p``/``-c`` pointing into a
private directory holding its config, certificate, pid file, logs and temporary files;
the system's nginx, its service and /etc/nginx are never touched. It runs unprivileged:
as the current user, or as ``nobody`` when the tests run as root. The gateway is a real
``gateway serve`` process on a SQLite database made by ``gateway db upgrade`` and
``gateway import`` (the registry of tests/conftest.py), exactly as the systemd unit does.

Requests are signed the way Twilio signs them: for the URL the client used, nginx's
``https://localhost:<port>/sms/twilio``, which is therefore GATEWAY_PUBLIC_URL. nginx's
access log (the config's ``meter_gateway`` format) tells whether a request reached the
gateway (``upstream=127.0.0.1:<port>``) or was answered by nginx (``upstream=-``); each
answer's ``X-Request-Id`` finds its line.

Without the ``nginx`` binary the tests skip (``apt-get install nginx``), except in CI
(``CI=true``), where they fail.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from tests.conftest import ACCOUNTS, METERS, TARIFFS
from tests.e2e.conftest import TOKEN, sms_reply
from tests.tls import Certificate

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "deploy" / "nginx" / "gateway.conf"
NOT_INSTALLED = "nginx is not installed: apt-get install nginx"
FORM = "application/x-www-form-urlencoded"
# GATEWAY_MAX_BODY_BYTES's default, and nginx's `client_max_body_size 64k`.
LIMIT = 65536
ACCEPTED = (
    "Принято, ЛС 1234567890: день 12345, ночь 6789. "
    "Предварительно к оплате 3443,05 ₽ (с долгом 100,00 ₽)."
)


def nginx_binary() -> str | None:
    """The ``nginx`` executable (in /usr/sbin, often not on an ordinary user's PATH)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    return shutil.which("nginx", path=path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render_site(prefix: Path, https_port: int, http_port: int, gateway_port: int) -> str:
    """deploy/nginx/gateway.conf with the machine-specific strings replaced."""
    text = SITE.read_text(encoding="utf-8")
    live = "/etc/letsencrypt/live/readings.example.ru"
    replacements = [
        (f"{live}/fullchain.pem;", f"{prefix}/tls/cert.pem;"),
        (f"{live}/privkey.pem;", f"{prefix}/tls/key.pem;"),
        ("server_name readings.example.ru;", "server_name localhost;"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        # Loopback IPv4 only: a test machine may have no IPv6.
        ("listen [::]:443 ssl;", ""),
        ("listen [::]:80;", ""),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{gateway_port};"),
        ("/var/log/nginx/", f"{prefix}/logs/"),
        ("root /var/www/letsencrypt;", f"root {prefix}/acme;"),
    ]
    for old, new in replacements:
        assert old in text, f"{SITE} no longer contains {old!r}: update this test"
        text = text.replace(old, new)
    return text


MAIN_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{
    worker_connections 64;
}}
http {{
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    access_log {prefix}/logs/access.log;
    include {prefix}/gateway.conf;
}}
"""


class Nginx:
    """A private nginx in the foreground; ``start`` returns once it accepts connections."""

    def __init__(self, binary: str, certificate: Certificate, gateway_port: int) -> None:
        self.binary = binary
        self.prefix = Path(tempfile.mkdtemp(prefix="gw-nginx-"))
        self.https_port = self.http_port = 0
        self.gateway_port = gateway_port
        self.process: subprocess.Popen[bytes] | None = None
        for sub in ("logs", "temp", "tls", "acme/.well-known/acme-challenge"):
            (self.prefix / sub).mkdir(parents=True)
        shutil.copyfile(certificate.cert, self.prefix / "tls" / "cert.pem")
        shutil.copyfile(certificate.key, self.prefix / "tls" / "key.pem")
        (self.prefix / "tls" / "key.pem").chmod(0o600)
        (self.prefix / "nginx.conf").write_text(MAIN_CONF.format(prefix=self.prefix))

    @property
    def access_log(self) -> Path:
        return self.prefix / "logs" / "gateway.access.log"

    @property
    def error_log(self) -> str:
        path = self.prefix / "logs" / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, attempts: int = 3) -> None:
        for attempt in range(1, attempts + 1):
            self.https_port, self.http_port = _free_port(), _free_port()
            site = render_site(self.prefix, self.https_port, self.http_port, self.gateway_port)
            (self.prefix / "gateway.conf").write_text(site, encoding="utf-8")
            self._own()
            if self._started():
                return
            if "in use" not in self.error_log or attempt == attempts:
                raise RuntimeError(f"nginx did not start:\n{self.error_log[-4000:]}")

    def _own(self) -> None:
        """As root, hand the directory to ``nobody``: nginx runs as that user."""
        if os.geteuid() != 0:
            return
        nobody = pwd.getpwnam("nobody")
        for path in [self.prefix, *self.prefix.rglob("*")]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)

    def _started(self) -> bool:
        user: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        self.process = subprocess.Popen(
            [
                self.binary,
                "-p", f"{self.prefix}/",
                "-c", str(self.prefix / "nginx.conf"),
                "-e", str(self.prefix / "logs" / "error.log"),
                "-g", "daemon off;",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **user,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def request_id(self) -> str:
        ids = self.headers.get_all("X-Request-Id") or []
        assert len(ids) == 1, f"expected one X-Request-Id, got {ids}"
        return ids[0]


@dataclass
class Stack:
    nginx: Nginx
    gateway_port: int
    database: Path
    context: ssl.SSLContext

    @property
    def public(self) -> str:
        """The base URL clients (Twilio) use: nginx's, over HTTPS."""
        return f"https://localhost:{self.nginx.https_port}"

    @property
    def upstream(self) -> str:
        return f"127.0.0.1:{self.gateway_port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        tls: bool = True,
    ) -> Answer:
        connection: http.client.HTTPConnection
        if tls:
            connection = http.client.HTTPSConnection(
                "localhost", self.nginx.https_port, context=self.context, timeout=15
            )
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.nginx.http_port, timeout=15)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            connection.close()

    def sms(
        self, form: dict[str, str], path: str = "/sms/twilio", signed_for: str | None = None
    ) -> Answer:
        """POST the form, signed for ``signed_for`` (by default the URL requested)."""
        url = signed_for or self.public + path
        signature = RequestValidator(TOKEN).compute_signature(url, form)
        return self.request(
            "POST",
            path,
            urlencode(form).encode(),
            {"Content-Type": FORM, "X-Twilio-Signature": signature},
        )

    def log_line(self, request_id: str) -> str:
        """nginx's access log line of the request (written as the request ends)."""
        deadline = time.monotonic() + 5
        while True:
            text = self.nginx.access_log.read_text(encoding="utf-8", errors="replace")
            for line in text.splitlines():
                if f" rid={request_id} " in line:
                    return line
            assert time.monotonic() < deadline, f"no log line for {request_id}:\n{text}"
            time.sleep(0.05)

    def upstream_of(self, answer: Answer) -> str:
        match = re.search(r" upstream=(\S+) ", self.log_line(answer.request_id))
        assert match is not None
        return match.group(1)

    def stored(self, sid: str) -> tuple[str, str | None, int] | None:
        """The message's status, account and readings, or None when not stored."""
        with contextlib.closing(sqlite3.connect(self.database)) as db:
            row = db.execute(
                "SELECT id, status, account FROM messages WHERE external_id = ?", (sid,)
            ).fetchone()
            if row is None:
                return None
            (count,) = db.execute(
                "SELECT count(*) FROM readings WHERE message_id = ?", (row[0],)
            ).fetchone()
        return row[1], row[2], count


def _gateway_env(database: Path, public_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_CONFIG": str(REPO / "config" / "gateway.toml"),
            "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_PUBLIC_URL": public_url,
            "GATEWAY_TWILIO_AUTH_TOKEN": TOKEN,
            "GATEWAY_LOG_FORMAT": "json",
            # A process runs on today's date: a window of the whole month keeps the
            # replies the same on any day.
            "GATEWAY_WINDOW_START": "1",
            "GATEWAY_WINDOW_END": "31",
        }
    )
    return env


def _cli(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"gateway {' '.join(args)}: {result.stderr}"


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway serve exited:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"gateway serve did not answer:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    binary = nginx_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{NOT_INSTALLED} (CI=true: not skipping)")
        pytest.skip(NOT_INSTALLED)
    certificate: Certificate = request.getfixturevalue("certificate")
    folder = tmp_path_factory.mktemp("nginx_gateway")
    database = folder / "gateway.db"
    gateway_port = _free_port()
    nginx: Nginx | None = None
    gateway: subprocess.Popen[bytes] | None = None
    try:
        nginx = Nginx(binary, certificate, gateway_port)
        # nginx first: the gateway must know nginx's URL, and nginx needs no upstream yet.
        nginx.start()
        public = f"https://localhost:{nginx.https_port}"
        env = _gateway_env(database, public, gateway_port)
        _cli(env, "db", "upgrade")
        files = []
        for kind, text in (("accounts", ACCOUNTS), ("meters", METERS), ("tariffs", TARIFFS)):
            (folder / f"{kind}.csv").write_text(text, encoding="utf-8")
            files.append(f"--{kind}={folder / f'{kind}.csv'}")
        _cli(env, "import", *files)
        log = folder / "gateway.log"
        with log.open("wb") as stderr:
            gateway = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve"],
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        _wait_healthy(f"http://127.0.0.1:{gateway_port}/healthz", gateway, log)
        yield Stack(nginx, gateway_port, database, certificate.client_context())
    finally:
        if gateway is not None:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(30)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait(5)
        if nginx is not None:
            nginx.close()


def _form(sid: str, sender: str, body: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+79000000000",
        "Body": body,
        "NumMedia": "0",
    }


def _sized(form: dict[str, str], size: int) -> dict[str, str]:
    """``form`` with a padding parameter making its encoded body exactly ``size`` bytes."""
    base = len(urlencode({**form, "Padding": ""}))
    padded = {**form, "Padding": "a" * (size - base)}
    assert len(urlencode(padded)) == size
    return padded


def test_a_signed_sms_through_nginx_is_answered_and_stored(stack: Stack) -> None:
    answer = stack.sms(_form("SMnginx0001", "+79120000001", "1234567890 12345 6789"))

    assert answer.status == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/xml")
    assert sms_reply(answer.text) == ACCEPTED
    assert stack.stored("SMnginx0001") == ("accepted", "1234567890", 2)
    assert stack.upstream_of(answer) == stack.upstream
    assert " upstream_status=200 " in stack.log_line(answer.request_id)


def test_the_query_string_twilio_signed_reaches_the_gateway_unchanged(stack: Stack) -> None:
    path = "/sms/twilio?site=north&rc=3"

    answer = stack.sms(_form("SMnginx0002", "+79120000003", "1234567892 121 99"), path=path)

    assert answer.status == 200, answer.text
    assert (sms_reply(answer.text) or "").startswith("Принято, ЛС 1234567892")
    assert stack.stored("SMnginx0002") == ("accepted", "1234567892", 2)


def test_a_request_signed_for_another_url_is_refused_403_by_the_gateway(stack: Stack) -> None:
    """Signed for the address the gateway itself listens on, not the one the client used:
    the gateway checks against GATEWAY_PUBLIC_URL, whatever nginx forwards."""
    form = _form("SMnginx0003", "+79120000001", "1234567890 12346 6790")

    answer = stack.sms(form, signed_for=f"http://{stack.upstream}/sms/twilio")

    assert answer.status == 403
    assert answer.text == "invalid signature"
    assert stack.stored("SMnginx0003") is None
    assert stack.upstream_of(answer) == stack.upstream


def test_health_and_readiness_are_answered_by_the_gateway_through_nginx(stack: Stack) -> None:
    health = stack.request("GET", "/healthz")
    ready = stack.request("GET", "/readyz")

    assert health.status == 200
    assert json.loads(health.body)["status"] == "ok"
    assert ready.status == 200
    assert json.loads(ready.body)["status"] == "ready"
    assert stack.upstream_of(health) == stack.upstream
    assert stack.upstream_of(ready) == stack.upstream


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/metrics"),
        ("GET", "/healthz/more"),
        ("POST", "/sms/twilio/"),
        ("POST", "/sms/twilio2"),
        ("GET", "/favicon.ico"),
    ],
)
def test_any_other_path_is_404_from_nginx_and_never_reaches_the_gateway(
    stack: Stack, method: str, path: str
) -> None:
    answer = stack.request(method, path, b"" if method == "POST" else None)

    assert answer.status == 404
    assert "<center>nginx</center>" in answer.text  # nginx's own page, not the gateway's
    assert stack.upstream_of(answer) == "-"


def test_a_body_over_64_kib_is_413_from_nginx_and_one_of_64_kib_is_served(
    stack: Stack,
) -> None:
    over = _sized(_form("SMnginx0004", "+79120000002", "1234567891 4600"), LIMIT + 1)
    at_limit = _sized(_form("SMnginx0005", "+79120000002", "1234567891 4600"), LIMIT)

    refused = stack.sms(over)
    served = stack.sms(at_limit)

    assert refused.status == 413
    assert "<center>nginx</center>" in refused.text
    assert stack.upstream_of(refused) == "-"
    assert stack.stored("SMnginx0004") is None
    assert served.status == 200, served.text
    assert (sms_reply(served.text) or "").startswith("Принято, ЛС 1234567891: ЭЭ 4600.")
    assert stack.upstream_of(served) == stack.upstream


def test_plain_http_serves_the_acme_challenge_and_redirects_the_rest(stack: Stack) -> None:
    challenge = stack.nginx.prefix / "acme" / ".well-known" / "acme-challenge" / "token1"
    challenge.write_text("token1.thumbprint")
    challenge.chmod(0o644)

    acme = stack.request("GET", "/.well-known/acme-challenge/token1", tls=False)
    other = stack.request("POST", "/sms/twilio", b"", tls=False)

    assert acme.status == 200
    assert acme.text == "token1.thumbprint"
    assert other.status == 301
    assert other.headers["Location"] == "https://127.0.0.1/sms/twilio"
