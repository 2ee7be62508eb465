"""Typed settings: `settings.toml` (or `--config`, or `GATEWAY_CONFIG`), then `GATEWAY_*` overrides.

Environment names are `GATEWAY_<SECTION>__<KEY>`, nested sections adding `__`
(`GATEWAY_EMAIL__SMTP__PORT=2525`). Names without `__` (`GATEWAY_CONFIG`,
`GATEWAY_TEST_DATABASE_URL`) are not settings and are ignored. Anything wrong stops
start-up with a `ConfigError` whose message is one line naming the key.

`units` (durations, sizes, rates), `sections` and `delivery` (the tables), `settings` (the
whole) and `load` (file and environment); every room imports what it needs from here.
"""

from gateway.config.delivery import (
    BounceSettings,
    DKIMSettings,
    DispatchSettings,
    EmailSettings,
    FallbackSettings,
    InboundSettings,
    LimitsSettings,
    SMSSettings,
    SMTPSettings,
    TwilioSettings,
    UnsubscribeSettings,
    WebhooksSettings,
)
from gateway.config.load import ENV_PREFIX, load_settings, mask_url
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
    SweepsSettings,
    TemplatesSettings,
)
from gateway.config.settings import PACKAGE_DIR, Settings
from gateway.config.whatsapp import WhatsAppSettings
from gateway.config.units import ConfigError, Duration, Rate, Size, parse_duration, parse_rate, parse_size

__all__ = [
    "ENV_PREFIX", "PACKAGE_DIR", "AuthSettings", "BounceSettings", "CompanySettings", "DKIMSettings", "ConfigError", "DatabaseSettings", "DirSettings", "DispatchSettings",
    "Duration", "EmailSettings", "FallbackSettings", "GatewaySettings", "HTTPSettings", "InboundSettings",
    "LimitsSettings", "OperationsSettings", "PolicySettings", "ProfileSettings", "QuietHoursSettings", "Rate",
    "RetentionSettings", "SMSSettings", "SMTPSettings", "Settings", "Size", "SweepsSettings", "TemplatesSettings",
    "TwilioSettings", "UnsubscribeSettings", "WebhooksSettings", "WhatsAppSettings", "load_settings", "mask_url", "parse_duration", "parse_rate", "parse_size",
]
