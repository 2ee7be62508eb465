"""The retention sweeps: notices before records expire, and at expiry the operator's choice.

When a record's retention ends is `protocols.retention`'s rule; anonymizing one is
`protocols.anonymize`. Profiles without a period (es, co, cl-sello-sernac until one is set) take part in
nothing here.

At expiry `retention.action` decides: `notify` (the default) reports the expired records to
operations and destroys nothing; `anonymize`, once `retention.grace` has also passed, removes
every personal datum of the consumer for good, keeps the number, dates, category, profile and
delivery statuses, writes an audit entry per protocol and per run, and on SQLite runs with
`secure_delete` and then truncates the WAL (store/vacuum.py), so old values survive neither in
freed pages nor in the WAL.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.delivery import outbox
from gateway.delivery.notifications import address_key, build_notification
from gateway.protocols.anonymize import anonymize
from gateway.protocols.profiles import Profile, Profiles, add_years
from gateway.protocols.retention import CANDIDATE_COLUMNS, RetentionRefused, effective_end
from gateway.store.column_rows import column_rows
from gateway.store.keyset import after
from gateway.store.models import Notification, Protocol
from gateway.store.page_cache import writer_cache_for
from gateway.store.sweep_models import RetentionAudit, SweepMark, is_open
from gateway.store.vacuum import erase_sqlite
from gateway.sweeps.context import SweepContext, claim_marks

log = logging.getLogger(__name__)

# `at` later than the clock by more than this is refused for anonymization: a typo in
# `schedules run --at` must not destroy records whose retention has not ended.
FUTURE_TOLERANCE = timedelta(minutes=5)
_MARGIN = timedelta(days=2)  # SQL bounds are widened by this; the exact test is in Python


def _start_bound(profile: Profile, end: datetime) -> datetime:
    """Roughly the latest start whose retention ends by `end` (exactness comes later, in Python)."""
    return add_years(end - timedelta(days=profile.retention_days or 0), -(profile.retention_years or 0))


def _sources(ctx: SweepContext, lo: datetime | None, hi: datetime, slot: str | None) -> list[tuple[Select[Any], Any]]:
    """Queries for records whose retention may end in (lo, hi], each with the indexed column it
    ranges over (and pages by, with the id): the stored end, the resolution, the last event."""
    abandoned = timedelta(seconds=ctx.settings.retention.abandoned_after)
    base = select(*CANDIDATE_COLUMNS).where(Protocol.legal_hold.is_(False))
    stored = base.where(Protocol.status == "resolved", Protocol.retention_until <= hi)
    if lo is not None:
        stored = stored.where(Protocol.retention_until > lo)
    if slot is not None:
        stored = stored.where(~exists().where(
            SweepMark.schedule == ctx.schedule.name, SweepMark.protocol_id == Protocol.id, SweepMark.slot == slot,
            SweepMark.target_at == Protocol.retention_until))
    sources: list[tuple[Select[Any], Any]] = [(stored, Protocol.retention_until)]
    for profile in ctx.profiles.with_retention():
        upper = _start_bound(profile, hi) + _MARGIN
        lower = _start_bound(profile, lo) - _MARGIN if lo is not None else None
        unretained = base.where(Protocol.status == "resolved", Protocol.retention_until.is_(None),
                                Protocol.profile == profile.name, Protocol.resolved_at <= upper)
        quiet = base.where(is_open(), Protocol.profile == profile.name,
                           Protocol.last_event_at <= upper - abandoned)
        if lower is not None:
            unretained = unretained.where(Protocol.resolved_at > lower)
            quiet = quiet.where(Protocol.last_event_at > lower - abandoned)
        sources += [(unretained, Protocol.resolved_at), (quiet, Protocol.last_event_at)]
    return sources


async def _stream(ctx: SweepContext, lo: datetime | None, hi: datetime, slot: str | None
                  ) -> AsyncIterator[list[tuple[Row[Any], datetime]]]:
    """Batches of (row, end) with lo < end <= hi, exactly, from every source, in keyset order."""
    abandoned = timedelta(seconds=ctx.settings.retention.abandoned_after)
    for query, column in _sources(ctx, lo, hi, slot):
        cursor: tuple[datetime, int] | None = None
        while True:
            page = query.where(after((column, Protocol.id), cursor)).order_by(column, Protocol.id).limit(ctx.batch_size)
            async with ctx.db.read() as session:
                rows = await column_rows(session, page.add_columns(column.label("_key")))
                if not rows:
                    break
                done = await _marked(session, ctx, slot, [r.id for r in rows]) if slot else set()
            cursor = (rows[-1]._key, rows[-1].id)
            ctx.result.considered += len(rows)
            batch = []
            for row in rows:
                end = effective_end(row, ctx.profiles, abandoned)
                if end is not None and end <= hi and (lo is None or end > lo) and (row.id, end) not in done:
                    batch.append((row, end))
                elif end is not None and end > hi and row.retention_until is not None and row.retention_until <= hi:
                    batch.append((row, end))  # stored end passed, current settings say later: extend
            if batch:
                yield batch
            if len(rows) < ctx.batch_size:
                break


async def _marked(session: AsyncSession, ctx: SweepContext, slot: str | None, ids: list[int]) -> set[tuple[int, datetime]]:
    rows = await session.execute(select(SweepMark.protocol_id, SweepMark.target_at).where(
        SweepMark.schedule == ctx.schedule.name, SweepMark.slot == slot, SweepMark.protocol_id.in_(ids)))
    return {(r.protocol_id, r.target_at) for r in rows}


# Notices


async def retention_notices(ctx: SweepContext) -> None:
    """Report records whose retention ends within each offset (e.g. 30 and 7 days), once per offset."""
    if not ctx.ops_emails:
        ctx.skip("no operations addresses ([operations] emails)")
        return
    for offset in ctx.schedule.offsets:
        await _report(ctx, offset.label, "expiring", ctx.at, ctx.at + offset.delta,
                      days=int(offset.seconds // 86400))


# Records in one report: their marks and the report's emails are one transaction (a record is
# marked reported only with its report queued). A run's records are gathered up to this many,
# so that a backlog reaches operations as a few reports, not one a batch (a batch of 1,000
# gave the bench's 36,483 expired records 37 emails). Writing 20,000 marks holds SQLite's
# writer ~0.5 s, as anonymization's longest batches do (measured over 600,000 protocols at a
# load of 3; a batch's 1,000 marks held it 0.02-0.09 s).
REPORT_MAX = 20_000


async def _report(ctx: SweepContext, slot: str, kind: str, lo: datetime | None, hi: datetime, days: int) -> None:
    # By (id, end): a record changed between two pages of the stream comes once all the same.
    gathered: dict[tuple[int, datetime], tuple[Row[Any], datetime]] = {}
    batch_no = 0
    async for batch in _stream(ctx, lo, hi, slot):
        listed = [(row, end) for row, end in batch if end <= hi]
        if not listed:
            continue
        batch_no += 1
        ctx.result.batches += 1
        gathered.update(((row.id, end), (row, end)) for row, end in listed)
        ctx.report(f"{kind} {slot}, batch {batch_no}: {len(gathered)} for the next report")
        while len(gathered) >= REPORT_MAX:
            keys = list(gathered)[:REPORT_MAX]
            await _send_report(ctx, slot, kind, [gathered.pop(key) for key in keys], days)
    if gathered:
        await _send_report(ctx, slot, kind, list(gathered.values()), days)


async def _send_report(ctx: SweepContext, slot: str, kind: str, listed: list[tuple[Row[Any], datetime]],
                       days: int) -> None:
    """Mark the records and queue their report, in one transaction; records another sweeper
    marked meanwhile are left to its report."""
    if ctx.dry_run:
        ctx.result.notified += len(listed)
        ctx.result.enqueued += len(ctx.ops_emails)
        ctx.report(f"{kind} {slot}: {len(listed)} would be reported")
        return
    marks = [{"schedule": ctx.schedule.name, "kind": ctx.schedule.kind, "protocol_id": row.id, "slot": slot,
              "target_at": end, "outcome": "sent", "marked_at": ctx.at, "notifications": len(ctx.ops_emails),
              "detail": None} for row, end in listed]
    async with ctx.db.write() as session:
        won = await claim_marks(session, marks)
        ours = [(row, end) for row, end in listed if row.id in won]
        ctx.result.lost += len(listed) - len(ours)
        if ours:
            notifications = _notice(ctx, slot, kind, ours, days)
            await session.run_sync(outbox.enqueue, notifications)
            ctx.result.notified += len(ours)
            ctx.result.enqueued += len(notifications)
    await ctx.marked(len(marks))
    ctx.report(f"{kind} {slot}: {len(ours)} reported")


def _notice(ctx: SweepContext, slot: str, kind: str, rows: Sequence[tuple[Row[Any], datetime]],
            days: int) -> list[Notification]:
    assert ctx.schedule.template is not None
    limit = ctx.schedule.options.list_limit
    soonest = heapq.nsmallest(limit, rows, key=lambda pair: (pair[1], pair[0].number))  # the rows come by source
    items = [{"number": row.number, "profile": row.profile, "retention_until": end} for row, end in soonest]
    notice = {"kind": kind, "within": slot, "days": days, "count": len(rows), "more": max(0, len(rows) - limit),
              "items": items, "action": ctx.settings.retention.action,
              "grace_days": int(ctx.settings.retention.grace // 86400)}
    rendered = ctx.templates.render(ctx.schedule.template, "email", ctx.ops_locale, ctx.ops_context(notice=notice))
    first, end = min(((row.id, end) for row, end in rows), key=lambda pair: pair[0])
    key = f"retention:{ctx.schedule.name}:{slot}:{first}:{int(end.timestamp())}"
    return [build_notification(rendered, protocol_id=None, recipient=address, audience="operations", now=ctx.at,
                               dedup_key=f"{key}:ops-{address_key(address)}",
                               reason=f"{ctx.schedule.name}: {len(rows)} record(s) {kind}")
            for address in ctx.ops_emails]


# Expiry


async def retention_expiry(ctx: SweepContext) -> None:
    """At expiry: report (`notify`), or anonymize after the grace period (`anonymize`)."""
    settings = ctx.settings.retention
    if settings.action == "notify":
        if not ctx.ops_emails or ctx.schedule.template is None:
            ctx.skip("retention.action is notify and there is no one to notify ([operations] emails)")
            return
        lookback = ctx.schedule.options.lookback
        lo = ctx.at - timedelta(seconds=lookback) if lookback is not None else None
        await _report(ctx, "expired", "expired", lo, ctx.at, days=0)
        return
    if not ctx.dry_run and ctx.at > ctx.clock() + FUTURE_TOLERANCE:
        raise RetentionRefused(f"anonymizing as of {ctx.at.isoformat()}, a time still to come, is refused "
                               "(use --dry-run to see what it would do)")
    grace = timedelta(seconds=settings.grace)
    actor = f"schedule:{ctx.schedule.name}"
    totals: dict[str, int] = {}
    numbers: list[str] = []
    # Room for a batch's pages in the writer's cache while the batches run (store/page_cache.py).
    async with writer_cache_for(ctx.db, ctx.batch_size) if not ctx.dry_run else nullcontext():
        async for batch in _stream(ctx, None, ctx.at - grace, None):
            ctx.result.batches += 1
            due = [(row, end) for row, end in batch if end + grace <= ctx.at]
            longer = [(row, end) for row, end in batch if end + grace > ctx.at]
            if ctx.dry_run:
                ctx.result.anonymized += len(due)
                ctx.result.extended += len(longer)
                continue
            rules = _rules(ctx.profiles, due, settings.grace, ctx.schedule.name)
            async with ctx.db.write() as session:
                if longer:
                    await _extend(session, longer, ctx.at, actor)
                    ctx.result.extended += len(longer)
                done, counts, held = await anonymize(session, [row.id for row, _ in due], at=ctx.at, actor=actor,
                                                     rules=rules, sqlite=ctx.db.is_sqlite)
            ctx.result.anonymized += len(done)
            ctx.result.held += held
            numbers += done
            for table, n in counts.items():
                totals[table] = totals.get(table, 0) + n
            ctx.report(f"anonymize, batch {ctx.result.batches}")
    if ctx.dry_run:
        return
    async with ctx.db.write() as session:
        session.add(RetentionAudit(at=ctx.at, action="anonymize_run", actor=actor,
                                   rule=f"retention.action=anonymize, grace {int(settings.grace // 86400)}d",
                                   detail={"anonymized": len(numbers), "extended": ctx.result.extended,
                                           "rows": totals, "numbers": numbers[:1000]}))
    if numbers:
        log.info("records anonymized", extra={"action": "retention_anonymized", "schedule": ctx.schedule.name,
                                              "count": len(numbers), "rows": totals})
        if ctx.db.is_sqlite:  # the WAL's copies of the old pages go too; VACUUM only if asked
            ctx.progress(f"{ctx.schedule.name}: checkpoint" + (" and VACUUM" if settings.vacuum else ""))
            ctx.result.wal_emptied = await erase_sqlite(ctx.db, vacuum=settings.vacuum)
            ctx.result.vacuumed = settings.vacuum


def _rules(profiles: Profiles, due: Sequence[tuple[Row[Any], datetime]], grace: float, schedule: str
           ) -> dict[int, str]:
    """Each record's rule in words, for its audit entry. Only the end differs between records of
    the same profile, status and extension: the rest is written once a batch."""
    tail = f"grace {int(grace // 86400)}d; retention.action=anonymize; schedule {schedule}"
    heads: dict[tuple[str, bool, int | None], str] = {}
    rules = {}
    for row, end in due:
        key = (row.profile, row.status == "resolved", row.retention_extension_years)
        head = heads.get(key)
        if head is None:
            head = heads[key] = _rule_head(profiles, row)
        rules[row.id] = f"{head}; retention ended {end.isoformat()}; {tail}"
    return rules


def _rule_head(profiles: Profiles, row: Any) -> str:
    basis = "resolved" if row.status == "resolved" else "abandoned (no event since last_event_at)"
    if row.retention_extension_years:
        basis += f"; extended by {row.retention_extension_years} years (protocol.retention_extended)"
    return f"{profiles.get(row.profile).retention_rule()}; {basis}"


async def _extend(session: AsyncSession, rows: Sequence[tuple[Row[Any], datetime]], at: datetime, actor: str) -> None:
    """The settings now keep these records longer than the stored end: store the later one."""
    for row, end in rows:
        if row.status != "resolved":
            continue
        await session.execute(update(Protocol).where(Protocol.id == row.id).values(retention_until=end)
                              .execution_options(synchronize_session=False))
        session.add(RetentionAudit(at=at, action="retention_extended", protocol_id=row.id, number=row.number,
                                   actor=actor, rule=f"retention_until {row.retention_until.isoformat()} -> "
                                                     f"{end.isoformat()} under the current settings"))


