"""The whole of the settings: one section per table of `settings.toml`, and where relative
paths and the packaged templates and schedules are found."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from gateway.config.console import ConsoleSettings
from gateway.config.delivery import (
    DispatchSettings,
    EmailSettings,
    FallbackSettings,
    InboundSettings,
    LimitsSettings,
    SMSSettings,
    WebhooksSettings,
)
from gateway.config.sections import (
    AuthSettings,
    DatabaseSettings,
    DirSettings,
    GatewaySettings,
    HTTPSettings,
    OperationsSettings,
    PolicySettings,
    ProfileSettings,
    QuietHoursSettings,
    RetentionSettings,
    Section,
    SweepsSettings,
    TemplatesSettings,
)

# The package's own folder: the templates and schedules shipped inside it are the fallback.
PACKAGE_DIR = Path(__file__).resolve().parent.parent


class Settings(Section):
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
    console: ConsoleSettings = ConsoleSettings()
    templates: TemplatesSettings = TemplatesSettings(dir=Path("templates"))
    schedules: DirSettings = DirSettings(dir=Path("schedules"))
    # Where relative paths are read from: the settings file's folder, else the working directory.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    # Where the values came from, for messages that name a key: the settings file (or
    # "defaults" when there is none), and the GATEWAY_* variable of each key set that way.
    source: str = Field("defaults", exclude=True)
    origins: dict[str, str] = Field(default_factory=dict, exclude=True)

    @field_validator("profiles")
    @classmethod
    def _known_profiles(cls, profiles: dict[str, ProfileSettings]) -> dict[str, ProfileSettings]:
        from gateway.protocols.profiles import PROFILES, apply_overrides, canonical_name

        renamed: dict[str, ProfileSettings] = {}
        for name, section in profiles.items():
            current = canonical_name(name)  # an old name is kept working, with a warning
            if current not in PROFILES:
                raise ValueError(f"{name}: unknown profile; known: {', '.join(PROFILES)}")
            if current in renamed:
                raise ValueError(f"{name}: set twice, under its old and its new name; keep [profiles.{current}]")
            try:
                apply_overrides(PROFILES[current], section.model_dump())
            except ValueError as exc:
                raise ValueError(f"{name}.{exc}") from None
            renamed[current] = section
        return renamed

    @property
    def settings_file(self) -> Path | None:
        return None if self.source == "defaults" else Path(self.source)

    def origin(self, key: str) -> str:
        """Where `key` ("database.url") was set: its GATEWAY_* variable, else the settings file."""
        return self.origins.get(key, self.source)

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
