"""The operations digest: once per cron period, what is due today, overdue, and pending requests.

The period is the schedule's last run time at or before `at` (within `max_lateness`): a run
after downtime sends the missed digest if it is not too late, and a second run in the same
period finds the period claimed (`sweep_runs` unique on schedule and period) and sends
nothing. Counts are set-based queries; only the first `list_limit` numbers are listed.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.delivery import outbox
from gateway.delivery.notifications import address_key, build_notification
from gateway.store.database import dialect_insert
from gateway.store.models import ConsumerRequest, Protocol
from gateway.store.sweep_models import SweepRun, is_open
from gateway.sweeps.context import SweepContext


async def operations_digest(ctx: SweepContext) -> None:
    if not ctx.ops_emails:
        ctx.skip("no operations addresses ([operations] emails)")
        return
    schedule = ctx.schedule
    window = schedule.options.max_lateness if schedule.options.max_lateness is not None else 8 * 86400.0
    fired = schedule.previous_run(ctx.at, window)
    if fired is None:
        ctx.skip("no digest due: its last scheduled time is longer ago than max_lateness")
        return
    period = fired.astimezone(schedule.zone).strftime("%Y-%m-%dT%H:%M")
    async with ctx.db.read() as session:
        if await session.scalar(select(SweepRun.id).where(SweepRun.schedule == schedule.name,
                                                          SweepRun.period == period)) is not None:
            ctx.skip(f"digest for {period} already sent")
            return
        digest = await _digest(session, ctx, fired)
    ctx.result.considered = digest["due_today"]["count"] + digest["overdue"]["count"] + digest["requests"]["count"]
    assert schedule.template is not None
    rendered = ctx.templates.render(schedule.template, "email", ctx.ops_locale, ctx.ops_context(digest=digest))
    notifications = [
        build_notification(rendered, protocol_id=None, recipient=address, audience="operations", now=ctx.at,
                           dedup_key=f"digest:{schedule.name}:{period}:ops-{address_key(address)}",
                           reason=f"{schedule.name}: digest for {period}")
        for address in ctx.ops_emails
    ]
    ctx.result.batches = 1
    if not ctx.dry_run:
        async with ctx.db.write() as session:
            if not await _claim_period(session, ctx, period, digest):
                ctx.result.lost += 1
                ctx.skip(f"digest for {period} sent by another sweeper")
                return
            await session.run_sync(outbox.enqueue, notifications)
    ctx.result.notified += 1
    ctx.result.enqueued += len(notifications)
    ctx.report(f"digest for {period}")


async def _claim_period(session: AsyncSession, ctx: SweepContext, period: str, digest: dict[str, Any]) -> bool:
    counts = {k: v["count"] for k, v in digest.items() if isinstance(v, dict) and "count" in v}
    stmt = (dialect_insert(session, SweepRun)
            .values(schedule=ctx.schedule.name, kind=ctx.schedule.kind, at=ctx.at, period=period, finished_at=ctx.at,
                    outcome="done", result=counts)
            .on_conflict_do_nothing(index_elements=["schedule", "period"])
            .returning(SweepRun.id))
    return (await session.execute(stmt)).first() is not None


async def _digest(session: AsyncSession, ctx: SweepContext, fired: datetime) -> dict[str, Any]:
    zone = ctx.schedule.zone
    day = ctx.at.astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = start + timedelta(days=1)
    limit = ctx.schedule.options.list_limit
    open_ = is_open()
    due_today = await _protocols(session, limit, open_, Protocol.deadline_at >= max(start, ctx.at),
                                 Protocol.deadline_at < end)
    overdue = await _protocols(session, limit, open_, Protocol.deadline_at < ctx.at)
    return {"day": fired, "generated_at": ctx.at, "due_today": due_today, "overdue": overdue,
            "requests": await _requests(session, limit, ctx.at)}


async def _protocols(session: AsyncSession, limit: int, *where: Any) -> dict[str, Any]:
    count = await session.scalar(select(func.count()).select_from(Protocol).where(*where)) or 0
    rows = (await session.execute(
        select(Protocol.number, Protocol.deadline_at, Protocol.profile, Protocol.status)
        .where(*where).order_by(Protocol.deadline_at, Protocol.id).limit(limit))).all()
    items = [{"number": r.number, "deadline_at": r.deadline_at, "profile": r.profile, "status": r.status} for r in rows]
    return {"count": count, "more": max(0, count - len(items)), "items": items}


async def _requests(session: AsyncSession, limit: int, at: datetime) -> dict[str, Any]:
    pending = (ConsumerRequest.fulfilled_at.is_(None), Protocol.status != "anonymized")
    base = select(func.count()).select_from(ConsumerRequest).join(Protocol, Protocol.id == ConsumerRequest.protocol_id)
    count = await session.scalar(base.where(*pending)) or 0
    overdue = await session.scalar(base.where(*pending, ConsumerRequest.due_at < at)) or 0
    rows = (await session.execute(
        select(Protocol.number, ConsumerRequest.kind, ConsumerRequest.channel, ConsumerRequest.requested_at,
               ConsumerRequest.due_at)
        .join(Protocol, Protocol.id == ConsumerRequest.protocol_id)
        .where(*pending).order_by(ConsumerRequest.due_at, ConsumerRequest.id).limit(limit))).all()
    items = [{"number": r.number, "kind": r.kind, "channel": r.channel, "requested_at": r.requested_at,
              "due_at": r.due_at} for r in rows]
    return {"count": count, "overdue": overdue, "more": max(0, count - len(items)), "items": items}
