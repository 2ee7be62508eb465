"""The WhatsApp section: a JSON-lines file (the embedded default) or Twilio's WhatsApp API.

Twilio's WhatsApp shares the account of SMS: `whatsapp.twilio` names only what differs (the
`whatsapp:` sender or a messaging service), and takes the account SID, token and API address
of the first `sms.twilio` account unless it gives its own. Receipts and inbound messages come
to the same webhooks as SMS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Discriminator, Field, SecretStr, Tag, field_validator

from gateway.config.delivery import MANY, ONE, PROVIDER_NAME, TwilioSettings, _distinct_names, _one_or_many, answer_time
from gateway.config.sections import Section
from gateway.config.units import Duration

# Meta's rule: free text only within 24 hours of the consumer's last message; after that only
# an approved template may open the conversation again.
SESSION_WINDOW = 24 * 3600.0
# Meta's limits, checked by `templates check`.
TEMPLATE_BODY_LIMIT = 1024
FREE_TEXT_LIMIT = 4096


class WhatsAppTwilioSettings(Section):
    name: str = Field("whatsapp", pattern=PROVIDER_NAME)
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    from_: str | None = Field(None, alias="from", pattern=r"^whatsapp:\+[1-9][0-9]{6,14}$")
    messaging_service_sid: str | None = None
    api_base_url: str | None = None
    timeout: Duration | None = None

    @field_validator("timeout")
    @classmethod
    def _waits_some_time(cls, seconds: float | None) -> float | None:
        return None if seconds is None else answer_time(seconds)

    def merged(self, sms: TwilioSettings) -> TwilioSettings:
        """The full account: what this section gives, else what the SMS account gives."""
        return TwilioSettings.model_validate({
            "name": self.name,
            "account_sid": self.account_sid or sms.account_sid,
            "auth_token": self.auth_token or sms.auth_token,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "api_base_url": self.api_base_url or sms.api_base_url,
            "timeout": self.timeout if self.timeout is not None else sms.timeout,
        })


class WhatsAppSettings(Section):
    transport: Literal["twilio", "file"] = "file"
    file: Path = Path("var/whatsapp.jsonl")
    # One sender (a table) or several tried in order (an array of tables, each with a name).
    twilio: Annotated[Annotated[WhatsAppTwilioSettings, Tag(ONE)] | Annotated[list[WhatsAppTwilioSettings], Tag(MANY)],
                      Discriminator(_one_or_many), AfterValidator(_distinct_names)] = WhatsAppTwilioSettings()

    @property
    def senders(self) -> list[WhatsAppTwilioSettings]:
        return self.twilio if isinstance(self.twilio, list) else [self.twilio]

    def key(self, index: int) -> str:
        return f"whatsapp.twilio.{index}" if isinstance(self.twilio, list) else "whatsapp.twilio"


def check_whatsapp(whatsapp: WhatsAppSettings, sms: TwilioSettings) -> None:
    """A Twilio WhatsApp set-up is complete once the SMS account fills what it leaves out."""
    if whatsapp.transport != "twilio":
        return
    for i, sender in enumerate(whatsapp.senders):
        key = whatsapp.key(i)
        if not (sender.account_sid or sms.account_sid):
            raise ValueError(f"{key}.account_sid: required when whatsapp.transport is 'twilio' "
                             "(or set sms.twilio.account_sid)")
        if not (sender.auth_token or sms.auth_token):
            raise ValueError(f"{key}.auth_token: required when whatsapp.transport is 'twilio' "
                             "(or set sms.twilio.auth_token)")
        if not (sender.from_ or sender.messaging_service_sid):
            raise ValueError(f"{key}.from: 'from' (whatsapp:+55...) or 'messaging_service_sid' is required "
                             "when whatsapp.transport is 'twilio'")

