"""The compliance report: per category, profile or channel, how the protocols of a period fared.

Counts protocols opened in the period (days in gateway.timezone, both included) and, for
those, their resolutions against the deadline, what is still open past it, the consumer
requests (history, confirmation, postal copy) fulfilled within their legal clock, and the
notifications by channel and status. The API, the CLI and the console read it from here.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import iso
from gateway.errors import FieldProblem, InvalidFields
from gateway.protocols.search import day_start, parse_day
from gateway.store.database import Database
from gateway.store.models import ConsumerRequest, Notification, Protocol

PARAMETERS = ("from", "to", "group_by", "format")
from gateway.protocols.query_limits import DEFAULT_DAYS, GROUPS  # noqa: E402,F401 (reports.GROUPS, as callers know it)
# A period longer than SLICE_FROM is read in up to MAX_SLICES slices at once (compliance_report):
# no more than the cores, nor than SQLite's pool of readers.
SLICE_FROM = timedelta(days=62)
MAX_SLICES = 4
MAX_DAYS = 3660    # about ten years: far past any retention, short of a scan of everything by mistake
OPEN_STATUSES = ("open", "reopened")
COUNTS = ("opened", "resolved", "resolved_within_deadline", "open_past_deadline", "requests",
          "requests_fulfilled_in_time")
# Spreadsheet programs run a cell that starts with one of these as a formula ("CSV injection"):
# a category comes from upstream, so such a cell is written with a leading apostrophe.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Period:
    first: date
    last: date
    group_by: str
    zone: str

    def bounds(self) -> tuple[datetime, datetime]:
        tz = ZoneInfo(self.zone)
        return day_start(self.first, tz), day_start(self.last + timedelta(days=1), tz)


@dataclass
class Row:
    group: str | None
    opened: int = 0
    resolved: int = 0
    resolved_within_deadline: int = 0
    open_past_deadline: int = 0
    requests: int = 0
    requests_fulfilled_in_time: int = 0
    notifications: dict[str, dict[str, int]] = field(default_factory=dict)  # channel -> status -> count

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "opened": self.opened, "resolved": self.resolved,
                "resolved_within_deadline": self.resolved_within_deadline,
                "resolved_within_deadline_share": _share(self.resolved_within_deadline, self.resolved),
                "open_past_deadline": self.open_past_deadline, "requests": self.requests,
                "requests_fulfilled_in_time": self.requests_fulfilled_in_time,
                "requests_fulfilled_in_time_share": _share(self.requests_fulfilled_in_time, self.requests),
                "notifications": self.notifications}


@dataclass
class Report:
    period: Period
    at: datetime
    groups: list[Row]
    total: Row

    def as_dict(self) -> dict[str, Any]:
        total = self.total.as_dict()
        del total["group"]
        return {"from": self.period.first.isoformat(), "to": self.period.last.isoformat(),
                "timezone": self.period.zone, "group_by": self.period.group_by, "at": iso(self.at),
                "groups": [g.as_dict() for g in self.groups], "total": total}


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def parse_period(query: Mapping[str, str], *, zone: str, now: datetime) -> Period:
    """The period asked for, or InvalidFields naming each bad parameter."""
    problems = [FieldProblem(name, "not a known parameter") for name in sorted(set(query) - set(PARAMETERS))]
    days: dict[str, date] = {}
    for name in ("from", "to"):
        if (value := query.get(name)) is not None:
            day = parse_day(value)
            if day is None:
                problems.append(FieldProblem(name, "expected a date, YYYY-MM-DD (a day in gateway.timezone)"))
            else:
                days[name] = day
    group_by = query.get("group_by", "category")
    if group_by not in GROUPS:
        problems.append(FieldProblem("group_by", f"expected one of {', '.join(GROUPS)}"))
    if query.get("format", "json") not in ("json", "csv"):
        problems.append(FieldProblem("format", "expected json or csv"))
    last = days["to"] if "to" in days else now.astimezone(ZoneInfo(zone)).date()
    # Computed only when `from` is not given, and never before the first day parse_day accepts:
    # `to=0001-01-07` alone is a report from 0001-01-02, not an OverflowError (a 500).
    first = days["from"] if "from" in days else last - timedelta(days=min(DEFAULT_DAYS - 1, (last - date.min).days - 1))
    if not problems and first > last:
        problems.append(FieldProblem("to", "must not be before `from`"))
    elif not problems and (last - first).days >= MAX_DAYS:
        problems.append(FieldProblem("from", f"a report spans at most {MAX_DAYS} days"))
    if problems:
        raise InvalidFields(problems)
    return Period(first, last, group_by, zone)



async def compliance(session: AsyncSession, period: Period, *, at: datetime) -> Report:
    """The report read in one transaction; `at` decides "past the deadline"."""
    start, end = period.bounds()
    return _report(period, at, await _rows(session, period.group_by, start, end, at))


async def compliance_report(db: Database, period: Period, *, at: datetime, slices: int | None = None) -> Report:
    """The report as the API, the console and the CLI give it: a long period is cut into slices of
    opening time, each read on a connection of its own at once, and their counts added up.

    SQLite runs one query on one core, and a year of a million protocols is seconds of it: the
    notifications' join alone took 4.2 s on one core, 2.2 s as two halves at once (2 cores).
    Each slice reads its protocols with their requests and notifications in one transaction, so
    every protocol is counted whole; slices are read within the same moment, not one snapshot.
    """
    start, end = period.bounds()
    cuts = _slices(start, end, slices)

    async def one(lo: datetime, hi: datetime) -> dict[str | None, Row]:
        async with db.read() as session:
            return await _rows(session, period.group_by, lo, hi, at)

    parts = await asyncio.gather(*(one(lo, hi) for lo, hi in cuts))
    rows: dict[str | None, Row] = {}
    for part in parts:
        for g, row in part.items():
            _add(rows.setdefault(g, Row(g)), row)
    return _report(period, at, rows)


def _slices(start: datetime, end: datetime, count: int | None) -> list[tuple[datetime, datetime]]:
    """`count` slices of equal length (by default: one per core, at most MAX_SLICES, for a long period)."""
    if count is None:
        count = max(1, min(MAX_SLICES, os.cpu_count() or 1)) if end - start > SLICE_FROM else 1
    step = (end - start) / count
    cuts = [start + step * i for i in range(count)] + [end]
    return list(zip(cuts, cuts[1:]))


async def _rows(session: AsyncSession, group_by: str, start: datetime, end: datetime,
                at: datetime) -> dict[str | None, Row]:
    """Three grouped queries over the protocols opened in [start, end)."""
    p = Protocol
    key = getattr(p, group_by)
    opened_in = and_(p.opened_at >= start, p.opened_at < end)

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    rows: dict[str | None, Row] = {}
    for g, opened, resolved, within, past in (await session.execute(
            select(key, func.count(), count(p.resolved_at.is_not(None)),
                   count(and_(p.resolved_at.is_not(None), p.resolved_at <= p.deadline_at)),
                   count(and_(p.status.in_(OPEN_STATUSES), p.deadline_at < at)))
            .where(opened_in).group_by(key))).all():
        rows[g] = Row(g, opened, resolved or 0, within or 0, past or 0)
    r = ConsumerRequest
    for g, requests, in_time in (await session.execute(
            select(key, func.count(), count(and_(r.fulfilled_at.is_not(None), r.fulfilled_at <= r.due_at)))
            .join(p, p.id == r.protocol_id).where(opened_in).group_by(key))).all():
        rows[g].requests, rows[g].requests_fulfilled_in_time = requests, in_time or 0
    n = Notification
    for g, channel, status, total in (await session.execute(
            select(key, n.channel, n.status, func.count()).join(p, p.id == n.protocol_id).where(opened_in)
            .group_by(key, n.channel, n.status))).all():
        rows[g].notifications.setdefault(channel, {})[status] = total
    return rows


def _report(period: Period, at: datetime, rows: dict[str | None, Row]) -> Report:
    # The kinds of demand most received first (the seed asks for exactly that), then by name.
    groups = sorted(rows.values(), key=lambda row: (-row.opened, row.group is None, row.group or ""))
    return Report(period, at, groups, _total(groups))


def _add(into: Row, row: Row) -> None:
    for name in COUNTS:
        setattr(into, name, getattr(into, name) + getattr(row, name))
    for channel, statuses in row.notifications.items():
        mine = into.notifications.setdefault(channel, {})
        for status, number in statuses.items():
            mine[status] = mine.get(status, 0) + number


def _total(groups: list[Row]) -> Row:
    total = Row(None)
    for row in groups:
        _add(total, row)
    return total


def to_csv(report: Report) -> str:
    """One line per group and a last line `(total)`; notifications as `notifications.<channel>.<status>` columns."""
    columns = sorted({f"{c}.{s}" for row in report.groups for c, statuses in row.notifications.items()
                      for s in statuses})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([report.period.group_by, *COUNTS[:3], "resolved_within_deadline_share", *COUNTS[3:],
                     "requests_fulfilled_in_time_share", *(f"notifications.{c}" for c in columns)])
    for row in [*report.groups, report.total]:
        d = row.as_dict()
        label = "(total)" if row is report.total else _cell(row.group or "")
        writer.writerow([label, *(d[name] for name in COUNTS[:3]), _number(d["resolved_within_deadline_share"]),
                         *(d[name] for name in COUNTS[3:]), _number(d["requests_fulfilled_in_time_share"]),
                         *(row.notifications.get(c.split(".")[0], {}).get(c.split(".")[1], 0) for c in columns)])
    return out.getvalue()


def _cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_START) else text


def _number(share: float | None) -> str:
    return "" if share is None else f"{share:.4f}"
