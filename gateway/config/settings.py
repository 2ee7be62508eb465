"""The whole of the settings: one section per table of `settings.toml`, and where relative
paths and the packaged templates and schedules are found."""

from __future__ import annotations

from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from gateway.config.console import ConsoleSettings
from gateway.config.consumer_page import ConsumerPageSettings
from gateway.config.languages import reads_spanish
from gateway.config.delivery import (
    DispatchSettings,
    EmailSettings,
    FallbackSettings,
    InboundSettings,
    LimitsSettings,
    SMSSettings,
    TwilioSettings,
    WebhooksSettings,
)
from gateway.config.whatsapp import WhatsAppSettings, check_whatsapp
from gateway.config.sections import (
    AuthSettings,
    CompanySettings,
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

# What a message calls the company when nothing names it, by language.
DEFAULT_COMPANY_NAMES = {"pt": "Atendimento ao Cliente", "es": "Atención al Cliente", "en": "Customer Service",
                         "ca": "Atenció al Client", "eu": "Bezeroarentzako Arreta", "gl": "Atención á Clientela"}

# The package's own folder: the templates and schedules shipped inside it are the fallback.
PACKAGE_DIR = Path(__file__).resolve().parent.parent


class Settings(Section):
    database: DatabaseSettings = DatabaseSettings()
    http: HTTPSettings = HTTPSettings()
    gateway: GatewaySettings = GatewaySettings()
    company: CompanySettings = CompanySettings()
    email: EmailSettings = EmailSettings()
    sms: SMSSettings = SMSSettings()
    whatsapp: WhatsAppSettings = WhatsAppSettings()
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
    consumer_page: ConsumerPageSettings = ConsumerPageSettings()
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

    @model_validator(mode="after")
    def _whatsapp_account(self) -> Settings:
        check_whatsapp(self.whatsapp, self.sms.accounts[0])
        return self

    @property
    def whatsapp_accounts(self) -> list[TwilioSettings]:
        """Each WhatsApp sender as a whole Twilio account (the SMS account filling what it leaves out)."""
        return [sender.merged(self.sms.accounts[0]) for sender in self.whatsapp.senders]

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

    # What a consumer message may name (DESIGN, "What a consumer message may say").

    def company_name(self, locale: str) -> str:
        """The company's name for a locale: exact, then its language (es-ES -> es), then the
        default locale's, then gateway.company_name (kept for the settings files that use it)."""
        name = self.company.name
        if isinstance(name, str):
            return name
        if name:
            spanish = ("es",) if reads_spanish(locale) else ()  # before the default locale's name
            wanted = (locale, locale.split("-")[0], *spanish, self.gateway.default_locale)
            for key in wanted:
                found = next((v for k, v in name.items() if k.lower() == key.lower()), None)
                if found:
                    return found
        if "company_name" in self.gateway.model_fields_set:
            return self.gateway.company_name
        # Nothing set: the service's generic name in the reader's language, never Portuguese in a
        # Spanish email.
        return DEFAULT_COMPANY_NAMES.get(locale.split("-")[0].lower(), self.gateway.company_name)

    @property
    def support_email(self) -> str | None:
        """Where a message may tell the consumer to write: company.support_email, else the
        address of email.reply_to; None when neither is set (then no message names one)."""
        if self.company.support_email:
            return self.company.support_email
        return _address_of(self.email.reply_to or "") or None

    @property
    def inbound_sms_number(self) -> str | None:
        """The number consumers can text, when texting it works: company.sms_number is set and
        inbound SMS is set up (Twilio's auth token checks the webhooks). Else None."""
        if not self.company.sms_number or self.sms.twilio.auth_token is None:
            return None
        return self.company.sms_number

    @property
    def inbound_whatsapp(self) -> bool:
        """Whether the consumer can write to us on WhatsApp and be answered: Twilio's WhatsApp
        with a token that checks the webhook's signature."""
        return self.whatsapp.transport == "twilio" and all(a.auth_token for a in self.whatsapp_accounts)

    def warnings(self) -> list[tuple[str, str]]:
        """Settings that work but are probably not what the operator meant: (action, one line)."""
        found = []
        if "twilio" in (self.sms.transport, self.whatsapp.transport) and self.http.public_url_is_loopback:
            found.append(("public_url_loopback", f"http.public_url is {self.http.public_url}: Twilio cannot reach it, "
                          "so no delivery receipt or inbound SMS will arrive; set it to the address Twilio calls"))
        if "company_name" in self.gateway.model_fields_set:
            found.append(("setting_deprecated", "gateway.company_name is deprecated: use company.name "
                          "(a name, or one per locale)"))
        return found


@lru_cache(maxsize=16)
def _address_of(header: str) -> str:
    """The address in a From/Reply-To value: every message's context asks (profiled: a twentieth of
    an event's rendering spent parsing the same setting), and the settings never change."""
    return parseaddr(header)[1]
