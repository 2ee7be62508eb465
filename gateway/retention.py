"""Retention: notices before records expire; at expiry the operator's choice; legal holds.

A record's retention ends at its profile's period after `resolved_at` (or, for a protocol
left unresolved, after it went `retention.abandoned_after` without events), never before the
`retention_until` stored when it was resolved. Profiles without a period (es, co, cl until
one is set) take part in nothing here.

At expiry `retention.action` decides: `notify` (the default) reports the expired records to
operations and destroys nothing; `anonymize`, once `retention.grace` has also passed, removes
every personal datum of the consumer for good, keeps the number, dates, category, profile and
delivery statuses, writes an audit entry per protocol and per run, and on SQLite runs with
`secure_delete` and then VACUUMs, so old values do not survive in free pages or the WAL.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, String, and_, cast, delete, exists, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import outbox
from gateway.errors import Conflict, NotFound, ServiceError
from gateway.notifications import address_key, build_notification
from gateway.policy import Profile, Profiles, UnknownProfile, add_years
from gateway.store.append_only import allow_redaction
from gateway.store.database import Database
from gateway.store.models import (
    Attempt,
    ConsumerRequest,
    Event,
    InboundMessage,
    Notification,
    OptOut,
    Protocol,
    ProviderCallback,
    RateLimit,
)
from gateway.store.sweep_models import OPEN_STATUSES, RetentionAudit, SweepMark
from gateway.sweep_context import SweepContext, after, claim_marks

log = logging.getLogger("gateway.retention")

EVENT_STUB = {"anonymized": True}
# `at` later than the clock by more than this is refused for anonymization: a typo in
# `schedules run --at` must not destroy records whose retention has not ended.
FUTURE_TOLERANCE = timedelta(minutes=5)
_MARGIN = timedelta(days=2)  # SQL bounds are widened by this; the exact test is in Python
CANDIDATE_COLUMNS = (Protocol.id, Protocol.number, Protocol.profile, Protocol.status, Protocol.resolved_at,
                     Protocol.retention_until, Protocol.last_event_at, Protocol.updated_at, Protocol.legal_hold)
REMOVED = ["protocols.consumer_name", "protocols.consumer_email", "protocols.consumer_phone", "protocols.subject",
           "protocols.metadata", "events.data", "events.fingerprint", "notifications.recipient (consumer)",
           "notifications.subject", "notifications.body_text", "notifications.body_html", "notifications.last_error",
           "notification_attempts.error", "provider_callbacks.payload", "consumer_requests.address",
           "inbound_messages (from, body)", "opt_outs", "rate_limits"]


class RetentionRefused(ServiceError):
    status = 409
    title = "Refused"


# When a record's retention ends


def retention_start(row: Any, abandoned_after: timedelta) -> datetime | None:
    if row.status == "resolved":
        return row.resolved_at
    if row.status in OPEN_STATUSES:
        last = row.last_event_at or row.updated_at
        return last + abandoned_after if last else None
    return None


def effective_end(row: Any, profiles: Profiles, abandoned_after: timedelta) -> datetime | None:
    """The end of the record's retention under the current settings, never before the stored one."""
    try:
        profile = profiles.get(row.profile)
    except UnknownProfile:
        return None
    start = retention_start(row, abandoned_after)
    if start is None or not profile.has_retention:
        return None
    computed = profile.retention_end(start)
    assert computed is not None
    stored = row.retention_until if row.status == "resolved" else None
    return max(computed, stored) if stored else computed


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
        quiet = base.where(Protocol.status.in_(OPEN_STATUSES), Protocol.profile == profile.name,
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
                rows = (await session.execute(page.add_columns(column.label("_key")))).all()
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


async def _report(ctx: SweepContext, slot: str, kind: str, lo: datetime | None, hi: datetime, days: int) -> None:
    batch_no = 0
    async for batch in _stream(ctx, lo, hi, slot):
        listed = [(row, end) for row, end in batch if end <= hi]
        if not listed:
            continue
        batch_no += 1
        ctx.result.batches += 1
        if ctx.dry_run:
            ctx.result.notified += len(listed)
            ctx.result.enqueued += len(ctx.ops_emails)
            continue
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
        ctx.report(f"{kind} {slot}, batch {batch_no}")


def _notice(ctx: SweepContext, slot: str, kind: str, rows: Sequence[tuple[Row[Any], datetime]],
            days: int) -> list[Notification]:
    assert ctx.schedule.template is not None
    limit = ctx.schedule.options.list_limit
    items = [{"number": row.number, "profile": row.profile, "retention_until": end} for row, end in rows[:limit]]
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
    async for batch in _stream(ctx, None, ctx.at - grace, None):
        ctx.result.batches += 1
        due = [(row, end) for row, end in batch if end + grace <= ctx.at]
        longer = [(row, end) for row, end in batch if end + grace > ctx.at]
        if ctx.dry_run:
            ctx.result.anonymized += len(due)
            ctx.result.extended += len(longer)
            continue
        async with ctx.db.write() as session:
            if longer:
                await _extend(session, longer, ctx.at, actor)
                ctx.result.extended += len(longer)
            rules = {row.id: _rule(ctx.profiles, row, end, settings.grace, ctx.schedule.name) for row, end in due}
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
        if ctx.db.is_sqlite and settings.vacuum:
            ctx.progress(f"{ctx.schedule.name}: VACUUM")
            ctx.result.vacuumed = await vacuum_sqlite(ctx.db)


def _rule(profiles: Profiles, row: Any, end: datetime, grace: float, schedule: str) -> str:
    profile = profiles.get(row.profile)
    basis = "resolved" if row.status == "resolved" else "abandoned (no event since last_event_at)"
    return (f"{profile.retention_rule()}; {basis}; retention ended {end.isoformat()}; "
            f"grace {int(grace // 86400)}d; retention.action=anonymize; schedule {schedule}")


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


# Anonymization


async def anonymize(session: AsyncSession, ids: list[int], *, at: datetime, actor: str, rules: dict[int, str],
                    sqlite: bool) -> tuple[list[str], dict[str, int], int]:
    """Remove the personal data of these protocols in the caller's transaction.

    Returns the numbers anonymized, rows changed per table, and how many were skipped for a
    legal hold placed since they were selected. Contacts (phone, email, addresses given on
    resend) are released (opt-outs, rate-limit keys, inbound SMS, messages about no single
    protocol) only when no other live protocol uses them.
    """
    if not ids:
        return [], {}, 0
    if sqlite:
        # Overwrite freed cells and pages with zeros: old values must not survive in the file.
        await session.execute(text("PRAGMA secure_delete=ON"))
    lock = select(Protocol.id, Protocol.number, Protocol.consumer_email, Protocol.consumer_phone, Protocol.legal_hold,
                  Protocol.status).where(Protocol.id.in_(ids))
    if not sqlite:
        lock = lock.with_for_update()
    current = (await session.execute(lock)).all()
    held = sum(1 for r in current if r.legal_hold)
    targets = [r for r in current if not r.legal_hold and r.status != "anonymized"]
    ids = [r.id for r in targets]
    if not ids:
        return [], {}, held
    # The one audited exception to the append-only record (gateway/store/append_only.py).
    allow_redaction(session, f"anonymization of {len(ids)} protocol(s) by {actor}: retention ended")
    released = await _released_contacts(session, targets, ids)
    counts = await _scrub(session, ids, released, at)
    for row in targets:
        session.add(RetentionAudit(at=at, action="anonymized", protocol_id=row.id, number=row.number,
                                   rule=rules.get(row.id), actor=actor,
                                   detail={"removed": REMOVED, "contacts_released": bool(released)}))
    return [r.number for r in targets], counts, held


async def _released_contacts(session: AsyncSession, targets: Sequence[Row[Any]], ids: list[int]) -> set[str]:
    """The phones and emails of these protocols (and addresses they were sent to) no other live protocol uses."""
    contacts = {c for r in targets for c in (r.consumer_email, r.consumer_phone) if c}
    contacts |= set((await session.scalars(select(Notification.recipient).where(
        Notification.protocol_id.in_(ids), Notification.audience == "consumer"))).all())
    contacts |= set((await session.scalars(select(ConsumerRequest.address).where(
        ConsumerRequest.protocol_id.in_(ids), ConsumerRequest.address.is_not(None)))).all())
    contacts.discard("")
    if not contacts:
        return set()
    live = (await session.execute(select(Protocol.consumer_email, Protocol.consumer_phone).where(
        or_(Protocol.consumer_email.in_(contacts), Protocol.consumer_phone.in_(contacts)),
        Protocol.status != "anonymized", Protocol.id.not_in(ids)))).all()
    in_use = {c for row in live for c in row if c}
    return contacts - in_use


async def _scrub(session: AsyncSession, ids: list[int], released: set[str], at: datetime) -> dict[str, int]:
    def run(stmt: Any) -> Any:
        return session.execute(stmt.execution_options(synchronize_session=False))

    counts: dict[str, int] = {}
    counts["protocols"] = (await run(update(Protocol).where(Protocol.id.in_(ids)).values(
        consumer_name=None, consumer_email=None, consumer_phone=None, subject="", extra=None,
        status="anonymized", anonymized_at=at, updated_at=at))).rowcount
    counts["events"] = (await run(update(Event).where(Event.protocol_id.in_(ids)).values(
        data=EVENT_STUB, fingerprint="anonymized"))).rowcount
    # Messages about no single protocol (a reply to an inbound SMS) sent to a released contact.
    general = and_(Notification.protocol_id.is_(None), Notification.audience == "consumer",
                   Notification.recipient.in_(released)) if released else None
    mine = Notification.protocol_id.in_(ids)
    # Fixed before any change: clearing a recipient must not drop a row from the scope.
    notification_ids = list((await session.scalars(
        select(Notification.id).where(or_(mine, general) if general is not None else mine))).all())
    scope = Notification.id.in_(notification_ids)
    counts["notification_attempts"] = (await run(update(Attempt).where(
        Attempt.notification_id.in_(notification_ids), Attempt.error.is_not(None)).values(error=None))).rowcount
    counts["provider_callbacks"] = (await run(update(ProviderCallback).where(
        ProviderCallback.notification_id.in_(notification_ids)).values(payload={}))).rowcount
    inbound = InboundMessage.reply_notification_id.in_(notification_ids)
    phones = {c for c in released if "@" not in c}
    if phones:
        inbound = or_(inbound, InboundMessage.from_phone.in_(phones))
    counts["inbound_messages"] = (await run(update(InboundMessage).where(inbound).values(
        from_phone="", body=""))).rowcount
    await run(update(Notification).where(scope, Notification.audience == "consumer").values(recipient=""))
    counts["notifications"] = (await run(update(Notification).where(scope).values(
        subject=None, body_text="", body_html=None, last_error=None))).rowcount
    counts["consumer_requests"] = (await run(update(ConsumerRequest).where(
        ConsumerRequest.protocol_id.in_(ids)).values(address=None))).rowcount
    counts["opt_outs"] = (await run(delete(OptOut).where(OptOut.phone.in_(phones)))).rowcount if phones else 0
    if released:
        named = or_(*(RateLimit.key.contains(c, autoescape=True) for c in released))
        counts["rate_limits"] = (await run(delete(RateLimit).where(named))).rowcount
        unmatched = or_(*(cast(ProviderCallback.payload, String).contains(p, autoescape=True) for p in phones)) \
            if phones else None
        if unmatched is not None:
            counts["provider_callbacks"] += (await run(update(ProviderCallback).where(
                ProviderCallback.notification_id.is_(None), unmatched).values(payload={}))).rowcount
    return counts


async def vacuum_sqlite(db: Database) -> bool:
    """Checkpoint and truncate the WAL, VACUUM, and again: outside any transaction, on the writer.

    Returns whether the WAL could be emptied (a reader in another process may hold it).
    """
    complete = True
    async with db.writer.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection  # aiosqlite: autocommit (isolation_level None), no BEGIN
        for sql in ("PRAGMA wal_checkpoint(TRUNCATE)", "VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"):
            cursor = await driver.execute(sql)
            row = await cursor.fetchone()
            await cursor.close()
            if sql.startswith("PRAGMA") and row is not None and row[0]:
                complete = False
    if not complete:
        log.warning("WAL not emptied after VACUUM", extra={"action": "retention_vacuum_incomplete"})
    return complete


# Manual anonymization and legal hold


async def anonymize_number(db: Database, profiles: Profiles, number: str, *, at: datetime, abandoned_after: float,
                           actor: str, dry_run: bool = False) -> dict[str, Any]:
    """Anonymize one protocol now, by decision of an operator. Refused under legal hold or
    before its minimum retention has ended."""
    async with db.read() as session:
        row = (await session.execute(select(*CANDIDATE_COLUMNS).where(Protocol.number == number))).first()
    if row is None:
        raise NotFound(f"no protocol {number}")
    if row.status == "anonymized":
        raise RetentionRefused(f"protocol {number} is already anonymized")
    if row.legal_hold:
        raise RetentionRefused(f"protocol {number} is under legal hold")
    end = effective_end(row, profiles, timedelta(seconds=abandoned_after))
    if end is None:
        raise RetentionRefused(f"protocol {number}: profile {row.profile} has no retention period set "
                               f"([profiles.{row.profile}] retention_years)")
    if at < end:
        raise RetentionRefused(f"protocol {number}: its minimum retention ends {end.isoformat()}; anonymizing "
                               "before then is refused")
    rule = f"{profiles.get(row.profile).retention_rule()}; retention ended {end.isoformat()}; by {actor}"
    if dry_run:
        return {"number": number, "anonymized": False, "dry_run": True, "retention_ended": end.isoformat()}
    async with db.write() as session:
        done, counts, held = await anonymize(session, [row.id], at=at, actor=actor, rules={row.id: rule},
                                             sqlite=db.is_sqlite)
    if not done:
        raise RetentionRefused(f"protocol {number} was placed under legal hold meanwhile" if held else
                               f"protocol {number} was anonymized meanwhile")
    log.info("record anonymized", extra={"action": "retention_anonymized", "number": number, "count": 1})
    vacuumed = await vacuum_sqlite(db) if db.is_sqlite else False
    return {"number": number, "anonymized": True, "rows": counts, "vacuumed": vacuumed}


async def set_legal_hold(db: Database, number: str, hold: bool, *, at: datetime, actor: str,
                         reason: str | None = None) -> dict[str, Any]:
    """Place or lift a legal hold; audited. Returns the protocol's hold and whether it changed."""
    async with db.write() as session:
        row = (await session.execute(select(Protocol.id, Protocol.status, Protocol.legal_hold)
                                     .where(Protocol.number == number))).first()
        if row is None:
            raise NotFound(f"no protocol {number}")
        if row.status == "anonymized" and hold:
            raise Conflict(f"protocol {number} is anonymized: no personal data is left to hold")
        changed = row.legal_hold != hold
        if changed:
            await session.execute(update(Protocol).where(Protocol.id == row.id).values(legal_hold=hold)
                                  .execution_options(synchronize_session=False))
            session.add(RetentionAudit(at=at, action="hold_placed" if hold else "hold_lifted", protocol_id=row.id,
                                       number=number, actor=actor, rule=None,
                                       detail={"reason": reason} if reason else None))
    log.info("legal hold %s", "placed" if hold else "lifted",
             extra={"action": "legal_hold_placed" if hold else "legal_hold_lifted", "number": number,
                    "changed": changed})
    return {"number": number, "legal_hold": hold, "changed": changed}

