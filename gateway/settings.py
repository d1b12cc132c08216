"""Settings from ``config/gateway.toml`` (or ``GATEWAY_CONFIG``), overridden by ``GATEWAY_*``
environment variables. Built from mappings so tests pass plain dicts; no I/O at import."""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.domain.model import Service
from gateway.domain.periods import Window, WindowPolicy

DEFAULT_CONFIG = Path("config/gateway.toml")
SECRET_FIELDS = frozenset(
    {
        "twilio_auth_token",
        "telegram_token",
        "telegram_webhook_secret",
        "imap_password",
        "mail_relay_password",
        "smpp_password",
    }
)
# How the gateway talks TLS to a mail server: implicit TLS, STARTTLS, or plain text.
MAIL_TLS = ("ssl", "starttls", "none")


class SettingsError(ValueError):
    """A setting has a value the gateway cannot use."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite+aiosqlite:///var/gateway.db"
    # The longest the gateway waits on the database at each step (connecting, a pooled
    # connection, a statement, another process's lock), in seconds; then the message is
    # answered 503 so the provider retries it.
    database_timeout: float = 5.0
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    twilio_auth_token: str = ""
    # Sending SMS on our own initiative (review decisions) through Twilio's REST API.
    twilio_account_sid: str = ""
    twilio_from: str = ""
    twilio_api_base: str = "https://api.twilio.com"
    # The Telegram bot: off without a token. With a webhook URL (public HTTPS, ending in
    # /telegram/webhook) updates are pushed to `gateway serve`, checked by the secret;
    # without one it long-polls. The API base points the bot at another Bot API server.
    telegram_token: str = ""
    telegram_webhook_url: str = ""
    telegram_webhook_secret: str = ""
    telegram_api_base: str = "https://api.telegram.org"
    # The local hour (supplier's time zone) reminders go out on a window's first day.
    telegram_reminder_hour: int = 10
    # Dialog state shared by several gateway processes (Redis); in memory without it.
    redis_url: str = ""
    # Keys in Redis start with this (several gateways, or test runs, on one Redis).
    redis_prefix: str = "gateway"
    # The email channel. A mailbox polled over IMAP (IDLE when offered): off without a
    # host; port 0 is 993 with ssl, 143 otherwise; a processed mail is moved to the done
    # folder, or without one flagged with the keyword GatewayProcessed.
    imap_host: str = ""
    imap_port: int = 0
    imap_user: str = ""
    imap_password: str = ""
    imap_folder: str = "INBOX"
    imap_tls: str = "ssl"
    imap_done_folder: str = ""
    # Seconds between polls of a server without IDLE.
    imap_poll_interval: float = 60.0
    # Mail delivered straight to the gateway over SMTP (host:port): off when empty.
    smtp_listen: str = ""
    # The largest mail read (bytes), over SMTP and IMAP alike, and the largest attachment.
    smtp_max_bytes: int = 10 * 1024 * 1024
    mail_attachment_max_bytes: int = 5 * 1024 * 1024
    # Reports go out through this relay (port 0: 465 with ssl, 587 with starttls, else 25).
    mail_relay_host: str = ""
    mail_relay_port: int = 0
    mail_relay_user: str = ""
    mail_relay_password: str = ""
    mail_relay_tls: str = "starttls"
    mail_from: str = ""
    # The authserv-id of the server that received the mail and wrote its
    # Authentication-Results (DMARC, DKIM): set, only mail it shows genuine acts as an elder.
    email_authserv_id: str = ""
    # SMS over SMPP 3.4 from an operator or aggregator: off without a host. The short
    # number replies come from; TLS is "ssl" (TLS from the first byte) or "none"; "bind" is
    # "transceiver", or "split" for a receiver and a transmitter session.
    smpp_host: str = ""
    smpp_port: int = 2775
    smpp_system_id: str = ""
    smpp_password: str = ""
    smpp_system_type: str = ""
    smpp_address_range: str = ""
    smpp_source_addr: str = ""
    smpp_tls: str = "none"
    smpp_bind: str = "transceiver"
    # Submits per second the operator allows, and requests awaiting an answer at once.
    smpp_submits_per_second: float = 10.0
    smpp_window: int = 10
    # Seconds between enquire_link keep-alives; the longest wait for a missing part of a
    # concatenated SMS before what came is recorded.
    smpp_enquire_link_interval: float = 30.0
    smpp_part_timeout: float = 600.0
    billing_url: str = ""
    # Billing's own preliminary charge (optional): POST here, the local figure when it
    # does not answer within the timeout (seconds).
    billing_charge_url: str = ""
    billing_charge_timeout: float = 2.0
    # The outbox relay: per-request timeout, rest between passes when idle, rows per
    # claim, deliveries at once, lease on a claimed row, back-off base and cap (seconds).
    billing_timeout: float = 10.0
    relay_interval: float = 2.0
    relay_batch: int = 100
    relay_concurrency: int = 8
    relay_lease_seconds: float = 300.0
    relay_backoff_base: float = 1.0
    relay_backoff_cap: float = 300.0
    # The circuit breaker in front of billing: this many "try again" answers in a row open
    # it; it then waits from open_base doubling to open_cap seconds before one probe.
    relay_circuit_threshold: int = 5
    relay_circuit_open_base: float = 1.0
    relay_circuit_open_cap: float = 10.0
    timezone: str = "Europe/Moscow"
    log_format: str = "auto"
    log_level: str = "info"
    rate_limit_per_minute: int = 10
    # The country code of phone numbers written without one (89120000001, 9120000001):
    # SMS senders are keyed in E.164, so one phone is one sender however it is written.
    default_country_code: str = "7"
    max_body_bytes: int = 64 * 1024
    # Acceptance window: days of the month (inclusive) in the supplier's time zone, and
    # what happens outside it: "reject" or "next_period".
    window_start: int = 15
    window_end: int = 25
    window_policy: str = "next_period"
    # A reading whose consumption per day exceeds outlier_factor × the meter's average
    # daily use is held for an operator; ignored with less than outlier_min_days of history.
    outlier_factor: Decimal = Decimal(3)
    outlier_min_days: int = 60
    max_jump: Mapping[Service, Decimal] = field(
        default_factory=lambda: {
            Service.ELECTRICITY: Decimal(1000),
            Service.HOT_WATER: Decimal(30),
            Service.COLD_WATER: Decimal(30),
        }
    )

    # Made once per Settings (which is frozen): every message asks for both.
    @cached_property
    def window(self) -> Window:
        return Window(self.window_start, self.window_end, WindowPolicy(self.window_policy))

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def masked(self) -> dict[str, Any]:
        """Every setting, secrets replaced by ``***`` (for logs and ``--help`` output)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = "***" if f.name in SECRET_FIELDS and value else value
        out["database_url"] = _mask_url(self.database_url)
        out["billing_url"] = _mask_url(self.billing_url)
        out["billing_charge_url"] = _mask_url(self.billing_charge_url)
        out["redis_url"] = _mask_url(self.redis_url)
        out["outlier_factor"] = str(self.outlier_factor)
        out["max_jump"] = {service.value: str(limit) for service, limit in self.max_jump.items()}
        return out

    def __repr__(self) -> str:
        return f"Settings({self.masked()!r})"

    @classmethod
    def from_mapping(
        cls, toml: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> Settings:
        """``toml`` is the parsed file; ``env`` the process environment (``GATEWAY_*`` wins)."""
        env = env or {}
        _refuse_unknown(toml, env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "max_jump":
                continue
            raw = env.get(f"GATEWAY_{f.name.upper()}", toml.get(f.name))
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, f.type, raw)
        jump = dict(cls().max_jump)
        for service in Service:
            raw = env.get(
                f"GATEWAY_MAX_JUMP_{service.name}", toml.get("max_jump", {}).get(service.value)
            )
            if raw is not None:
                jump[service] = _jump(service, raw)
        settings = cls(**values, max_jump=jump)
        try:
            settings.zone  # noqa: B018 - validates the time zone name early
        except Exception as exc:
            raise SettingsError(f"unknown time zone {settings.timezone!r}") from exc
        try:
            settings.window  # noqa: B018 - validates the window early
        except ValueError as exc:
            raise SettingsError(f"acceptance window: {exc}") from exc
        for name in _POSITIVE:
            if not getattr(settings, name) > 0:
                raise SettingsError(f"setting {name} must be above 0: {getattr(settings, name)}")
        if not re.fullmatch(r"[1-9][0-9]{0,2}", settings.default_country_code):
            raise SettingsError(
                "setting default_country_code must be 1-3 digits, "
                f"not {settings.default_country_code!r}"
            )
        if not 0 <= settings.telegram_reminder_hour <= 23:
            raise SettingsError("setting telegram_reminder_hour must be 0-23")
        if settings.telegram_webhook_url and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", settings.telegram_webhook_secret
        ):
            raise SettingsError(
                "setting telegram_webhook_secret: a webhook needs a secret of 1-256 "
                "characters A-Z, a-z, 0-9, _ and - (Telegram's rule)"
            )
        _check_mail(settings)
        _check_smpp(settings)
        if settings.relay_backoff_cap < settings.relay_backoff_base:
            raise SettingsError("setting relay_backoff_cap must be at least relay_backoff_base")
        if settings.relay_circuit_open_cap < settings.relay_circuit_open_base:
            raise SettingsError(
                "setting relay_circuit_open_cap must be at least relay_circuit_open_base"
            )
        # A claimed batch is settled when all of it is done: its lease must outlast the
        # slowest batch, or a second relay could claim rows this one is still sending.
        rounds = -(-settings.relay_batch // settings.relay_concurrency)
        slowest = rounds * settings.billing_timeout
        if settings.relay_lease_seconds <= slowest:
            raise SettingsError(
                f"setting relay_lease_seconds ({settings.relay_lease_seconds:g}) must exceed "
                f"the longest a batch can take: ceil(relay_batch / relay_concurrency) × "
                f"billing_timeout = {slowest:g} s"
            )
        return settings

    @classmethod
    def load(cls, env: Mapping[str, str]) -> Settings:
        """The settings of a command. Paths do not depend on the directory it runs from:
        the default config file and a relative SQLite path that is not the user's own
        (the default, or the config file's) are the gateway's home's — ``GATEWAY_HOME``,
        else the checkout the gateway runs from. A path given in the environment is the
        user's, relative to where they typed it."""
        home = gateway_home(env)
        path = Path(env["GATEWAY_CONFIG"]) if "GATEWAY_CONFIG" in env else home / DEFAULT_CONFIG
        toml: dict[str, Any] = {}
        if path.exists():
            with path.open("rb") as fh:
                toml = tomllib.load(fh)
        elif "GATEWAY_CONFIG" in env:
            raise SettingsError(f"config file {path} does not exist")
        settings = cls.from_mapping(toml, env)
        if "GATEWAY_DATABASE_URL" not in env:
            settings = replace(settings, database_url=_anchored(settings.database_url, home))
        return settings


def gateway_home(env: Mapping[str, str]) -> Path:
    """``GATEWAY_HOME``; else the checkout the gateway runs from (the directory holding
    ``config/`` beside the ``gateway`` package); else the working directory (an installed
    gateway without either: set ``GATEWAY_HOME`` or absolute paths)."""
    if env.get("GATEWAY_HOME"):
        return Path(env["GATEWAY_HOME"])
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "config").is_dir() else Path.cwd()


def _anchored(url: str, home: Path) -> str:
    """A SQLite URL with a relative file path made absolute under ``home``."""
    prefix, sep, path = url.partition(":///")
    if not sep or not prefix.startswith("sqlite") or not path or path.startswith(":memory:"):
        return url
    if Path(path).is_absolute():
        return url
    return f"{prefix}:///{home / path}"


# Numbers that mean nothing at zero or below (a relay of 0 at once would never deliver).
_POSITIVE = (
    "port",
    "database_timeout",
    "billing_timeout",
    "billing_charge_timeout",
    "relay_interval",
    "relay_batch",
    "relay_concurrency",
    "relay_lease_seconds",
    "relay_backoff_base",
    "relay_backoff_cap",
    "relay_circuit_threshold",
    "relay_circuit_open_base",
    "relay_circuit_open_cap",
    "rate_limit_per_minute",
    "max_body_bytes",
    "outlier_factor",
    "imap_poll_interval",
    "smtp_max_bytes",
    "mail_attachment_max_bytes",
    "smpp_submits_per_second",
    "smpp_window",
    "smpp_enquire_link_interval",
    "smpp_part_timeout",
)


# Variables of the test harness and the benchmarks, not settings (README "Settings").
_NOT_SETTINGS = ("GATEWAY_TEST_", "GATEWAY_FUZZ_")


def _refuse_unknown(toml: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """A key of the file or a ``GATEWAY_*`` variable that is no setting is a mistake (a
    typo would otherwise leave the default in force, silently): refuse it by name."""
    names = {f.name for f in fields(Settings)}
    services = {service.value for service in Service}
    known = {f"GATEWAY_{name.upper()}" for name in names} | {"GATEWAY_CONFIG", "GATEWAY_HOME"}
    known |= {f"GATEWAY_MAX_JUMP_{service.name}" for service in Service}
    unknown = [
        name
        for name in env
        if name.startswith("GATEWAY_") and name not in known and not name.startswith(_NOT_SETTINGS)
    ]
    unknown += [f"{key} (in the config file)" for key in toml if key not in names]
    jumps = toml.get("max_jump", {})
    if isinstance(jumps, Mapping):
        unknown += [f"max_jump.{key} (in the config file)" for key in jumps if key not in services]
    if unknown:
        hints = []
        for name in unknown:
            bare = name.split(" ", 1)[0]
            pool = known if bare.startswith("GATEWAY_") else names
            close = difflib.get_close_matches(bare, pool, n=1)
            hints.append(f"{name}{f' (did you mean {close[0]}?)' if close else ''}")
        raise SettingsError("unknown setting: " + ", ".join(sorted(hints)))


def _check_smpp(settings: Settings) -> None:
    """The SMPP link's settings make sense together."""
    if settings.smpp_tls not in ("ssl", "none"):
        raise SettingsError("setting smpp_tls must be ssl or none")
    if settings.smpp_bind not in ("transceiver", "split"):
        raise SettingsError("setting smpp_bind must be transceiver or split")
    if not 0 < settings.smpp_port < 65536:
        raise SettingsError("setting smpp_port must be a port, 1-65535")
    if settings.smpp_host and not (settings.smpp_system_id and settings.smpp_source_addr):
        raise SettingsError("setting smpp_host needs smpp_system_id and smpp_source_addr")
    if len(settings.smpp_system_id) > 15 or len(settings.smpp_password) > 8:
        raise SettingsError(
            "setting smpp_system_id is at most 15 characters, smpp_password at most 8 (SMPP 3.4)"
        )


def _check_mail(settings: Settings) -> None:
    """The email channel's settings make sense together."""
    for name in ("imap_tls", "mail_relay_tls"):
        if getattr(settings, name) not in MAIL_TLS:
            raise SettingsError(f"setting {name} must be one of {', '.join(MAIL_TLS)}")
    for name in ("imap_port", "mail_relay_port"):
        if not 0 <= getattr(settings, name) < 65536:
            raise SettingsError(f"setting {name} must be a port, 1-65535 (0: the default)")
    if settings.smtp_listen and not re.fullmatch(
        r"(\[[0-9a-fA-F:.]+\]|[^:\s]+):[0-9]{1,5}", settings.smtp_listen
    ):
        raise SettingsError(f"setting smtp_listen must be host:port, not {settings.smtp_listen!r}")
    if settings.imap_host and not (settings.imap_user and settings.imap_password):
        raise SettingsError("setting imap_host needs imap_user and imap_password")
    receiving = settings.imap_host or settings.smtp_listen
    if receiving and not (settings.mail_relay_host and settings.mail_from):
        raise SettingsError(
            "receiving mail (imap_host or smtp_listen) needs mail_relay_host and mail_from: "
            "every list is answered with a report"
        )
    if settings.mail_from and "@" not in settings.mail_from:
        raise SettingsError(f"setting mail_from must be an address, not {settings.mail_from!r}")


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    try:
        if kind in ("int", int):
            return int(raw)
        if kind in ("float", float):
            return float(raw)
        if kind in ("Decimal", Decimal):
            value = Decimal(str(raw))
            if not value.is_finite():
                raise ValueError(raw)
            return value
        return str(raw)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise SettingsError(f"setting {name}: cannot use {raw!r}") from exc


def _jump(service: Service, raw: Any) -> Decimal:
    try:
        value = Decimal(str(raw))
    except ArithmeticError:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        raise SettingsError(f"max_jump {service.value}: not a non-negative number: {raw!r}")
    return value


def _mask_url(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
