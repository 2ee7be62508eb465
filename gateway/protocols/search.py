"""Finding protocols: by contact, status, deadline, category, profile and dates, newest first.

The API (`GET /v1/protocols`), the CLI (`protocols list`) and the console all read through
`parse_filters` and `search`, so they accept and refuse the same things. Pages are walked by
keyset on (opened_at, id), never by offset: a page costs the same at the millionth row, and
protocols opened while someone pages do not shift what they see next.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import iso
from gateway.errors import FieldProblem, InvalidFields
from gateway.protocols.contacts import ContactError, normalize_email, normalize_phone
from gateway.protocols.schemas import NUMBER_PATTERN
from gateway.store.keyset import before
from gateway.store.models import Protocol, email_digest

from gateway.protocols.query_limits import DEFAULT_LIMIT, MAX_LIMIT  # noqa: E402,F401 (search.MAX_LIMIT, as callers know it)
STATUSES = ("open", "resolved", "reopened", "anonymized")
OPEN_STATUSES = ("open", "reopened")
PARAMETERS = ("number", "phone", "email", "status", "overdue", "category", "profile", "opened_from", "opened_to",
              "limit", "cursor")
MAX_TEXT = 200  # characters of a category or profile: the columns' width


@dataclass(frozen=True)
class Filters:
    number: str | None = None
    phone: str | None = None         # E.164
    email: str | None = None         # normalised; searched by its digest
    statuses: tuple[str, ...] = ()
    overdue: bool = False
    category: str | None = None
    profile: str | None = None
    opened_from: datetime | None = None  # inclusive
    opened_before: datetime | None = None  # exclusive: the day after `opened_to` begins
    limit: int = DEFAULT_LIMIT
    after: tuple[datetime, int] | None = None  # the cursor: (opened_at, id) of the last row seen
    given: dict[str, str] = field(default_factory=dict)  # as asked, to build the next page's link


@dataclass(frozen=True)
class Found:
    number: str
    status: str
    subject: str
    category: str | None
    profile: str
    opened_at: datetime
    deadline_at: datetime | None
    resolved_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "status": self.status, "subject": self.subject, "category": self.category,
                "profile": self.profile, "opened_at": iso(self.opened_at), "deadline_at": iso(self.deadline_at),
                "resolved_at": iso(self.resolved_at)}


def parse_filters(query: Mapping[str, str], *, zone: str, regions: list[str]) -> Filters:
    """Filters from strings (a query string, command-line options), or InvalidFields naming each bad one."""
    problems = [FieldProblem(name, "not a known parameter") for name in sorted(set(query) - set(PARAMETERS))]
    out: dict[str, Any] = {"given": {k: v for k, v in query.items() if k in PARAMETERS and k != "cursor"}}
    tz = ZoneInfo(zone)

    def bad(name: str, message: str) -> None:
        problems.append(FieldProblem(name, message))

    if (number := query.get("number")) is not None:
        if re.match(NUMBER_PATTERN, number):
            out["number"] = number
        else:
            bad("number", "expected a protocol number: 6 to 30 digits")
    if (phone := query.get("phone")) is not None:
        try:
            out["phone"] = normalize_phone(phone, None, for_sms=False, allowed_regions=regions)
        except ContactError as exc:
            bad("phone", str(exc))
    if (email := query.get("email")) is not None:
        try:
            out["email"] = normalize_email(email)
        except ContactError as exc:
            bad("email", str(exc))
    if (status := query.get("status")) is not None:
        names = tuple(s.strip() for s in status.split(","))
        if all(n in STATUSES for n in names):
            out["statuses"] = names
        else:
            bad("status", f"expected statuses separated by commas: {', '.join(STATUSES)}")
    if (overdue := query.get("overdue")) is not None:
        if overdue in ("true", "false"):
            out["overdue"] = overdue == "true"
        else:
            bad("overdue", "expected true or false")
    for name in ("category", "profile"):
        if (value := query.get(name)) is not None:
            if 0 < len(value) <= MAX_TEXT and "\x00" not in value:
                out[name] = value
            else:
                bad(name, f"expected 1 to {MAX_TEXT} characters")
    for name in ("opened_from", "opened_to"):
        if (value := query.get(name)) is not None:
            day = parse_day(value)
            if day is None:
                bad(name, "expected a date, YYYY-MM-DD (a day in gateway.timezone)")
            elif name == "opened_from":
                out["opened_from"] = day_start(day, tz)
            else:
                out["opened_before"] = day_start(day + timedelta(days=1), tz)
    if (limit := query.get("limit")) is not None:
        if limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT:
            out["limit"] = int(limit)
        else:
            bad("limit", f"expected a whole number from 1 to {MAX_LIMIT}")
    if (cursor := query.get("cursor")) is not None:
        after = decode_cursor(cursor)
        if after is None:
            bad("cursor", "not a cursor this gateway gave: pass next_cursor from the previous page as it is")
        else:
            out["after"] = after
    if problems:
        raise InvalidFields(problems)
    return Filters(**out)


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The instant a day begins in a zone, in UTC (not always midnight: some zones skip it)."""
    return datetime.combine(day, time(), tz).astimezone(timezone.utc)


def parse_day(value: str) -> date | None:
    """A YYYY-MM-DD day, or None for anything else (2026-02-30 included)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    # One day either side must still be a date: the bounds are computed from it.
    return day if date.min < day < date.max else None


def encode_cursor(opened_at: datetime, row_id: int) -> str:
    raw = json.dumps([iso(opened_at), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    if len(cursor) > 200 or not cursor.isascii():
        return None
    try:
        at, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        opened_at = datetime.fromisoformat(at)
        if opened_at.tzinfo is None:
            return None
        opened_at = opened_at.astimezone(timezone.utc)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(row_id, int) or isinstance(row_id, bool) or not 0 < row_id < 2**63:
        return None
    return opened_at, row_id


def statement(filters: Filters, *, now: datetime) -> Select[Any]:
    p = Protocol
    stmt = select(p.id, p.number, p.status, p.subject, p.category, p.profile, p.opened_at, p.deadline_at,
                  p.resolved_at)
    conditions: list[Any] = []
    if filters.number is not None:
        conditions.append(p.number == filters.number)
    if filters.phone is not None:
        conditions.append(p.consumer_phone == filters.phone)
    if filters.email is not None:
        conditions.append(p.consumer_email_digest == email_digest(filters.email))
    if filters.statuses:
        conditions.append(p.status.in_(filters.statuses))
    if filters.overdue:
        # Open past its deadline. The statuses are written into the SQL, not bound: SQLite uses the
        # partial index ix_protocols_open_opened only when the query repeats its condition literally.
        conditions += [p.status.in_(bindparam("open_statuses", OPEN_STATUSES, expanding=True, literal_execute=True)),
                       p.deadline_at < now]
    if filters.category is not None:
        conditions.append(p.category == filters.category)
    if filters.profile is not None:
        conditions.append(p.profile == filters.profile)
    if filters.opened_from is not None:
        conditions.append(p.opened_at >= filters.opened_from)
    if filters.opened_before is not None:
        conditions.append(p.opened_at < filters.opened_before)
    if filters.after is not None:
        at, row_id = filters.after
        conditions.append(before((p.opened_at, p.id), (at, row_id)))
    return stmt.where(*conditions).order_by(p.opened_at.desc(), p.id.desc()).limit(filters.limit + 1)


async def search(session: AsyncSession, filters: Filters, *, now: datetime) -> tuple[list[Found], str | None]:
    """A page of protocols, newest first, and the cursor of the next page (None: this is the last)."""
    rows = (await session.execute(statement(filters, now=now))).all()
    page = rows[:filters.limit]
    following = encode_cursor(page[-1].opened_at, page[-1].id) if len(rows) > filters.limit else None
    return [Found(*row[1:]) for row in page], following
