"""Request and response shapes of the HTTP API. The handlers validate with these and
/openapi.json is generated from them, so the published contract cannot fall behind the code."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, create_model, field_validator

from gateway.delivery.admin import ALIASES, RETRYABLE, STATUSES
from gateway.protocols.query_limits import NOTE_MAX

# The event data shapes are the domain's; they are part of the HTTP contract too.
from gateway.protocols.schemas import (  # noqa: F401  (re-exported for openapi.py and the handlers)
    EVENT_DATA,
    DeadlineExtendedData,
    MAX_DEPTH,
    NUMBER_PATTERN,
    NotificationStatus,
    OpenedData,
    ProtocolStatus,
    ReopenedData,
    ResendData,
    ResendRequest,
    ResolvedData,
    RetentionExtendedData,
    StrictModel,
    Time,
    UpdatedData,
    shallow,
)


class CloudEventIn(BaseModel):
    """A CloudEvents 1.0 event in structured mode (the same attributes come as ce-* headers in binary mode)."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=500)
    source: str = Field(min_length=1, max_length=500)
    type: Literal[
        "protocol.opened", "protocol.updated", "protocol.resolved", "protocol.reopened", "protocol.resend_requested",
        "protocol.deadline_extended", "protocol.retention_extended",
    ]
    time: Time | None = None
    datacontenttype: str | None = Field(None, pattern=r"^application/json\s*(;.*)?$",
                                        description="the data is JSON: application/json (the default)")
    subject: str | None = None
    data: dict[str, Any]


def _envelope(event_type: str, data: type[BaseModel]) -> type[CloudEventIn]:
    """The envelope of one event type with its own `data`, for /openapi.json: the handler checks
    the envelope (CloudEventIn) and then `data` with the very model named here (EVENT_DATA)."""
    name = "".join(part.title() for part in event_type.removeprefix("protocol.").split("_")) + "Event"
    model: type[CloudEventIn] = create_model(name, __base__=CloudEventIn, __doc__=f"A {event_type} event.",
                                             type=(Literal[event_type], ...), data=(data, ...))  # type: ignore[call-overload]
    return model


EVENT_ENVELOPES: dict[str, type[CloudEventIn]] = {t: _envelope(t, m) for t, m in EVENT_DATA.items()}


def status_list_pattern(names: tuple[str, ...]) -> str:
    """Comma-separated names, at least one ('dead', 'dead, failed'): the spec and the check alike."""
    word = "(" + "|".join(names) + ")"
    return rf"^\s*{word}\s*(,\s*{word}\s*)*$"


OUTBOX_STATUSES = status_list_pattern(STATUSES + tuple(ALIASES))  # GET /v1/outbox?status=
REQUEUE_STATUSES = status_list_pattern(RETRYABLE)                  # POST /v1/outbox/requeue


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
    key: str | None = Field(description="the name of the API key that posted it (None: the gateway itself)")


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
    note: str | None = Field(None, max_length=NOTE_MAX, description="what was done, for the record (no personal data)")


class ProtocolSummary(BaseModel):
    number: str
    status: ProtocolStatus
    subject: str
    category: str | None
    profile: str
    opened_at: datetime
    deadline_at: datetime | None
    resolved_at: datetime | None


class ProtocolOut(ProtocolSummary):
    retention_until: datetime | None
    legal_hold: bool
    channel: str | None = Field(description="where the demand came in")
    consumer: ConsumerOut
    parent: str | None = Field(description="the protocol this one escalates")
    children: list[str] = Field(description="the protocols escalated from this one")
    events: list[EventOut]
    notifications: list[NotificationOut]
    requests: list[RequestOut]


class ProtocolList(BaseModel):
    protocols: list[ProtocolSummary] = Field(description="newest first (by opened_at, then the order of receipt)")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class ComplianceCounts(BaseModel):
    opened: int
    resolved: int
    resolved_within_deadline: int
    resolved_within_deadline_share: float | None = Field(description="of those resolved; null when none was")
    open_past_deadline: int = Field(description="open or reopened, past the deadline at the report's `at`")
    requests: int = Field(description="consumer requests (confirmation, history, postal copy) about these protocols")
    requests_fulfilled_in_time: int
    requests_fulfilled_in_time_share: float | None = Field(description="of the requests; null when there was none")
    notifications: dict[str, dict[str, int]] = Field(description="channel -> status -> count")


class ComplianceGroup(ComplianceCounts):
    group: str | None = Field(description="the category, profile or channel; null for protocols without one")


class ComplianceReport(BaseModel):
    from_: str = Field(alias="from")
    to: str
    timezone: str
    group_by: Literal["category", "profile", "channel"]
    at: datetime
    groups: list[ComplianceGroup] = Field(description="most protocols opened first")
    total: ComplianceCounts


class Health(BaseModel):
    status: str
    checks: dict[str, str] | None = None
    providers: dict[str, dict[str, dict[str, str]]] | None = Field(
        None, description="/readyz: channel -> provider -> {breaker: closed|open|half_open, probe: ok or what is wrong}")
    warnings: list[str] | None = Field(
        None, description="/readyz: settings that work but are probably not what was meant (they do not make it not ready)")


# Operations: templates, evidence, dead letters


class TemplatePreviewRequest(StrictModel):
    locale: str | None = Field(None, max_length=35, description="default: the sample's locale")
    channel: Literal["email", "sms", "whatsapp"] | None = Field(None, description="default: every channel the locale has")
    data: dict[str, Any] | None = Field(
        None, description="merged over the template's sample; RFC 3339 strings with an offset become date-times; "
                          f"nested at most {MAX_DEPTH} levels")

    _shallow = field_validator("data")(shallow)


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


class WhatsAppPreview(BaseModel):
    text: str
    hash: str
    characters: int
    limit: int = Field(description="WhatsApp's most: 1,024 for an approved template's body, 4,096 for free text")
    kind: Literal["template", "free_text"] = Field(
        description="template: goes as the approved template outside the 24-hour window; free_text: inside it only")
    content_sid: str | None = Field(description="the approved template's SID for this locale, when registered")
    variables: dict[str, str] = Field(description="the approved template's variables for this data")
    approval_text: str | None = Field(description="the body to submit for approval, with {{1}}...")


class TemplatePreview(BaseModel):
    template: str
    audience: Literal["consumer", "operations"]
    locale: str = Field(description="the locale folder used")
    requested_locale: str
    email: EmailPreview | None
    sms: SmsPreview | None
    whatsapp: WhatsAppPreview | None = None
    warnings: list[str]


class TemplateInfo(BaseModel):
    name: str
    audience: Literal["consumer", "operations"] | None = Field(description="None when template.toml is broken")
    locales: list[str]
    channels: list[Literal["email", "sms", "whatsapp"]]
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
    provider: str | None = Field(description="the named relay or account of the last try")
    duplicate_possible: bool
    reason: str | None


class OutboxList(BaseModel):
    items: list[OutboxItem]
    next: str | None = Field(description="the next page, when this one was full")


class OutboxRetryRequest(StrictModel):
    reason: str | None = Field(None, max_length=500, description="why, for the record")


def _number_not_text(value: Any) -> Any:
    """JSON Schema's integer: 5 or 5.0, never "5" or true (pydantic would read those as 5 and 1)."""
    if isinstance(value, (str, bool)):
        raise ValueError("expected a whole number")
    return value


def whole_number(low: int, high: int) -> Any:
    """An integer from `low` to `high` (the constraints first, so the spec shows them as such)."""
    return Annotated[int, Field(ge=low, le=high), BeforeValidator(_number_not_text)]


class OutboxRequeueRequest(StrictModel):
    status: Annotated[str, Field(pattern=REQUEUE_STATUSES)] | Annotated[
        list[Literal[RETRYABLE]], Field(min_length=1)] = Field(  # type: ignore[valid-type]
        description="dead, failed, undelivered, unknown or queued: one, several separated by commas, or a "
                    "non-empty list (an empty one would requeue everything)")
    since: Time | None = Field(None, description="only those whose last attempt ended at or after this")
    limit: whole_number(1, 100_000) | None = None  # type: ignore[valid-type]
    reason: str | None = Field(None, max_length=500)
    dry_run: StrictBool = False


class OutboxRequeueAnswer(BaseModel):
    requeued: int
    ids: list[int]
    dry_run: bool
