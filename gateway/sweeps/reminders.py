"""Deadline sweeps: reminders before the answer is due, and alerts once it has passed.

Each is a function of the sweep's `at`. For every offset a run selects, in keyset order and
in batches, the unresolved protocols whose moment (`deadline_at - offset`, or the deadline
itself for an alert) is due by `at` and that carry no mark for (schedule, protocol, slot,
deadline): everything due and not done, so a run after downtime catches up. `lookback`
bounds how far back it looks; a moment passed longer than `max_lateness` ago is marked
`late` and not sent. The mark and the notifications commit together, and the mark's unique
key decides between two sweepers: the loser inserts nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, exists, select

from gateway.delivery import outbox
from gateway.delivery.notifications import address_key, build_notification
from gateway.protocols import whatsapp_consent
from gateway.protocols.contacts import contacts, may_text
from gateway.protocols.email_opt_outs import email_key, opted_out_keys
from gateway.rendering.context import consumer_context, protocol_fields
from gateway.rendering.page_link import render_consumer
from gateway.store.keyset import after
from gateway.store.models import Notification, OptOut, Protocol
from gateway.store.sweep_models import SweepMark, is_open
from gateway.sweeps.context import SweepContext, claim_marks
from gateway.sweeps.quiet_hours import next_allowed
from gateway.sweeps.schedules import Offset

log = logging.getLogger(__name__)

PROTOCOL_COLUMNS = (
    Protocol.id, Protocol.number, Protocol.subject, Protocol.category, Protocol.status, Protocol.profile,
    Protocol.channel, Protocol.consumer_name, Protocol.consumer_email, Protocol.consumer_phone, Protocol.consumer_whatsapp,
    Protocol.consumer_locale, Protocol.consumer_timezone, Protocol.notify, Protocol.opened_at,
    Protocol.deadline_at, Protocol.resolved_at, Protocol.page_token_hash,
)


@dataclass
class Plan:
    """What one candidate comes to: its mark's outcome and the messages to queue with it."""

    protocol_id: int
    target_at: datetime
    outcome: str                      # sent, late, opted_out, no_contact
    notifications: list[Notification] = field(default_factory=list)
    detail: str | None = None


Decide = Callable[[Row[Any], set[str]], Plan]


async def deadline_reminders(ctx: SweepContext) -> None:
    if ctx.schedule.audience == "operations" and not ctx.ops_emails:
        ctx.skip("no operations addresses ([operations] emails)")
        return
    lookback = ctx.schedule.options.lookback
    for offset in ctx.schedule.offsets:
        hi = ctx.at + offset.delta
        lo = hi - timedelta(seconds=lookback) if lookback is not None else None
        await sweep_protocols(ctx, offset.label, lo, hi, lambda row, opted, o=offset: _reminder(ctx, o, row, opted))


async def overdue_alerts(ctx: SweepContext) -> None:
    if not ctx.ops_emails:
        ctx.skip("no operations addresses ([operations] emails)")
        return
    lookback = ctx.schedule.options.lookback
    lo = ctx.at - timedelta(seconds=lookback) if lookback is not None else None
    await sweep_protocols(ctx, "overdue", lo, ctx.at, lambda row, _opted: _overdue(ctx, row))


def due_protocols(schedule: str, slot: str, lo: datetime | None, hi: datetime,
                  cursor: tuple[datetime, int] | None, limit: int) -> Select[Any]:
    """Unresolved protocols with lo < deadline_at <= hi and no mark for this slot and deadline."""
    marked = exists().where(
        SweepMark.schedule == schedule, SweepMark.protocol_id == Protocol.id,
        SweepMark.slot == slot, SweepMark.target_at == Protocol.deadline_at,
    )
    query = select(*PROTOCOL_COLUMNS).where(
        is_open(), Protocol.deadline_at <= hi, ~marked,
        after((Protocol.deadline_at, Protocol.id), cursor),
    )
    if lo is not None:
        query = query.where(Protocol.deadline_at > lo)
    return query.order_by(Protocol.deadline_at, Protocol.id).limit(limit)


async def sweep_protocols(ctx: SweepContext, slot: str, lo: datetime | None, hi: datetime, decide: Decide) -> None:
    cursor: tuple[datetime, int] | None = None
    batch = 0
    while True:
        async with ctx.db.read() as session:
            rows = (await session.execute(due_protocols(ctx.schedule.name, slot, lo, hi, cursor, ctx.batch_size))).all()
            if not rows:
                return
            opted_out = await _opted_out(session, rows) if "sms" in ctx.schedule.channels else set()
            if "whatsapp" in ctx.schedule.channels:  # prefixed: a WhatsApp STOP is not an SMS STOP
                opted_out |= {f"whatsapp:{p}" for p in await whatsapp_consent.opted_out(
                    session, (contacts(r)["whatsapp"] for r in rows))}
            if "email" in ctx.schedule.channels and ctx.schedule.audience == "consumer":
                # Phones and address hashes cannot be mistaken for each other in one set.
                opted_out |= await opted_out_keys(session, (r.consumer_email for r in rows))
        cursor = (rows[-1].deadline_at, rows[-1].id)
        batch += 1
        ctx.result.batches += 1
        ctx.result.considered += len(rows)
        plans = [decide(row, opted_out) for row in rows]
        await commit_plans(ctx, slot, plans)
        ctx.report(f"{slot}, batch {batch}")
        if len(rows) < ctx.batch_size:
            return


async def commit_plans(ctx: SweepContext, slot: str, plans: Sequence[Plan]) -> set[int]:
    """Marks and their notifications in one transaction; counts what this sweeper did."""
    if ctx.dry_run:
        won = {p.protocol_id for p in plans}
    else:
        marks = [{"schedule": ctx.schedule.name, "kind": ctx.schedule.kind, "protocol_id": p.protocol_id, "slot": slot,
                  "target_at": p.target_at, "outcome": p.outcome, "marked_at": ctx.at,
                  "notifications": len(p.notifications), "detail": p.detail} for p in plans]
        async with ctx.db.write() as session:
            won = await claim_marks(session, marks)
            await session.run_sync(outbox.enqueue, [n for p in plans if p.protocol_id in won for n in p.notifications])
        await ctx.marked(len(won))
    result = ctx.result
    for plan in plans:
        if plan.protocol_id not in won:
            result.lost += 1
        elif plan.outcome == "sent":
            result.notified += 1
            result.enqueued += len(plan.notifications)
        elif plan.outcome == "late":
            result.late += 1
        else:
            result.suppressed += 1
    return won


async def _opted_out(session: Any, rows: Sequence[Row[Any]]) -> set[str]:
    phones = {r.consumer_phone for r in rows if r.consumer_phone}
    if not phones:
        return set()
    return set((await session.scalars(select(OptOut.phone).where(OptOut.phone.in_(phones)))).all())


def _reminder(ctx: SweepContext, offset: Offset, row: Row[Any], opted_out: set[str]) -> Plan:
    moment = row.deadline_at - offset.delta
    lateness = ctx.at - moment
    limit = ctx.schedule.options.max_lateness
    if row.deadline_at <= ctx.at or (limit is not None and lateness.total_seconds() > limit):
        return Plan(row.id, row.deadline_at, "late", detail=f"{int(lateness.total_seconds())}s after its moment")
    extra = {"reminder": {"offset": offset.label,
                          "hours_left": round((row.deadline_at - ctx.at).total_seconds() / 3600)}}
    key = f"reminder:{ctx.schedule.name}:{row.id}:{int(row.deadline_at.timestamp())}:{offset.label}"
    reason = f"{ctx.schedule.name}: {offset.label} before the deadline"
    if ctx.schedule.audience == "operations":
        return Plan(row.id, row.deadline_at, "sent", to_operations(ctx, row, key, reason, extra))
    return _to_consumer(ctx, row, opted_out, key, reason, extra)


def _overdue(ctx: SweepContext, row: Row[Any]) -> Plan:
    late = ctx.at - row.deadline_at
    limit = ctx.schedule.options.max_lateness
    if limit is not None and late.total_seconds() > limit:
        return Plan(row.id, row.deadline_at, "late", detail=f"{int(late.total_seconds())}s after the deadline")
    key = f"overdue:{ctx.schedule.name}:{row.id}:{int(row.deadline_at.timestamp())}"
    extra = {"overdue": {"hours": int(late.total_seconds() // 3600)}}
    return Plan(row.id, row.deadline_at, "sent",
                to_operations(ctx, row, key, f"{ctx.schedule.name}: deadline passed", extra))


def to_operations(ctx: SweepContext, row: Row[Any], key: str, reason: str, extra: dict[str, Any]) -> list[Notification]:
    assert ctx.schedule.template is not None
    context = ctx.ops_context(protocol=protocol_fields(row), **extra)
    rendered = ctx.templates.render(ctx.schedule.template, "email", ctx.ops_locale, context)
    return [build_notification(rendered, protocol_id=row.id, recipient=address, audience="operations", now=ctx.at,
                               dedup_key=f"{key}:ops-{address_key(address)}", reason=reason)
            for address in ctx.ops_emails]


def _to_consumer(ctx: SweepContext, row: Row[Any], opted_out: set[str], key: str, reason: str,
                 extra: dict[str, Any]) -> Plan:
    targets_by = contacts(row)
    chosen = [c for c in (row.notify or "").split(",") if c] or [c for c in ("email", "sms") if targets_by[c]]
    wanted = [c for c in ctx.schedule.channels if c in chosen and targets_by.get(c)]
    targets = [c for c in wanted if not (c == "sms" and row.consumer_phone in opted_out)
               and not (c == "email" and email_key(row.consumer_email) in opted_out)
               and not (c == "whatsapp" and f"whatsapp:{targets_by['whatsapp']}" in opted_out)]
    if not targets:
        outcome = "opted_out" if wanted else "no_contact"
        return Plan(row.id, row.deadline_at, outcome, detail=f"channels {','.join(wanted) or 'none'}")
    assert ctx.schedule.template is not None
    quiet = ctx.settings.quiet_hours
    send_at = (next_allowed(ctx.at, row.consumer_timezone, quiet.send_after, quiet.send_before)
               if quiet.enabled else ctx.at)
    textable = may_text(row.consumer_phone, tuple(ctx.settings.sms.allowed_countries))
    context = consumer_context(row, ctx.settings, textable=textable, page_url=_page_url(ctx, row), **extra)
    notifications = []
    for channel in targets:
        rendered = render_consumer(ctx.templates, ctx.schedule.template, channel, row.consumer_locale, context)
        notification = build_notification(
            rendered, protocol_id=row.id, recipient=targets_by[channel], audience="consumer", now=ctx.at,
            next_attempt_at=send_at, dedup_key=f"{key}:{channel}", reason=reason)
        if channel == "whatsapp":  # proactive: outside the 24 hours it goes as the approved template
            notification.whatsapp_content = ctx.templates.whatsapp_content(rendered, row.consumer_locale, context)
        notifications.append(notification)
    left_out = [c for c in wanted if c not in targets]
    detail = f"{','.join(left_out)} opted out" if left_out else None
    return Plan(row.id, row.deadline_at, "sent", notifications, detail=detail)


def _page_url(ctx: SweepContext, row: Any) -> str | None:
    """The consumer's page, where the protocol's row already holds its token's hash (every
    message the service sends records it): a sweep reads rows and writes none of them."""
    pages = ctx.pages
    if pages is None or row.page_token_hash is None:
        return None
    url, digest = pages.link(row.number)
    return url if digest == row.page_token_hash else None
