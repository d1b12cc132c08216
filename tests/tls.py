"""A self-signed certificate for TLS tests (mail servers on loopback), made with the
``openssl`` command line once per test session."""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """The default context (host names checked) trusting this certificate only."""
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=self.cert)
        return context


def self_signed(folder: Path) -> Certificate:
    """A certificate for ``localhost`` and ``127.0.0.1`` in ``folder`` (cert.pem, key.pem;
    the key readable by others: Dovecot's config process reads it as another user)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-subj", "/CN=localhost", "-days", "2",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    key.chmod(0o644)
    return Certificate(cert, key)
