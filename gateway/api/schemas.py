"""Request and response shapes of the HTTP API. The handlers validate with these and
/openapi.json is generated from them, so the published contract cannot fall behind the code."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# The event data shapes are the domain's; they are part of the HTTP contract too.
from gateway.protocols.schemas import (  # noqa: F401  (re-exported for openapi.py and the handlers)
    EVENT_DATA,
    NUMBER_PATTERN,
    NotificationStatus,
    OpenedData,
    ProtocolStatus,
    ReopenedData,
    ResendData,
    ResendRequest,
    ResolvedData,
    StrictModel,
    UpdatedData,
)


class CloudEventIn(BaseModel):
    """A CloudEvents 1.0 event in structured mode (the same attributes come as ce-* headers in binary mode)."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=500)
    source: str = Field(min_length=1, max_length=500)
    type: Literal[
        "protocol.opened", "protocol.updated", "protocol.resolved", "protocol.reopened", "protocol.resend_requested"
    ]
    time: AwareDatetime | None = None
    datacontenttype: str | None = None
    subject: str | None = None
    data: dict[str, Any]


# Answers


class ProtocolRef(BaseModel):
    number: str
    status: ProtocolStatus
    opened_at: datetime
    deadline_at: datetime | None


class NotificationRef(BaseModel):
    id: int
    channel: str
    status: NotificationStatus


class EventAnswer(BaseModel):
    protocol: ProtocolRef
    notifications: list[NotificationRef]
    duplicate: bool


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class BatchAnswer(BaseModel):
    results: list[EventAnswer | Problem]


class EventOut(BaseModel):
    type: str
    occurred_at: datetime
    received_at: datetime
    data: dict[str, Any]


class NotificationOut(BaseModel):
    id: int
    channel: str
    template: str
    status: NotificationStatus
    attempts: int
    last_error: str | None
    provider_id: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None


class ConsumerOut(BaseModel):
    name: str | None
    email: str | None
    phone: str | None
    locale: str
    timezone: str


class RequestOut(BaseModel):
    """Something the consumer asked for, with its legal clock."""

    id: int
    channel: Literal["email", "sms", "whatsapp", "mail"]
    history: bool = Field(description="the whole history (else the confirmation again)")
    requested_at: datetime
    due_at: datetime
    fulfilled_at: datetime | None
    fulfilled_by: str | None = Field(description="the key that marked a postal request fulfilled")
    note: str | None


class FulfilledAnswer(RequestOut):
    changed: bool = Field(description="false when it was already marked")


class FulfilRequest(StrictModel):
    note: str | None = Field(None, max_length=1000, description="what was done, for the record (no personal data)")


class ProtocolOut(BaseModel):
    number: str
    status: ProtocolStatus
    subject: str
    category: str | None
    profile: str
    channel: str | None = Field(description="where the demand came in")
    opened_at: datetime
    deadline_at: datetime | None
    resolved_at: datetime | None
    retention_until: datetime | None
    legal_hold: bool
    consumer: ConsumerOut
    events: list[EventOut]
    notifications: list[NotificationOut]
    requests: list[RequestOut]


class Health(BaseModel):
    status: str
    checks: dict[str, str] | None = None


# Operations: templates, evidence, dead letters


class TemplatePreviewRequest(StrictModel):
    locale: str | None = Field(None, max_length=35, description="default: the sample's locale")
    channel: Literal["email", "sms"] | None = Field(None, description="default: every channel the locale has")
    data: dict[str, Any] | None = Field(
        None, description="merged over the template's sample; RFC 3339 strings with an offset become date-times")


class SmsCounts(BaseModel):
    encoding: Literal["GSM-7", "UCS-2"]
    units: int = Field(description="septets for GSM-7, UTF-16 code units for UCS-2")
    segments: int


class EmailPreview(BaseModel):
    subject: str
    text: str
    html: str
    hash: str


class SmsPreview(SmsCounts):
    text: str
    hash: str
    transliterate: bool = Field(description="sms.transliterate: the text is written in GSM-7 letters")
    as_written: SmsCounts
    transliterated: SmsCounts


class TemplatePreview(BaseModel):
    template: str
    audience: Literal["consumer", "operations"]
    locale: str = Field(description="the locale folder used")
    requested_locale: str
    email: EmailPreview | None
    sms: SmsPreview | None
    warnings: list[str]


class TemplateInfo(BaseModel):
    name: str
    audience: Literal["consumer", "operations"] | None = Field(description="None when template.toml is broken")
    locales: list[str]
    channels: list[Literal["email", "sms"]]
    error: str | None = Field(None, description="why template.toml cannot be read (`templates check` says more)")


class TemplateList(BaseModel):
    templates: list[TemplateInfo]


class ExportDigest(BaseModel):
    algorithm: Literal["sha256"]
    value: str = Field(description="hex SHA-256 of the canonical JSON of `record`")
    over: str = Field(description="how the record is made canonical")


class ExportRecord(BaseModel):
    """Every stored column of each row, by its database name; times in RFC 3339 UTC."""

    protocol: dict[str, Any]
    events: list[dict[str, Any]]
    notifications: list[dict[str, Any]] = Field(
        description="each with `delivery`: {`attempts`: [...], `callbacks`: [...]}")
    consumer_requests: list[dict[str, Any]]
    inbound_messages: list[dict[str, Any]]


class ProtocolExport(BaseModel):
    format: str
    exported_at: datetime
    record: ExportRecord
    digest: ExportDigest


class OutboxItem(BaseModel):
    id: int
    protocol: str | None
    channel: str
    template: str
    recipient: str | None = Field(description="masked")
    status: NotificationStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    error_code: str | None
    provider_id: str | None
    duplicate_possible: bool
    reason: str | None


class OutboxList(BaseModel):
    items: list[OutboxItem]
    next: str | None = Field(description="the next page, when this one was full")


class OutboxRetryRequest(StrictModel):
    reason: str | None = Field(None, max_length=500, description="why, for the record")


class OutboxRequeueRequest(StrictModel):
    status: str | list[str] = Field(description="dead, failed, undelivered, unknown or queued (one or a list)")
    since: AwareDatetime | None = Field(None, description="only those whose last attempt ended at or after this")
    limit: int | None = Field(None, ge=1, le=100_000)
    reason: str | None = Field(None, max_length=500)
    dry_run: bool = False


class OutboxRequeueAnswer(BaseModel):
    requeued: int
    ids: list[int]
    dry_run: bool
