"""Settings: the defaults of DESIGN.md, overrides, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings


def load(env=None, **kwargs):
    return load_settings(environ=env or {}, discover=False, **kwargs)


def test_defaults_are_the_documented_ones():
    s = load()
    assert s.database.url == "sqlite+aiosqlite:///var/gateway.db"
    assert (s.http.host, s.http.port, s.http.public_url, s.http.max_body) == (
        "127.0.0.1", 8080, "http://127.0.0.1:8080", 1024 * 1024)
    assert (s.gateway.timezone, s.gateway.default_locale, s.gateway.default_profile) == (
        "America/Sao_Paulo", "pt-BR", "br-sac")
    assert s.email.transport == "maildir" and s.email.maildir == Path("var/mail")
    smtp = s.email.smtp
    assert (smtp.host, smtp.port, smtp.starttls, smtp.tls, smtp.pool_size, smtp.timeout) == (
        "localhost", 587, True, False, 4, 30.0)
    assert s.sms.transport == "file" and s.sms.file == Path("var/sms.jsonl") and s.sms.allowed_countries == ["BR"]
    assert s.sms.twilio.api_base_url == "https://api.twilio.com"
    d = s.dispatch
    assert (d.workers, d.lease, d.retry_base, d.retry_max, d.give_up_after, d.unknown_retry_after) == (
        8, 60, 5, 300, 86400, 600)
    assert s.auth.bootstrap_key_file is None
    assert s.templates.dir == Path("templates") and s.schedules.dir == Path("schedules")


def test_file_then_environment(tmp_path):
    file = tmp_path / "settings.toml"
    file.write_text('[email]\ntransport = "smtp"\nfrom = "a@example.com"\n[email.smtp]\nport = 2525\n')
    s = load({"GATEWAY_EMAIL__SMTP__PORT": "2626", "GATEWAY_SMS__ALLOWED_COUNTRIES": "BR,pt",
              "GATEWAY_TEST_DATABASE_URL": "ignored", "GATEWAY_CONFIG_X": "ignored"}, path=file)
    assert s.email.smtp.port == 2626 and s.email.transport == "smtp"
    assert s.sms.allowed_countries == ["BR", "PT"]
    assert s.base_dir == tmp_path
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path}/var/gateway.db"  # relative to the file


def test_gateway_config_names_the_file(tmp_path):
    file = tmp_path / "x.toml"
    file.write_text("[http]\nport = 9999\n")
    assert load({"GATEWAY_CONFIG": str(file)}).http.port == 9999


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GATEWAY_EMAIL__SMTP__PORT": "abc"}, "settings: email.smtp.port: "),
        ({"GATEWAY_DISPATCH__LEASE": "soon"}, "settings: dispatch.lease: "),
        ({"GATEWAY_DISPATCH__LEASE": "0s"}, "settings: dispatch.lease: expected a duration of at least 1s"),
        ({"GATEWAY_DISPATCH__LEASE": "500ms"}, "settings: dispatch.lease: expected a duration of at least 1s"),
        ({"GATEWAY_DISPATCH__POLL_INTERVAL": "0s"}, "settings: dispatch.poll_interval: expected a duration longer"),
        ({"GATEWAY_SMS__TWILIO__TIMEOUT": "0s"}, "settings: sms.twilio.timeout: expected a duration longer"),
        ({"GATEWAY_WHATSAPP__TWILIO__TIMEOUT": "0"}, "settings: whatsapp.twilio.timeout: expected a duration longer"),
        ({"GATEWAY_HTTP__MAX_BODY": "big"}, "settings: http.max_body: "),
        ({"GATEWAY_EMAIL__TRANSPORT": "smtp"}, "settings: email.from: required"),
        ({"GATEWAY_SMS__TRANSPORT": "twilio"}, "settings: sms.twilio.account_sid: required"),
        ({"GATEWAY_GATEWAY__TIMEZONE": "Mars/Olympus"}, "settings: gateway.timezone: "),
        ({"GATEWAY_DATABSE__URL": "x"}, "settings: databse: not a known setting [GATEWAY_DATABSE__URL]"),
        ({"GATEWAY_EMAIL__TRANSPORT": "pigeon"}, "settings: email.transport: "),
    ],
)
def test_wrong_values_stop_with_one_line_naming_the_key(env, expected):
    with pytest.raises(ConfigError) as caught:
        load(env)
    message = str(caught.value)
    assert message.startswith(expected) and "\n" not in message


def test_secrets_are_not_echoed_in_errors():
    with pytest.raises(ConfigError) as caught:
        load({"GATEWAY_EMAIL__SMTP__PASSWORD": "hunter2", "GATEWAY_EMAIL__SMTP__PORT": "x"})
    assert "hunter2" not in str(caught.value)
    s = load({"GATEWAY_EMAIL__SMTP__PASSWORD": "hunter2"})
    assert "hunter2" not in repr(s) and s.email.smtp.password.get_secret_value() == "hunter2"


def test_a_bad_file_is_one_line(tmp_path):
    file = tmp_path / "settings.toml"
    file.write_text("[http\nport = 1")
    with pytest.raises(ConfigError) as caught:
        load(path=file)
    assert "not valid TOML" in str(caught.value) and "\n" not in str(caught.value)
