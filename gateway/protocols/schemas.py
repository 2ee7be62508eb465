"""What each event type carries in `data`, validated before anything is written.

The domain owns these shapes; `api/` validates HTTP bodies with them and publishes them in
/openapi.json, so the contract cannot fall behind the code.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

NotificationStatus = Literal[
    "queued", "sending", "sent", "delivered", "undelivered", "failed", "dead", "unknown", "cancelled"
]
ProtocolStatus = Literal["open", "resolved", "reopened", "anonymized"]
ContactChannel = Literal["phone", "chat", "email", "whatsapp", "web", "in_person"]

NUMBER_PATTERN = r"^[0-9]{6,30}$"


def _no_line_breaks(value: str | None) -> str | None:
    # Subjects end up in email headers: CR/LF there would inject headers. Python's email package
    # also refuses every other str.splitlines() break (U+2028, \x85, \x0b...) in a header, which
    # would fail the message for good at send time: refuse them all here, with the field named.
    if value is not None and len(f"x{value}x".splitlines()) > 1:
        raise ValueError("must be a single line")
    return value


class StrictModel(BaseModel):
    """Unknown fields are refused, strings stripped: a typo in a field name is a 422, not a silent default."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Consumer(StrictModel):
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)
    region: str | None = Field(None, min_length=2, max_length=2, description="ISO 3166 region for a national phone number")
    locale: str | None = Field(None, max_length=35)
    timezone: str | None = Field(None, max_length=64)

    _single_line = field_validator("name", "email", "phone")(_no_line_breaks)


class OpenedData(StrictModel):
    subject: str = Field(min_length=1, max_length=500)
    consumer: Consumer
    number: str | None = Field(None, pattern=NUMBER_PATTERN, description="upstream-issued, kept as given")
    notify: list[Literal["email", "sms"]] | None = Field(None, description="default: every contact given")
    channel: ContactChannel | None = None
    category: str | None = Field(None, max_length=200)
    opened_at: AwareDatetime | None = None
    profile: str | None = Field(None, max_length=32)
    metadata: dict[str, Any] | None = None

    _single_line = field_validator("subject")(_no_line_breaks)


class UpdatedData(StrictModel):
    number: str = Field(pattern=NUMBER_PATTERN)
    message: str = Field(min_length=1, max_length=5000)


class ResolvedData(StrictModel):
    number: str = Field(pattern=NUMBER_PATTERN)
    resolution: str = Field(min_length=1, max_length=5000)
    resolved_at: AwareDatetime | None = None


class ReopenedData(StrictModel):
    number: str = Field(pattern=NUMBER_PATTERN)
    reason: str = Field(min_length=1, max_length=5000)


class ResendRequest(StrictModel):
    channel: Literal["email", "sms", "mail"]
    to: str | None = Field(None, max_length=500, description="an address the consumer gives now")
    history: bool = False

    _single_line = field_validator("to")(_no_line_breaks)


class ResendData(ResendRequest):
    number: str = Field(pattern=NUMBER_PATTERN)


EVENT_DATA: dict[str, type[StrictModel]] = {
    "protocol.opened": OpenedData,
    "protocol.updated": UpdatedData,
    "protocol.resolved": ResolvedData,
    "protocol.reopened": ReopenedData,
    "protocol.resend_requested": ResendData,
}
