"""gateway.settings.Settings.from_mapping: defaults, TOML, GATEWAY_* env, masking (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.domain.model import Service
from gateway.settings import Settings, SettingsError

D = Decimal
DB_URL = "postgresql+asyncpg://gateway:s3cr3t-pw@db.example:5432/gateway"
TOKEN = "twilio-tok-0123456789abcdef"


def test_empty_mappings_give_the_documented_defaults() -> None:
    s = Settings.from_mapping({}, {})
    assert (
        s.database_url,
        s.host,
        s.port,
        s.public_url,
        s.twilio_auth_token,
        s.billing_url,
        s.timezone,
        s.log_format,
        s.log_level,
        s.rate_limit_per_minute,
        s.max_body_bytes,
    ) == (
        "sqlite+aiosqlite:///var/gateway.db",
        "127.0.0.1",
        8080,
        "http://127.0.0.1:8080",
        "",
        "",
        "Europe/Moscow",
        "auto",
        "info",
        10,
        65536,
    )
    assert s.max_jump == {
        Service.ELECTRICITY: D(1000),
        Service.HOT_WATER: D(30),
        Service.COLD_WATER: D(30),
    }


def test_env_may_be_omitted() -> None:
    assert Settings.from_mapping({}) == Settings()


def test_toml_values_are_used() -> None:
    s = Settings.from_mapping(
        {"host": "0.0.0.0", "port": 9000, "timezone": "Asia/Yekaterinburg", "log_level": "debug"},
        {},
    )
    assert (s.host, s.port, s.timezone, s.log_level) == (
        "0.0.0.0",
        9000,
        "Asia/Yekaterinburg",
        "debug",
    )


def test_gateway_env_wins_over_toml() -> None:
    s = Settings.from_mapping(
        {"port": 9000, "billing_url": "http://toml.example"},
        {"GATEWAY_PORT": "9100", "GATEWAY_BILLING_URL": "http://env.example"},
    )
    assert (s.port, s.billing_url) == (9100, "http://env.example")


def test_toml_value_stays_when_env_does_not_set_it() -> None:
    s = Settings.from_mapping({"port": 9000}, {"GATEWAY_HOST": "0.0.0.0"})
    assert (s.host, s.port) == ("0.0.0.0", 9000)


def test_env_without_gateway_prefix_is_ignored() -> None:
    s = Settings.from_mapping({}, {"PORT": "1", "HOST": "x", "gateway_port": "2"})
    assert (s.host, s.port) == ("127.0.0.1", 8080)


def test_max_jump_from_toml_table() -> None:
    s = Settings.from_mapping({"max_jump": {"electricity": 1500, "hot_water": "25.5"}}, {})
    assert s.max_jump == {
        Service.ELECTRICITY: D(1500),
        Service.HOT_WATER: D("25.5"),
        Service.COLD_WATER: D(30),
    }


def test_gateway_max_jump_electricity_env_wins_over_toml() -> None:
    s = Settings.from_mapping(
        {"max_jump": {"electricity": 1500}}, {"GATEWAY_MAX_JUMP_ELECTRICITY": "2000.5"}
    )
    assert s.max_jump[Service.ELECTRICITY] == D("2000.5")


@pytest.mark.parametrize(
    ("variable", "service"),
    [
        ("GATEWAY_MAX_JUMP_ELECTRICITY", Service.ELECTRICITY),
        ("GATEWAY_MAX_JUMP_HOT_WATER", Service.HOT_WATER),
        ("GATEWAY_MAX_JUMP_COLD_WATER", Service.COLD_WATER),
    ],
)
def test_max_jump_env_variable_per_service(variable: str, service: Service) -> None:
    s = Settings.from_mapping({}, {variable: "42"})
    assert s.max_jump[service] == D(42)
    assert all(v == Settings().max_jump[k] for k, v in s.max_jump.items() if k is not service)


def test_max_jump_values_are_decimals() -> None:
    s = Settings.from_mapping({"max_jump": {"hot_water": 25.5}}, {})
    assert s.max_jump[Service.HOT_WATER] == D("25.5")
    assert isinstance(s.max_jump[Service.HOT_WATER], Decimal)


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("PORT", "9000", 9000),
        ("RATE_LIMIT_PER_MINUTE", "3", 3),
        ("MAX_BODY_BYTES", " 1024 ", 1024),
    ],
)
def test_int_settings_are_coerced_from_env_strings(name: str, raw: str, value: int) -> None:
    s = Settings.from_mapping({}, {f"GATEWAY_{name}": raw})
    result = getattr(s, name.lower())
    assert result == value
    assert type(result) is int


@pytest.mark.parametrize(
    ("name", "raw"),
    [("PORT", "eighty"), ("PORT", ""), ("PORT", "8080.5"), ("RATE_LIMIT_PER_MINUTE", "ten")],
)
def test_bad_int_raises_settings_error_naming_the_setting(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name.lower()):
        Settings.from_mapping({}, {f"GATEWAY_{name}": raw})


def test_bad_int_in_toml_raises_settings_error() -> None:
    with pytest.raises(SettingsError, match="port"):
        Settings.from_mapping({"port": "eighty"}, {})


def test_bad_max_jump_raises_settings_error() -> None:
    """A max jump that is not a number is a setting error, like a bad int."""
    with pytest.raises(SettingsError):
        Settings.from_mapping({}, {"GATEWAY_MAX_JUMP_ELECTRICITY": "a lot"})


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


@pytest.mark.parametrize("zone", ["Europe/Nowhere", "", "MSK+3", "../etc/passwd"])
def test_unknown_time_zone_raises_settings_error(zone: str) -> None:
    with pytest.raises(SettingsError, match="unknown time zone"):
        Settings.from_mapping({"timezone": zone}, {})


def test_unknown_time_zone_from_env_raises_settings_error() -> None:
    with pytest.raises(SettingsError, match="Mars/Olympus"):
        Settings.from_mapping({}, {"GATEWAY_TIMEZONE": "Mars/Olympus"})


def test_zone_is_the_zoneinfo_of_the_timezone() -> None:
    assert Settings.from_mapping({"timezone": "Asia/Vladivostok"}).zone.key == "Asia/Vladivostok"


# --- secrets --------------------------------------------------------------------------------


def _secret_settings() -> Settings:
    return Settings.from_mapping({"database_url": DB_URL}, {"GATEWAY_TWILIO_AUTH_TOKEN": TOKEN})


def test_masked_hides_the_twilio_auth_token() -> None:
    assert _secret_settings().masked()["twilio_auth_token"] == "***"


def test_masked_shows_an_empty_token_as_empty() -> None:
    assert Settings().masked()["twilio_auth_token"] == ""


def test_masked_hides_the_database_password_but_keeps_user_and_host() -> None:
    masked = _secret_settings().masked()["database_url"]
    assert masked == "postgresql+asyncpg://gateway:***@db.example:5432/gateway"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("sqlite+aiosqlite:///var/gateway.db", "sqlite+aiosqlite:///var/gateway.db"),
        ("postgresql://gw:p@ss@db/gw", "postgresql://gw:***@db/gw"),
        ("postgresql://gw@db/gw", "postgresql://gw@db/gw"),
        ("postgresql://gw:pw@db/gw", "postgresql://gw:***@db/gw"),
    ],
)
def test_masked_database_url(url: str, masked: str) -> None:
    assert Settings(database_url=url).masked()["database_url"] == masked


def test_masked_keeps_the_real_values_in_the_settings() -> None:
    s = _secret_settings()
    s.masked()
    assert (s.twilio_auth_token, s.database_url) == (TOKEN, DB_URL)


def test_masked_lists_every_setting() -> None:
    assert set(Settings().masked()) == {f.name for f in dataclasses.fields(Settings)}
    assert {"database_url", "twilio_auth_token", "max_jump"} <= set(Settings().masked())


@pytest.mark.parametrize("render", [repr, str])
def test_repr_and_str_do_not_contain_secrets(render: Callable[[object], str]) -> None:
    text = render(_secret_settings())
    assert TOKEN not in text
    assert "s3cr3t-pw" not in text
    assert "gateway:***@db.example" in text


def test_masked_hides_a_password_in_the_billing_url() -> None:
    """GATEWAY_BILLING_URL with basic-auth credentials must not leak into logs."""
    s = Settings.from_mapping(
        {}, {"GATEWAY_BILLING_URL": "https://bridge:b1ll-pw@billing.example/api"}
    )
    assert s.masked()["billing_url"] == "https://bridge:***@billing.example/api"
    assert "b1ll-pw" not in repr(s)


def test_outlier_factor_may_be_a_fraction() -> None:
    settings = Settings.from_mapping({}, {"GATEWAY_OUTLIER_FACTOR": "2.5"})
    assert settings.outlier_factor == Decimal("2.5")


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("OUTLIER_FACTOR", "0"),
        ("OUTLIER_FACTOR", "NaN"),
        ("OUTLIER_FACTOR", "lots"),
        ("RELAY_CONCURRENCY", "0"),
        ("RELAY_BATCH", "-1"),
        ("RELAY_LEASE_SECONDS", "0"),
        ("BILLING_TIMEOUT", "0"),
        ("BILLING_CHARGE_TIMEOUT", "-2"),
    ],
)
def test_a_number_that_cannot_work_is_refused_by_name(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name.lower()):
        Settings.from_mapping({}, {f"GATEWAY_{name}": raw})


def test_a_backoff_cap_below_its_base_is_refused() -> None:
    with pytest.raises(SettingsError, match="relay_backoff_cap"):
        Settings.from_mapping({"relay_backoff_base": 10, "relay_backoff_cap": 5})


def test_a_lease_a_batch_could_outlast_is_refused() -> None:
    """100 rows, 8 at a time, 10 s each at worst: 130 s, so a 120 s lease could lapse."""
    with pytest.raises(SettingsError, match=r"relay_lease_seconds \(120\) must exceed .* 130 s"):
        Settings.from_mapping({"relay_lease_seconds": 120})
    assert Settings.from_mapping({"relay_lease_seconds": 131}).relay_lease_seconds == 131


def test_masked_settings_show_decimals_plainly_for_the_log() -> None:
    masked = Settings.from_mapping({"outlier_factor": "2.5"}).masked()
    assert masked["outlier_factor"] == "2.5"
    assert masked["max_jump"] == {"electricity": "1000", "hot_water": "30", "cold_water": "30"}


def test_database_timeout_defaults_to_five_seconds_and_is_read_from_the_environment() -> None:
    assert Settings.from_mapping({}, {}).database_timeout == 5.0
    assert Settings.from_mapping({}, {"GATEWAY_DATABASE_TIMEOUT": "1.5"}).database_timeout == 1.5


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_database_timeout_of_zero_or_below_stops_the_start(value: str) -> None:
    with pytest.raises(SettingsError, match="database_timeout"):
        Settings.from_mapping({}, {"GATEWAY_DATABASE_TIMEOUT": value})


@pytest.mark.parametrize("code", ["7", "44", "380"])
def test_default_country_code_takes_one_to_three_digits(code: str) -> None:
    settings = Settings.from_mapping({"default_country_code": code}, {})
    assert settings.default_country_code == code


@pytest.mark.parametrize("code", ["", "+7", "0", "1234", "٧", "x"])
def test_a_country_code_that_is_not_one_to_three_digits_stops_the_start(code: str) -> None:
    with pytest.raises(SettingsError, match="default_country_code"):
        Settings.from_mapping({}, {"GATEWAY_DEFAULT_COUNTRY_CODE": code})


def test_relay_circuit_settings_have_their_defaults_and_are_read_from_the_environment() -> None:
    default = Settings.from_mapping({}, {})
    assert (
        default.relay_circuit_threshold,
        default.relay_circuit_open_base,
        default.relay_circuit_open_cap,
    ) == (5, 1.0, 10.0)
    env = {"GATEWAY_RELAY_CIRCUIT_THRESHOLD": "3", "GATEWAY_RELAY_CIRCUIT_OPEN_CAP": "30"}
    s = Settings.from_mapping({}, env)
    assert (s.relay_circuit_threshold, s.relay_circuit_open_cap) == (3, 30.0)


def test_a_circuit_open_cap_below_its_base_stops_the_start() -> None:
    with pytest.raises(SettingsError, match="relay_circuit_open_cap"):
        Settings.from_mapping({"relay_circuit_open_base": 20, "relay_circuit_open_cap": 10}, {})


# --- the email channel -------------------------------------------------------------------

MAIL = {
    "GATEWAY_IMAP_HOST": "imap.example.org",
    "GATEWAY_IMAP_USER": "pokazaniya",
    "GATEWAY_IMAP_PASSWORD": "imap-secret",
    "GATEWAY_MAIL_RELAY_HOST": "smtp.example.org",
    "GATEWAY_MAIL_RELAY_PASSWORD": "relay-secret",
    "GATEWAY_MAIL_FROM": "Приём показаний <pokazaniya@example.org>",
}


def test_a_mailbox_from_the_environment() -> None:
    settings = Settings.from_mapping({}, {**MAIL, "GATEWAY_SMTP_LISTEN": "127.0.0.1:2525"})
    assert settings.imap_host == "imap.example.org" and settings.imap_folder == "INBOX"
    assert settings.imap_tls == "ssl" and settings.mail_relay_tls == "starttls"
    assert settings.smtp_listen == "127.0.0.1:2525"
    assert settings.smtp_max_bytes == 10 * 1024 * 1024


def test_mail_passwords_are_masked() -> None:
    masked = Settings.from_mapping({}, MAIL).masked()
    assert masked["imap_password"] == "***" and masked["mail_relay_password"] == "***"
    shown = repr(Settings.from_mapping({}, MAIL))
    assert "imap-secret" not in shown and "relay-secret" not in shown


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"GATEWAY_MAIL_RELAY_HOST": ""}, "mail_relay_host"),
        ({"GATEWAY_MAIL_FROM": ""}, "mail_from"),
        ({"GATEWAY_MAIL_FROM": "pokazaniya"}, "mail_from"),
        ({"GATEWAY_IMAP_PASSWORD": ""}, "imap_password"),
        ({"GATEWAY_IMAP_TLS": "tls"}, "imap_tls"),
        ({"GATEWAY_MAIL_RELAY_TLS": "yes"}, "mail_relay_tls"),
        ({"GATEWAY_IMAP_PORT": "70000"}, "imap_port"),
        ({"GATEWAY_SMTP_LISTEN": "2525"}, "smtp_listen"),
        ({"GATEWAY_SMTP_MAX_BYTES": "0"}, "smtp_max_bytes"),
    ],
)
def test_mail_settings_that_cannot_work_stop_the_start(change: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_mapping({}, {**MAIL, **change})


def test_smtp_alone_needs_a_relay_too() -> None:
    with pytest.raises(SettingsError, match="mail_relay_host and mail_from"):
        Settings.from_mapping({}, {"GATEWAY_SMTP_LISTEN": "127.0.0.1:2525"})
    assert Settings.from_mapping({}, {"GATEWAY_SMTP_LISTEN": "[::1]:2525", **MAIL}).smtp_listen


# --- strict: a setting that does not exist is an error naming it -------------------------


def test_an_unknown_variable_is_refused_by_name_with_the_closest_setting() -> None:
    with pytest.raises(
        SettingsError, match=r"GATEWAY_DATABSE_URL \(did you mean GATEWAY_DATABASE_URL\?\)"
    ):
        Settings.from_mapping({}, {"GATEWAY_DATABSE_URL": "sqlite+aiosqlite:///x.db"})


def test_an_unknown_key_of_the_config_file_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match=r"relay_intervall \(in the config file\)"):
        Settings.from_mapping({"relay_intervall": 2})
    with pytest.raises(SettingsError, match=r"max_jump.gas"):
        Settings.from_mapping({"max_jump": {"gas": 5}})


def test_other_programs_variables_and_the_test_harness_are_left_alone() -> None:
    env = {
        "PATH": "/usr/bin",
        "GATEWAY_CONFIG": "config/gateway.toml",
        "GATEWAY_TEST_POSTGRES_URL": "postgresql+asyncpg://x",
        "GATEWAY_FUZZ_EXAMPLES": "10",
        "GATEWAY_MAX_JUMP_HOT_WATER": "40",
    }
    assert Settings.from_mapping({}, env).max_jump[Service.HOT_WATER] == D(40)


# --- paths do not depend on the directory a command runs from ----------------------------


def test_the_default_config_and_database_are_the_homes_wherever_the_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "gateway.toml").write_text(
        'database_url = "sqlite+aiosqlite:///var/site.db"\nport = 9090\n', encoding="utf-8"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    settings = Settings.load({"GATEWAY_HOME": str(home)})

    assert settings.port == 9090  # the home's config file, not ./config/gateway.toml
    assert settings.database_url == f"sqlite+aiosqlite:///{home / 'var' / 'site.db'}"


def test_a_path_the_user_gives_stays_theirs(tmp_path: Path) -> None:
    env = {"GATEWAY_HOME": str(tmp_path), "GATEWAY_DATABASE_URL": "sqlite+aiosqlite:///mine.db"}
    assert Settings.load(env).database_url == "sqlite+aiosqlite:///mine.db"
    absolute = {"GATEWAY_HOME": str(tmp_path)}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "gateway.toml").write_text(
        'database_url = "sqlite+aiosqlite:////srv/gw.db"\n', encoding="utf-8"
    )
    assert Settings.load(absolute).database_url == "sqlite+aiosqlite:////srv/gw.db"
    pg = {"GATEWAY_HOME": str(tmp_path), "GATEWAY_DATABASE_URL": "postgresql+asyncpg://h/db"}
    assert Settings.load(pg).database_url == "postgresql+asyncpg://h/db"
