"""What each event type carries in `data`, validated before anything is written.

The domain owns these shapes; `api/` validates HTTP bodies with them and publishes them in
/openapi.json, so the contract cannot fall behind the code.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from typing import Annotated, Any, Literal

from babel import Locale, UnknownLocaleError
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    field_validator,
)

from gateway.protocols.profiles import ALIASES, PROFILES

NotificationStatus = Literal[
    "queued", "sending", "sent", "delivered", "read", "undelivered", "failed", "dead", "unknown", "cancelled"
]
ProtocolStatus = Literal["open", "resolved", "reopened", "anonymized"]
ContactChannel = Literal["phone", "chat", "email", "whatsapp", "web", "in_person"]

NUMBER_PATTERN = r"^[0-9]{6,30}$"

# Years a time an event or a request gives may have, as written. Outside them, dates are typos or
# probes (year 1, 9999) and would overflow a deadline or a conversion to UTC further on: refused
# here, naming the field. /openapi.json says the same with a pattern on the year.
FIRST_YEAR, LAST_YEAR = 1970, 2999
_YEARS = r"^(19[7-9][0-9]|2[0-9]{3})-"
# Free-form JSON (`metadata`, preview data) nested deeper than this is refused: serializing it
# fails past about 255 levels, and no real record needs more than a few.
MAX_DEPTH = 32
# The IANA areas of "Area/Location" zone names. Bare names in the zone folder ("localtime",
# "posixrules", "Factory") and the old aliases ("Brazil/East") are not places a consumer lives.
IANA_AREAS = frozenset({"Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe",
                        "Indian", "Pacific", "Etc"})
_ZONE_NAME = re.compile(r"^[A-Za-z]+(?:/[A-Za-z0-9_+-]+){1,2}$")


def _written(value: Any) -> Any:
    """A time is written as RFC 3339 text; pydantic would also read a number as Unix seconds."""
    if isinstance(value, (int, float)):
        raise ValueError("expected an RFC 3339 date-time with an offset, as text")
    return value


def _in_range(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"expected a time in the years {FIRST_YEAR} to {LAST_YEAR}")
    return value  # as given: the fingerprint of a repeat must not change


Time = Annotated[AwareDatetime, BeforeValidator(_written), AfterValidator(_in_range), WithJsonSchema(
    {"type": "string", "format": "date-time", "pattern": _YEARS,
     "description": f"RFC 3339 with an offset, in the years {FIRST_YEAR} to {LAST_YEAR}"})]


def depth(value: Any) -> int:
    """How deeply JSON containers nest in `value` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level + 1)
            stack.extend((child, level + 1) for child in item)
    return deepest


def shallow(value: Any) -> Any:
    if value is not None and depth(value) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return value


def known_locale(name: str | None) -> str | None:
    """A BCP 47 tag CLDR knows ('pt-BR', 'es', 'es-ES'); kept as given (templates fall back)."""
    if name is None:
        return None
    try:
        Locale.parse(name.replace("_", "-"), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        raise ValueError(f"expected a locale such as 'pt-BR', 'es' or 'en', got {name[:40]!r}") from None
    return name


def iana_zone(name: str | None) -> str | None:
    """An IANA Area/Location ('America/Sao_Paulo') or 'UTC'; not the files beside them in the zone folder."""
    if name is None:
        return None
    if name != "UTC" and not (_ZONE_NAME.match(name) and name.split("/", 1)[0] in IANA_AREAS):
        raise ValueError(f"expected an IANA time zone such as 'America/Sao_Paulo', got {name[:64]!r}")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name[:64]!r}") from None
    return name


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


class WhatsAppOptIn(StrictModel):
    at: Time = Field(description="when the consumer agreed to hear from the company on WhatsApp")
    via: str = Field(min_length=1, max_length=100, description="how: a form, the contact centre, a chat...")

    _single_line = field_validator("via")(_no_line_breaks)


class Consumer(StrictModel):
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320, json_schema_extra={"format": "email"})
    phone: str | None = Field(None, max_length=40)
    whatsapp: str | None = Field(None, max_length=40, description="the WhatsApp number, when it is not the phone")
    whatsapp_opt_in: WhatsAppOptIn | None = Field(None, description="the consumer's consent to WhatsApp, kept on record")
    region: str | None = Field(None, pattern="^[A-Za-z]{2}$", description="ISO 3166 region for a national phone number")
    locale: str | None = Field(None, max_length=35)
    timezone: str | None = Field(None, max_length=64)

    _single_line = field_validator("name", "email", "phone", "whatsapp")(_no_line_breaks)
    _locale = field_validator("locale")(known_locale)
    _timezone = field_validator("timezone")(iana_zone)


class OpenedData(StrictModel):
    subject: str = Field(min_length=1, max_length=500)
    consumer: Consumer
    number: str | None = Field(None, pattern=NUMBER_PATTERN, description="upstream-issued, kept as given")
    notify: list[Literal["email", "sms", "whatsapp"]] | None = Field(
        None, description="default: every contact given (WhatsApp only with consumer.whatsapp)")
    channel: ContactChannel | None = None
    category: str | None = Field(None, max_length=200)
    opened_at: Time | None = None
    # The service looks the name up (an unknown one is 422 naming it); the spec lists the same names.
    profile: Annotated[str, Field(max_length=32, json_schema_extra={"enum": sorted([*PROFILES, *ALIASES])})] | None = None
    metadata: dict[str, Any] | None = Field(None, description=f"any JSON object, nested at most {MAX_DEPTH} levels")
    parent: str | None = Field(None, pattern=NUMBER_PATTERN,
                               description="the number of the protocol this one escalates (SAC to ombudsman)")

    _single_line = field_validator("subject")(_no_line_breaks)
    _shallow = field_validator("metadata")(shallow)


class UpdatedData(StrictModel):
    number: str = Field(pattern=NUMBER_PATTERN)
    message: str = Field(min_length=1, max_length=5000)


class ResolvedData(StrictModel):
    number: str = Field(pattern=NUMBER_PATTERN)
    resolution: str = Field(min_length=1, max_length=5000)
    resolved_at: Time | None = None


class ReopenedData(StrictModel):
    number: str = Field(pattern=NUMBER_PATTERN)
    reason: str = Field(min_length=1, max_length=5000)


class ResendRequest(StrictModel):
    channel: Literal["email", "sms", "whatsapp", "mail"]
    to: str | None = Field(None, max_length=500, description="an address the consumer gives now")
    history: StrictBool = False  # true or false, not "yes" or 1: the spec says boolean

    _single_line = field_validator("to")(_no_line_breaks)


class ResendData(ResendRequest):
    number: str = Field(pattern=NUMBER_PATTERN)


class DeadlineExtendedData(StrictModel):
    number: str = Field(pattern=NUMBER_PATTERN)
    reason: str = Field(min_length=1, max_length=5000, description="told to the consumer")
    days: int | None = Field(None, ge=1, le=365, description="counted from the current deadline, in the kind of "
                             "day the protocol's deadline counts (calendar or business); or give deadline_at")
    deadline_at: Time | None = Field(None, description="the new deadline, later than the current one; or give days")


class RetentionExtendedData(StrictModel):
    number: str = Field(pattern=NUMBER_PATTERN)
    reason: str = Field(min_length=1, max_length=5000, description="e.g. a complaint filed with a regulator")
    years: int = Field(ge=1, le=100, description="added to the record's retention; it never shortens it")


EVENT_DATA: dict[str, type[StrictModel]] = {
    "protocol.opened": OpenedData,
    "protocol.updated": UpdatedData,
    "protocol.resolved": ResolvedData,
    "protocol.reopened": ReopenedData,
    "protocol.resend_requested": ResendData,
    "protocol.deadline_extended": DeadlineExtendedData,
    "protocol.retention_extended": RetentionExtendedData,
}
