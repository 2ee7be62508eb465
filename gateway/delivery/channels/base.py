"""The one small protocol every transport speaks: `send(message) -> Receipt`, and `aclose()`.

A transport turns a rendered `Message` into a `Receipt` or raises one of the errors of
`gateway.delivery.errors`. Vendor exceptions never leave a transport: each one is
translated at the edge, so the dispatcher decides retries from three facts only: try
again, give up, or the outcome is not known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gateway.delivery.errors import ProviderTry


@dataclass(frozen=True, slots=True)
class Message:
    notification_id: int
    channel: str                 # "email", "sms" or "whatsapp"
    to: str                      # an email address or an E.164 phone number
    text: str                    # the plain-text email body, the SMS or WhatsApp text
    subject: str | None = None   # email only
    html: str | None = None      # email only
    message_id: str | None = None  # email only: deterministic, derived from notification_id
    reply_to: str | None = None    # email only
    status_callback: str | None = None  # sms and whatsapp: where the provider posts receipts
    return_path: str | None = None  # email only: the envelope sender (MAIL FROM) unique to it, for bounces
    headers: dict[str, str] = field(default_factory=dict)
    # WhatsApp only: whether the consumer wrote within 24 hours (free text may go), and the
    # approved template that goes otherwise (None: the company registered none for it).
    window_open: bool = False
    content_sid: str | None = None
    content_variables: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    provider_id: str | None      # Twilio's SID, the SMTP Message-ID, the Maildir key...
    status: str = "sent"         # "sent" (accepted) or "delivered" (final receipt already)
    segments: int | None = None  # SMS segments billed, when the provider says
    provider: str | None = None  # the named relay or account that accepted it (set by the failover)
    tried: tuple[ProviderTry, ...] = ()  # providers that failed before it, in this same send


class Transport(Protocol):
    # Whether the provider later says what became of a message (Twilio's status callbacks).
    # "No receipt in time" means something only where one was to come.
    sends_receipts: bool

    async def send(self, message: Message) -> Receipt: ...

    async def aclose(self) -> None: ...
