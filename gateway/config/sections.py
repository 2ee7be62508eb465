"""The sections of the settings that are not about delivery: database, HTTP, the gateway's own
(time zone, locale, numbers), profiles, retention, quiet hours, sweeps, operations, folders."""

from __future__ import annotations

import json
import re
import zoneinfo
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.config.units import Duration, Size


class Section(BaseModel):
    """A table of settings: unknown keys refused, values frozen once read."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class DatabaseSettings(Section):
    url: str = "sqlite+aiosqlite:///var/gateway.db"
    # SQLite: NORMAL survives a process crash; FULL also survives power loss (see README).
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    # PostgreSQL: a host that never answers stops start-up (and fails a request) after this.
    connect_timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _known_driver(cls, url: str) -> str:
        if not (url.startswith("sqlite+aiosqlite://") or url.startswith("postgresql+asyncpg://")):
            raise ValueError("expected 'sqlite+aiosqlite:///PATH' or 'postgresql+asyncpg://...'")
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class HTTPSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # The base URL Twilio calls back (signatures, status callbacks). Unset, it follows host
    # and port, so changing the port alone cannot leave callbacks pointing at the old one.
    public_url: str = "http://127.0.0.1:8080"
    max_body: Size = 1024 * 1024
    # An idle connection, or one whose request head has not arrived, is closed after this.
    keepalive_timeout: Duration = 75.0
    # A request body must arrive whole within this (a client trickling bytes holds a connection).
    read_timeout: Duration = 30.0
    # /readyz is 503 when the disk under the SQLite database or a file transport has less free.
    readyz_min_free: Size = 64 * 1024 * 1024

    @field_validator("keepalive_timeout", "read_timeout")
    @classmethod
    def _positive(cls, seconds: float) -> float:
        if seconds <= 0:
            raise ValueError("expected a duration longer than zero (a connection must end some time)")
        return seconds

    @model_validator(mode="before")
    @classmethod
    def _public_url_follows_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("public_url"):
            host = str(data.get("host") or "127.0.0.1")
            if host in ("0.0.0.0", "::"):  # every interface: this machine answers on loopback too
                host = "127.0.0.1"
            if ":" in host:
                host = f"[{host}]"
            data = {**data, "public_url": f"http://{host}:{data.get('port', 8080)}"}
        return data

    @property
    def public_url_is_loopback(self) -> bool:
        host = urlsplit(self.public_url).hostname or ""
        return host == "localhost" or host.startswith("127.") or host == "::1"

    @field_validator("public_url")
    @classmethod
    def _absolute(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("expected an absolute http(s) URL")
        return url.rstrip("/")


class GatewaySettings(Section):
    timezone: str = "America/Sao_Paulo"
    default_locale: str = "pt-BR"
    default_profile: str = "br-sac"
    # The number the gateway issues: the date part (in `timezone`), a zero-padded
    # sequence, then a Damm check digit. Digits only, 6 to 30 of them.
    number_format: str = "{date:%Y%m%d}{seq:08d}"
    check_digit: Literal["damm", "luhn", "none"] = "damm"
    company_name: str = "Atendimento ao Cliente"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"expected an IANA time zone such as 'America/Sao_Paulo', got {name!r}") from None
        return name

    @field_validator("default_profile")
    @classmethod
    def _profile(cls, name: str) -> str:
        from gateway.protocols.profiles import PROFILES, canonical_name

        if canonical_name(name) not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
        return name

    @field_validator("default_locale")
    @classmethod
    def _locale(cls, name: str) -> str:
        try:
            Locale.parse(name, sep="-")
        except (UnknownLocaleError, ValueError):
            raise ValueError(f"expected a locale such as 'pt-BR', got {name!r}") from None
        return name

    @field_validator("number_format")
    @classmethod
    def _format(cls, fmt: str) -> str:
        from datetime import date

        try:
            sample = fmt.format(date=date(2026, 1, 1), seq=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"expected a format using only {{date:...}} and {{seq:...}}: {exc}") from None
        if not sample.isascii() or not sample.isdigit():
            raise ValueError("expected a format that gives digits only (literal digits, {date:...}, {seq:...})")
        return fmt

    @model_validator(mode="after")
    def _number_length(self) -> GatewaySettings:
        # Checked here, where check_digit is known: without one the format alone makes the number.
        length = len(self.number_format.format(date=date(2026, 1, 1), seq=1))
        if self.check_digit == "none" and not 6 <= length <= 30:
            raise ValueError("number_format: expected a format that gives 6 to 30 digits (check_digit is 'none')")
        if self.check_digit != "none" and not 5 <= length <= 29:
            raise ValueError("number_format: expected a format that gives 5 to 29 digits (the check digit makes 6 to 30)")
        return self


class CategorySettings(Section):
    """`[profiles.<name>.categories.<category>]`: that category's own answer clock."""

    answer_days: int | None = Field(None, ge=1, le=365)
    business_days: bool | None = None


class CompanySettings(Section):
    """Who the consumer is dealing with, and where they can reach the company: a message names
    only what is set here (DESIGN, "What a consumer message may say")."""

    # A name, or one per locale ({pt-BR = "...", es = "..."}); unset: gateway.company_name.
    name: str | dict[str, str] | None = None
    sms_number: str | None = None      # E.164, the number consumers text (inbound SMS)
    support_email: str | None = None   # where a message may tell the consumer to write; unset: email.reply_to
    website: str | None = None

    @field_validator("name")
    @classmethod
    def _names(cls, name: str | dict[str, str] | None) -> str | dict[str, str] | None:
        if isinstance(name, dict):
            if not name:
                raise ValueError("expected a name, or a table of locale to name")
            for locale, value in name.items():
                GatewaySettings._locale(locale)
                if not value.strip():
                    raise ValueError(f"{locale}: expected a name, got an empty one")
        elif name is not None and not name.strip():
            raise ValueError("expected a name, got an empty one")
        return name

    @field_validator("sms_number")
    @classmethod
    def _e164(cls, number: str | None) -> str | None:
        if number is None:
            return None
        import phonenumbers

        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or not number.startswith("+") or not phonenumbers.is_valid_number(parsed):
            raise ValueError(f"expected a phone number in E.164 such as '+551140004000', got {number!r}")
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    @field_validator("support_email")
    @classmethod
    def _address(cls, address: str | None) -> str | None:
        if address is None:
            return None
        from gateway.protocols.contacts import ContactError, normalize_email

        try:
            return normalize_email(address.strip())
        except ContactError as exc:
            raise ValueError(f"expected an email address: {exc}") from None

    @field_validator("website")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^/\s]+\S*$", url):
            raise ValueError(f"expected an absolute http(s) URL, got {url!r}")
        return url


class ProfileSettings(Section):
    """`[profiles.<name>]`: overrides of one jurisdiction profile (see gateway/policy.py)."""

    answer_days: int | None = Field(None, ge=1, le=365)
    business_days: bool | None = None
    timezone: str | None = None
    subdiv: str | None = None
    extra_holidays: list[date | str] = []
    history_days: int | None = Field(None, ge=0, le=365)
    history_hours: int | None = Field(None, ge=1, le=24 * 365)
    retention_years: int | None = Field(None, ge=0, le=100)
    retention_days: int | None = Field(None, ge=0, le=36500)
    categories: dict[str, CategorySettings] = {}
    max_extensions: int | None = Field(None, ge=0, le=10)
    notify_within: Duration | None = Field(None, gt=0)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str | None) -> str | None:
        return None if name is None else GatewaySettings._zone(name)


class PolicySettings(Section):
    # Protocols opened before this date (São Paulo) default to br-sac-2008 when the default is br-sac.
    br_sac_from: date = date(2022, 10, 3)


class RetentionSettings(Section):
    action: Literal["notify", "anonymize"] = "notify"
    grace: Duration = 30 * 86400.0          # after the retention ends, before anonymizing
    abandoned_after: Duration = 365 * 86400.0  # an unresolved protocol this long without events
    # SQLite: VACUUM after anonymizing, to give the freed space back (the erasure needs no VACUUM:
    # secure_delete zeroes what is freed and the WAL is truncated after every anonymizing run).
    vacuum: bool = False


class QuietHoursSettings(Section):
    """Proactive consumer reminders go only between these local times."""

    enabled: bool = True
    send_after: time = time(8, 0)
    send_before: time = time(20, 0)

    @model_validator(mode="after")
    def _window(self) -> QuietHoursSettings:
        if self.send_after == self.send_before:
            raise ValueError("send_before: must differ from send_after")
        return self


class SweepsSettings(Section):
    """The scheduled sweeps (files in `schedules.dir`): off on a replica that should not run them."""

    enabled: bool = True
    run_at_start: bool = True   # each sweep once at start-up: catches up after downtime


class OperationsSettings(Section):
    """Who gets operations messages (alerts, digests, retention notices), in which language and zone."""

    emails: list[str] = []
    locale: str | None = None
    timezone: str | None = None

    @field_validator("emails", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v.strip()]
        return value

    @field_validator("emails")
    @classmethod
    def _addresses(cls, emails: list[str]) -> list[str]:
        from gateway.protocols.contacts import ContactError, normalize_email

        try:
            return [normalize_email(e.strip()) for e in emails]
        except ContactError as exc:
            raise ValueError(f"expected email addresses: {exc}") from None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str | None) -> str | None:
        return None if name is None else GatewaySettings._zone(name)

    @field_validator("locale")
    @classmethod
    def _locale(cls, name: str | None) -> str | None:
        return None if name is None else GatewaySettings._locale(name)


class AuthSettings(Section):
    bootstrap_key_file: Path | None = None


class DirSettings(Section):
    dir: Path


class TemplatesSettings(DirSettings):
    # Files are looked at for each event rendered and reloaded when they change (a broken edit
    # is not served: the last good version is); false reads each file once per process.
    reload: bool = True
