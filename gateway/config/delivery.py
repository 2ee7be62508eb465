"""The sections about sending: email (SMTP or Maildir), SMS (Twilio or a file), the dispatcher,
limits against abuse, inbound texts, fallback and the status webhooks to upstream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from gateway.config.sections import Section
from gateway.config.units import Duration, OptionalRate, Rate


class SMTPSettings(Section):
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


class EmailSettings(Section):
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


class TwilioSettings(Section):
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    from_: str | None = Field(None, alias="from")
    messaging_service_sid: str | None = None
    api_base_url: str = "https://api.twilio.com"
    timeout: Duration = 15.0


class SMSSettings(Section):
    transport: Literal["twilio", "file"] = "file"
    file: Path = Path("var/sms.jsonl")
    allowed_countries: list[str] = ["BR"]
    twilio: TwilioSettings = TwilioSettings()
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


class DispatchSettings(Section):
    workers: int = Field(8, ge=1, le=1024)
    lease: Duration = 60.0
    retry_base: Duration = 5.0
    retry_max: Duration = 300.0
    give_up_after: Duration = 86400.0
    unknown_retry_after: Duration = 600.0
    poll_interval: Duration = 1.0
    shutdown_timeout: Duration = 10.0
    # How long a transport's probe (SMTP session, Twilio account, writable folder) stands
    # before /readyz asks again: a probe opens a connection to the provider.
    probe_interval: Duration = 60.0


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


class FallbackSettings(Section):
    """An SMS that failed, or got no delivery receipt in time (from a transport that sends
    receipts), goes again by email when there is one and the email did not already carry it."""

    enabled: bool = True
    no_receipt_after: Duration = 1800.0
    check_interval: Duration = 60.0
    # The history by SMS goes in parts of at most this many segments, as many parts as it takes
    # (10 is what phones still join into one message).
    max_sms_segments: int = Field(4, ge=1, le=10)
    # Templates whose SMS must not fall back to email (configurable per template).
    disabled_templates: list[str] = []


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
