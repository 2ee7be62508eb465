"""The sections about sending: email (SMTP or Maildir), SMS (Twilio or a file), the dispatcher,
limits against abuse, inbound texts, fallback and the status webhooks to upstream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, SecretStr, Tag, field_validator, model_validator

from gateway.config.sections import Section
from gateway.config.units import Duration, OptionalRate, Rate

# Lower case, as environment overrides name a provider (GATEWAY_EMAIL__SMTP__BACKUP__PASSWORD).
PROVIDER_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"


# The two forms of a provider setting; load.py leaves these tags out of the key it names.
ONE, MANY = "one-provider", "provider-list"


def _one_or_many(value: Any) -> str:
    return MANY if isinstance(value, list) else ONE


def _distinct_names(value: Any) -> Any:
    if isinstance(value, list):
        if not value:
            raise ValueError("expected at least one provider")
        names = [p.name for p in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"each provider needs a name of its own (twice: {', '.join(twice)})")
    return value


class SMTPSettings(Section):
    # Names the relay in the record (attempts, /readyz, /metrics) and in GATEWAY_EMAIL__SMTP__<NAME>__*.
    name: str = Field("smtp", pattern=PROVIDER_NAME)
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


class BounceSettings(Section):
    """Every email's return path is unique to it (VERP) on `domain`; the MTA that receives mail for
    that domain forwards it to the listener, and a delivery status notification there makes the
    notification `undelivered`."""

    domain: str | None = Field(None, pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$")
    local_part: str = Field("bounces", pattern=r"^[a-z0-9][a-z0-9._-]{0,40}$")
    # The HMAC key of each return path's token, so nobody can forge a bounce for another notification.
    secret: SecretStr | None = None
    listen: bool = True
    host: str = "127.0.0.1"
    port: int = Field(2526, ge=0, le=65535)
    protocol: Literal["smtp", "lmtp"] = "smtp"
    max_size: int = Field(1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _secret_with_domain(self) -> BounceSettings:
        if self.domain and (self.secret is None or len(self.secret.get_secret_value()) < 16):
            raise ValueError("secret: required when domain is set, at least 16 characters "
                             "(the key that makes each return path unforgeable)")
        return self


class UnsubscribeSettings(Section):
    """List-Unsubscribe (RFC 8058 one-click) on the emails the consumer did not ask for (reminders)."""

    # The HMAC key of each link's token; unset, no email carries the headers.
    secret: SecretStr | None = None

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 16:
            raise ValueError("expected at least 16 characters (the key that makes each link unforgeable)")
        return secret


class DKIMSettings(Section):
    """Sign each email (dkimpy) for installations that send straight to the world, not through a
    relay that signs. All three keys or none."""

    selector: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    domain: str | None = None
    private_key_file: Path | None = None

    @model_validator(mode="after")
    def _all_or_none(self) -> DKIMSettings:
        given = {k: v for k, v in (("selector", self.selector), ("domain", self.domain),
                                   ("private_key_file", self.private_key_file)) if v}
        if given and len(given) < 3:
            missing = next(k for k in ("selector", "domain", "private_key_file") if k not in given)
            raise ValueError(f"{missing}: required when email.dkim.{next(iter(given))} is set")
        return self

    @property
    def enabled(self) -> bool:
        return self.private_key_file is not None


class EmailSettings(Section):
    transport: Literal["smtp", "maildir"] = "maildir"
    from_: str | None = Field(None, alias="from")
    reply_to: str | None = None
    maildir: Path = Path("var/mail")
    # One relay (a table) or several tried in order (an array of tables, each with a name).
    smtp: Annotated[Annotated[SMTPSettings, Tag(ONE)] | Annotated[list[SMTPSettings], Tag(MANY)],
                    Discriminator(_one_or_many), AfterValidator(_distinct_names)] = SMTPSettings()

    bounces: BounceSettings = BounceSettings()
    unsubscribe: UnsubscribeSettings = UnsubscribeSettings()
    dkim: DKIMSettings = DKIMSettings()

    @property
    def relays(self) -> list[SMTPSettings]:
        return self.smtp if isinstance(self.smtp, list) else [self.smtp]

    @model_validator(mode="after")
    def _sender(self) -> EmailSettings:
        if self.transport == "smtp" and not self.from_:
            raise ValueError("from: required when transport is 'smtp'")
        return self

    @property
    def sender(self) -> str:
        return self.from_ or "protocol-gateway@localhost"


class TwilioSettings(Section):
    name: str = Field("twilio", pattern=PROVIDER_NAME)
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    from_: str | None = Field(None, alias="from")
    messaging_service_sid: str | None = None
    api_base_url: str = "https://api.twilio.com"
    timeout: Duration = 15.0

    @field_validator("timeout")
    @classmethod
    def _waits_some_time(cls, seconds: float) -> float:
        return answer_time(seconds)


def answer_time(seconds: float) -> float:
    """A provider's timeout: the SDK refuses a zero one at the first send, too late to say which key."""
    return longer_than_zero(seconds, "the provider needs time to answer")


def longer_than_zero(seconds: float, why: str) -> float:
    if seconds <= 0:
        raise ValueError(f"expected a duration longer than zero ({why})")
    return seconds


class SMSSettings(Section):
    transport: Literal["twilio", "file"] = "file"
    file: Path = Path("var/sms.jsonl")
    allowed_countries: list[str] = ["BR"]
    # One account or messaging service (a table) or several tried in order (an array of tables).
    twilio: Annotated[Annotated[TwilioSettings, Tag(ONE)] | Annotated[list[TwilioSettings], Tag(MANY)],
                      Discriminator(_one_or_many), AfterValidator(_distinct_names)] = TwilioSettings()
    # Write what GSM-7 lacks without it (ç->c, ã->a), applied when a message is rendered. On by
    # default: one accent makes a whole SMS UCS-2 (70 characters a segment instead of 160), which
    # doubles what most Portuguese and Spanish SMS cost, and unaccented SMS are what Brazilian
    # consumers get from their bank and carrier every day. The email keeps every accent, and
    # `false` keeps them in SMS too for those who prefer that to the cost (README, "SMS cost").
    transliterate: bool = True
    # `templates check` warns when a template's longest sample SMS takes more segments.
    max_segments: int = Field(3, ge=1, le=10)

    @field_validator("allowed_countries", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v.strip()]
        return [str(v).strip().upper() for v in value] if isinstance(value, list) else value

    @property
    def accounts(self) -> list[TwilioSettings]:
        return self.twilio if isinstance(self.twilio, list) else [self.twilio]

    @model_validator(mode="after")
    def _twilio_complete(self) -> SMSSettings:
        if self.transport == "twilio":
            for i, t in enumerate(self.accounts):
                key = f"twilio.{i}" if isinstance(self.twilio, list) else "twilio"
                if not t.account_sid:
                    raise ValueError(f"{key}.account_sid: required when transport is 'twilio'")
                if not t.auth_token:
                    raise ValueError(f"{key}.auth_token: required when transport is 'twilio'")
                if not (t.from_ or t.messaging_service_sid):
                    raise ValueError(f"{key}.from: 'from' or 'messaging_service_sid' is required when transport is 'twilio'")
        return self


class DispatchSettings(Section):
    workers: int = Field(8, ge=1, le=1024)
    lease: Duration = 60.0
    retry_base: Duration = 5.0
    retry_max: Duration = 300.0
    give_up_after: Duration = 86400.0
    unknown_retry_after: Duration = 600.0
    poll_interval: Duration = 1.0
    shutdown_timeout: Duration = 10.0
    # A provider's circuit breaker opens after this many failures in a row, and lets one send
    # through again (half-open) this long after it opened.
    breaker_failures: int = Field(5, ge=1, le=1_000_000)
    breaker_cooldown: Duration = 60.0
    # How long a transport's probe (SMTP session, Twilio account, writable folder) stands
    # before /readyz asks again: a probe opens a connection to the provider.
    probe_interval: Duration = 60.0

    # The dispatcher wakes at least every min(poll_interval, lease / 3) to renew its claims: a
    # zero would spin a core, and a lease shorter than a second ends before a send does.
    @field_validator("lease")
    @classmethod
    def _lease_outlives_a_send(cls, seconds: float) -> float:
        if seconds < 1:
            raise ValueError("expected a duration of at least 1s (a claim must outlive a send)")
        return seconds

    @field_validator("poll_interval")
    @classmethod
    def _polls_some_time(cls, seconds: float) -> float:
        return longer_than_zero(seconds, "a zero would poll without pause")


class LimitsSettings(Section):
    """Against abuse. Resends and inbound texts are counted in the database, so they hold across
    processes; API requests per key are counted in each process's memory (N processes: N times)."""

    resend_per_protocol: Rate = (5, 3600.0)
    resend_per_contact: Rate = (10, 86400.0)
    inbound_per_phone: Rate = (10, 3600.0)
    # One misbehaving upstream must not starve the others; 0 turns it off.
    requests_per_key: OptionalRate = (6000, 60.0)


class InboundSettings(Section):
    # Brazilian mobile numbers are recycled: only protocols this recent are shown to a phone.
    window: Duration = 90 * 86400.0
    max_listed: int = Field(5, ge=1, le=20)


CHANNELS = ("email", "sms", "whatsapp")


class FallbackSettings(Section):
    """A consumer message that failed, was undelivered, or got no delivery receipt in time (from
    a transport that sends receipts) goes once by the next channel of its template's chain."""

    enabled: bool = True
    # Per template (or `default` for all the others): the channels in the order they are tried,
    # e.g. protocol_opened = ["whatsapp", "sms", "email"]. Without one, a message follows the
    # built-in chain of its first channel (gateway/delivery/chains.py).
    chains: dict[str, list[Literal["email", "sms", "whatsapp"]]] = {}
    no_receipt_after: Duration = 1800.0
    # A WhatsApp message delivered but not read this long after: the next channel too. Unset: off.
    not_read_after: Duration | None = None
    check_interval: Duration = 60.0
    # The history by SMS goes in parts of at most this many segments, as many parts as it takes
    # (10 is what phones still join into one message).
    max_sms_segments: int = Field(4, ge=1, le=10)
    # Templates whose messages never fall back to another channel.
    disabled_templates: list[str] = []

    @field_validator("chains")
    @classmethod
    def _chains(cls, chains: dict[str, list[str]]) -> dict[str, list[str]]:
        for template, chain in chains.items():
            if not chain:
                raise ValueError(f"{template}: expected at least one channel")
            twice = sorted({c for c in chain if chain.count(c) > 1})
            if twice:
                raise ValueError(f"{template}: each channel at most once (twice: {', '.join(twice)})")
        return chains


class WebhooksSettings(Section):
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
