"""Typed settings: `settings.toml` (or `--config`, or `GATEWAY_CONFIG`), then `GATEWAY_*` overrides.

Environment names are `GATEWAY_<SECTION>__<KEY>`, nested sections adding `__`
(`GATEWAY_EMAIL__SMTP__PORT=2525`). Names without `__` (`GATEWAY_CONFIG`,
`GATEWAY_TEST_DATABASE_URL`) are not settings and are ignored. Anything wrong stops
start-up with a `ConfigError` whose message is one line naming the key.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

from babel import Locale, UnknownLocaleError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "GATEWAY_"
PACKAGE_DIR = Path(__file__).resolve().parent


class ConfigError(Exception):
    """A setting is wrong; the message is one line naming the key."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2, "GB": 1000**3, "GiB": 1024**3}


def parse_duration(value: Any) -> float:
    """'60s', '5m', '24h', '250ms', '2d' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30s', '5m' or '24h'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as '30s', '5m' or '24h', got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("expected a duration that is not negative")
    return seconds


def parse_size(value: Any) -> int:
    """'1MiB', '512KiB', '2MB' or a number of bytes -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '1MiB'")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"expected a size such as '1MiB' or '512KiB', got {value!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///var/gateway.db"
    # SQLite: NORMAL survives a process crash; FULL also survives power loss (see README).
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"

    @field_validator("url")
    @classmethod
    def _known_driver(cls, url: str) -> str:
        if not (url.startswith("sqlite+aiosqlite://") or url.startswith("postgresql+asyncpg://")):
            raise ValueError("expected 'sqlite+aiosqlite:///PATH' or 'postgresql+asyncpg://...'")
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class HTTPSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    max_body: Size = 1024 * 1024

    @field_validator("public_url")
    @classmethod
    def _absolute(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("expected an absolute http(s) URL")
        return url.rstrip("/")


class GatewaySettings(_Section):
    timezone: str = "America/Sao_Paulo"
    default_locale: str = "pt-BR"
    default_profile: str = "br-sac"
    # The number the gateway issues: the date part (in `timezone`), a zero-padded
    # sequence, then a Damm check digit. Digits only, 6 to 30 of them.
    number_format: str = "{date:%Y%m%d}{seq:08d}"
    check_digit: Literal["damm", "luhn"] = "damm"
    company_name: str = "Atendimento ao Cliente"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"expected an IANA time zone such as 'America/Sao_Paulo', got {name!r}") from None
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
        if not sample.isdigit() or not 5 <= len(sample) <= 29:
            raise ValueError("expected a format that gives 5 to 29 digits (the check digit makes 6 to 30)")
        return fmt


class SMTPSettings(_Section):
    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    tls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    pool_size: int = Field(4, ge=1, le=256)
    timeout: Duration = 30.0

    @model_validator(mode="after")
    def _one_tls(self) -> SMTPSettings:
        if self.tls and self.starttls:
            raise ValueError("tls (implicit TLS, port 465) and starttls cannot both be true")
        return self


class EmailSettings(_Section):
    transport: Literal["smtp", "maildir"] = "maildir"
    from_: str | None = Field(None, alias="from")
    reply_to: str | None = None
    maildir: Path = Path("var/mail")
    smtp: SMTPSettings = SMTPSettings()

    @model_validator(mode="after")
    def _sender(self) -> EmailSettings:
        if self.transport == "smtp" and not self.from_:
            raise ValueError("from: required when transport is 'smtp'")
        return self

    @property
    def sender(self) -> str:
        return self.from_ or "protocol-gateway@localhost"


class TwilioSettings(_Section):
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    from_: str | None = Field(None, alias="from")
    messaging_service_sid: str | None = None
    api_base_url: str = "https://api.twilio.com"
    timeout: Duration = 15.0


class SMSSettings(_Section):
    transport: Literal["twilio", "file"] = "file"
    file: Path = Path("var/sms.jsonl")
    allowed_countries: list[str] = ["BR"]
    twilio: TwilioSettings = TwilioSettings()
    # Write what GSM-7 lacks without it (ç->c, ã->a): about half the segments for Portuguese,
    # for operators who prefer cost to accents. Applied when a message is rendered.
    transliterate: bool = False
    # `templates check` warns when a template's longest sample SMS takes more segments.
    max_segments: int = Field(3, ge=1, le=10)

    @field_validator("allowed_countries", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v.strip()]
        return [str(v).strip().upper() for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _twilio_complete(self) -> SMSSettings:
        if self.transport == "twilio":
            t = self.twilio
            if not t.account_sid:
                raise ValueError("twilio.account_sid: required when transport is 'twilio'")
            if not t.auth_token:
                raise ValueError("twilio.auth_token: required when transport is 'twilio'")
            if not (t.from_ or t.messaging_service_sid):
                raise ValueError("twilio.from: 'from' or 'messaging_service_sid' is required when transport is 'twilio'")
        return self


class DispatchSettings(_Section):
    workers: int = Field(8, ge=1, le=1024)
    lease: Duration = 60.0
    retry_base: Duration = 5.0
    retry_max: Duration = 300.0
    give_up_after: Duration = 86400.0
    unknown_retry_after: Duration = 600.0
    poll_interval: Duration = 1.0
    shutdown_timeout: Duration = 10.0


def parse_rate(value: Any) -> tuple[int, float]:
    """'5/1h' -> (5, 3600.0): at most 5 in each window of an hour."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), parse_duration(value[1])
    count, sep, window = str(value).partition("/")
    if not sep or not count.strip().isdigit():
        raise ValueError(f"expected a rate such as '5/1h' (5 per hour), got {value!r}")
    seconds = parse_duration(window)
    if seconds <= 0:
        raise ValueError("expected a window longer than zero")
    return int(count), seconds


Rate = Annotated[tuple[int, float], BeforeValidator(parse_rate)]


class LimitsSettings(_Section):
    """Against abuse: counted in the database, so they hold across processes."""

    resend_per_protocol: Rate = (5, 3600.0)
    resend_per_contact: Rate = (10, 86400.0)
    inbound_per_phone: Rate = (10, 3600.0)


class InboundSettings(_Section):
    # Brazilian mobile numbers are recycled: only protocols this recent are shown to a phone.
    window: Duration = 90 * 86400.0
    max_listed: int = Field(5, ge=1, le=20)


class FallbackSettings(_Section):
    """An SMS that failed, or got no delivery receipt in time, goes again by email when there is one."""

    enabled: bool = True
    no_receipt_after: Duration = 1800.0
    check_interval: Duration = 60.0
    # SMS longer than this many segments go as a short SMS plus the full text by email.
    max_sms_segments: int = Field(4, ge=1, le=10)
    # Templates whose SMS must not fall back to email (configurable per template).
    disabled_templates: list[str] = []


class WebhooksSettings(_Section):
    """Delivery statuses posted to upstream as signed CloudEvents."""

    url: str | None = None
    secret: SecretStr | None = None
    events: list[Literal["notification.sent", "notification.delivered", "notification.failed"]] = [
        "notification.sent", "notification.delivered", "notification.failed"]
    timeout: Duration = 10.0

    @model_validator(mode="after")
    def _secret_with_url(self) -> WebhooksSettings:
        if self.url and not self.secret:
            raise ValueError("secret: required when url is set (the HMAC key that signs each post)")
        return self


class ProfileSettings(_Section):
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

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str | None) -> str | None:
        return None if name is None else GatewaySettings._zone(name)


class PolicySettings(_Section):
    # Protocols opened before this date (São Paulo) default to br-sac-2008 when the default is br-sac.
    br_sac_from: date = date(2022, 10, 3)


class RetentionSettings(_Section):
    action: Literal["notify", "anonymize"] = "notify"
    grace: Duration = 30 * 86400.0          # after the retention ends, before anonymizing
    abandoned_after: Duration = 365 * 86400.0  # an unresolved protocol this long without events
    vacuum: bool = True                      # SQLite: VACUUM after anonymizing


class QuietHoursSettings(_Section):
    """Proactive consumer reminders go only between these local times."""

    enabled: bool = True
    send_after: time = time(8, 0)
    send_before: time = time(20, 0)

    @model_validator(mode="after")
    def _window(self) -> QuietHoursSettings:
        if self.send_after == self.send_before:
            raise ValueError("send_before: must differ from send_after")
        return self


class SweepsSettings(_Section):
    """The scheduled sweeps (files in `schedules.dir`): off on a replica that should not run them."""

    enabled: bool = True
    run_at_start: bool = True   # each sweep once at start-up: catches up after downtime


class OperationsSettings(_Section):
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
        from gateway.contacts import ContactError, normalize_email

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


class AuthSettings(_Section):
    bootstrap_key_file: Path | None = None


class DirSettings(_Section):
    dir: Path


class TemplatesSettings(DirSettings):
    # Files are looked at on each render and reloaded when they change (a broken edit is not
    # served: the last good version is); false reads each file once per process.
    reload: bool = True


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    http: HTTPSettings = HTTPSettings()
    gateway: GatewaySettings = GatewaySettings()
    email: EmailSettings = EmailSettings()
    sms: SMSSettings = SMSSettings()
    dispatch: DispatchSettings = DispatchSettings()
    auth: AuthSettings = AuthSettings()
    profiles: dict[str, ProfileSettings] = {}
    policy: PolicySettings = PolicySettings()
    retention: RetentionSettings = RetentionSettings()
    quiet_hours: QuietHoursSettings = QuietHoursSettings()
    operations: OperationsSettings = OperationsSettings()
    sweeps: SweepsSettings = SweepsSettings()
    limits: LimitsSettings = LimitsSettings()
    inbound: InboundSettings = InboundSettings()
    fallback: FallbackSettings = FallbackSettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    templates: TemplatesSettings = TemplatesSettings(dir=Path("templates"))
    schedules: DirSettings = DirSettings(dir=Path("schedules"))
    # Where relative paths are read from: the settings file's folder, else the working directory.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @field_validator("profiles")
    @classmethod
    def _known_profiles(cls, profiles: dict[str, ProfileSettings]) -> dict[str, ProfileSettings]:
        from gateway.policy import PROFILES, apply_overrides

        for name, section in profiles.items():
            if name not in PROFILES:
                raise ValueError(f"{name}: unknown profile; known: {', '.join(PROFILES)}")
            try:
                apply_overrides(PROFILES[name], section.model_dump())
            except ValueError as exc:
                raise ValueError(f"{name}.{exc}") from None
        return profiles

    def path(self, value: Path) -> Path:
        """A path from the settings, made absolute against `base_dir`."""
        return value if value.is_absolute() else self.base_dir / value

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path resolved against `base_dir`."""
        url = self.database.url
        prefix = "sqlite+aiosqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.base_dir / url[len(prefix):])
        return url

    def dir_with_fallback(self, configured: Path, packaged: str) -> Path:
        """The configured folder if it exists, else the defaults shipped inside the package."""
        folder = self.path(configured)
        return folder if folder.is_dir() else PACKAGE_DIR / packaged

    @property
    def templates_dir(self) -> Path:
        return self.dir_with_fallback(self.templates.dir, "templates")

    @property
    def schedules_dir(self) -> Path:
        return self.dir_with_fallback(self.schedules.dir, "schedules")


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """GATEWAY_A__B__C=v -> {"a": {"b": {"c": "v"}}}, and where each key came from."""
    tree: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = tuple(p.lower() for p in name[len(ENV_PREFIX):].split("__"))
        if not all(parts):
            raise ConfigError(f"settings: {name}: expected GATEWAY_<SECTION>__<KEY>")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"settings: {'.'.join(parts)}: conflicts with another GATEWAY_* variable")
        node[parts[-1]] = value
        origins[parts] = name
    return tree, origins


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: dict[str, Any], origins: dict[tuple[str, ...], str], source: str) -> str:
    loc = tuple(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    # A section's own check names its key first ("from: required ..."): fold it into the path.
    inner = re.match(r"^([a-z_][a-z0-9_.-]*): (.*)$", message)
    if inner:
        loc, message = loc + tuple(inner.group(1).split(".")), inner.group(2)
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        message = "not a known setting"
    elif error["type"] == "missing":
        message = "required"
    elif "input" in error and not isinstance(error["input"], dict) and "got " not in message:
        shown = "***" if any(s in key for s in ("password", "token", "secret")) else error["input"]
        if isinstance(shown, str):  # a URL may carry a password: postgresql+asyncpg://user:PASSWORD@host/db
            shown = re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", shown)
        message = f"{message} (got {shown!r})"
    where = next((name for parts, name in origins.items() if parts[: len(loc)] == loc), source)
    return f"settings: {key}: {message} [{where}]"


def load_settings(
    path: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    discover: bool = True,
) -> Settings:
    """Read the settings file (if any), apply environment and explicit overrides, validate.

    With `discover`, a `settings.toml` in the working directory is read when no file is named.
    """
    environ = os.environ if environ is None else environ
    if path is None and environ.get("GATEWAY_CONFIG"):
        path = environ["GATEWAY_CONFIG"]
    data: dict[str, Any] = {}
    source = "defaults"
    base_dir = Path.cwd()
    if path is None and discover and Path("settings.toml").is_file():
        path = "settings.toml"
    if path is not None:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"settings: cannot read {file}: no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"settings: {file}: not valid TOML: {exc}") from None
        source = str(file)
        base_dir = file.resolve().parent
    env_tree, origins = _env_overrides(environ)
    data = _merge(data, env_tree)
    if overrides:
        data = _merge(data, dict(overrides))
    try:
        return Settings.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ConfigError(_describe(first, origins, source)) from None
