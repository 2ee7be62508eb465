"""The one small protocol every transport speaks, and the errors it may raise.

A transport turns a rendered `Message` into a `Receipt` or raises one of the
`DeliveryError` subclasses below. Vendor exceptions never leave a transport: each
one is translated here, at the edge, so the dispatcher decides retries from three
facts only: try again, give up, or the outcome is not known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Message:
    notification_id: int
    channel: str                 # "email" or "sms"
    to: str                      # an email address or an E.164 phone number
    text: str                    # the plain-text email body, or the SMS body
    subject: str | None = None   # email only
    html: str | None = None      # email only
    message_id: str | None = None  # email only: deterministic, derived from notification_id
    reply_to: str | None = None    # email only
    status_callback: str | None = None  # sms only: where the provider posts receipts
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Receipt:
    provider_id: str | None      # Twilio's SID, the SMTP Message-ID, the Maildir key...
    status: str = "sent"         # "sent" (accepted) or "delivered" (final receipt already)
    segments: int | None = None  # SMS segments billed, when the provider says


class DeliveryError(Exception):
    """Base of every error a transport raises."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code  # the provider's own code ("550", "21211"), for the record


class TransientDeliveryError(DeliveryError):
    """Nothing was delivered and trying again later may work (4xx, 5xx of an API, refused connection)."""

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after  # seconds the provider asked us to wait, if it said


class PermanentDeliveryError(DeliveryError):
    """The provider refused this message for good (SMTP 5xx, Twilio 21211): do not try again."""


class UnknownOutcomeError(DeliveryError):
    """The call timed out after the message may have left: it may or may not have been sent."""


class Transport(Protocol):
    async def send(self, message: Message) -> Receipt: ...

    async def aclose(self) -> None: ...
