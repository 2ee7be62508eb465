"""The opening confirmation's clock: where a profile sets `notify_within` (ANATEL's RGC: the
protocol number by SMS or email within 24 hours), operations are alerted about every protocol
whose confirmation no provider had accepted by then.

A function of `at`, like every sweep: a protocol received at R is decided at R + notify_within,
by whether a `protocol_opened` message has a `sent_at` no later than that (a message still being
retried, or sent after the moment, counts as not sent). The decision is final, so each protocol
gets one mark (slot `unconfirmed`, target the time it was received) whatever the outcome, and a
run after downtime catches up within `lookback`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, exists, func, select

from gateway.protocols.profiles import Profile
from gateway.store.keyset import after
from gateway.store.models import Notification, Protocol
from gateway.store.sweep_models import SweepMark
from gateway.sweeps.context import SweepContext
from gateway.sweeps.reminders import PROTOCOL_COLUMNS, Plan, commit_plans, to_operations

SLOT = "unconfirmed"
OPENING_TEMPLATE = "protocol_opened"  # the confirmation the service queues at the opening


async def unconfirmed_alerts(ctx: SweepContext) -> None:
    if not ctx.ops_emails:
        ctx.skip("no operations addresses ([operations] emails)")
        return
    for profile in ctx.profiles.profiles.values():
        if profile.notify_within is not None:
            await _sweep_profile(ctx, profile, timedelta(seconds=profile.notify_within))


async def _sweep_profile(ctx: SweepContext, profile: Profile, within: timedelta) -> None:
    hi = ctx.at - within
    lookback = ctx.schedule.options.lookback
    marked = exists().where(SweepMark.schedule == ctx.schedule.name, SweepMark.protocol_id == Protocol.id,
                            SweepMark.slot == SLOT, SweepMark.target_at == Protocol.received_at)
    query = select(*PROTOCOL_COLUMNS, Protocol.received_at).where(
        Protocol.profile == profile.name, Protocol.status != "anonymized", Protocol.received_at <= hi, ~marked)
    if lookback is not None:
        query = query.where(Protocol.received_at > hi - timedelta(seconds=lookback))
    cursor: tuple[datetime, int] | None = None
    while True:
        async with ctx.db.read() as session:
            rows = (await session.execute(query.where(after((Protocol.received_at, Protocol.id), cursor))
                                          .order_by(Protocol.received_at, Protocol.id).limit(ctx.batch_size))).all()
            if not rows:
                return
            first_sent = dict((await session.execute(
                select(Notification.protocol_id, func.min(Notification.sent_at))
                .where(Notification.protocol_id.in_([r.id for r in rows]), Notification.template == OPENING_TEMPLATE,
                       Notification.sent_at.is_not(None))
                .group_by(Notification.protocol_id))).all())
        cursor = (rows[-1].received_at, rows[-1].id)
        ctx.result.batches += 1
        ctx.result.considered += len(rows)
        await commit_plans(ctx, SLOT, [_decide(ctx, profile, within, row, first_sent.get(row.id)) for row in rows])
        if len(rows) < ctx.batch_size:
            return


def _decide(ctx: SweepContext, profile: Profile, within: timedelta, row: Row[Any], sent_at: datetime | None) -> Plan:
    due = row.received_at + within
    if sent_at is not None and sent_at <= due:
        return Plan(row.id, row.received_at, "confirmed", detail=f"sent {sent_at.isoformat()}")
    key = f"unconfirmed:{ctx.schedule.name}:{row.id}"
    extra = {"unconfirmed": {"due_at": due, "sent_at": sent_at, "within_hours": round(within.total_seconds() / 3600, 1),
                             "profile": profile.name}}
    return Plan(row.id, row.received_at, "sent",
                to_operations(ctx, row, key, f"{ctx.schedule.name}: opening confirmation not sent in time", extra))
