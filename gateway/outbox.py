"""The outbox: enqueue in the caller's transaction, claim under a lease, record outcomes.

A claim sets `status='sending'` and pushes `next_attempt_at` to the lease's end, so one
indexed column says when any row next needs attention: a due retry, an expired lease
(its worker died) or an unknown outcome to send again. `attempts` doubles as the fencing
token: a worker whose lease expired and was re-claimed cannot overwrite the new owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import ACTIVE_STATUSES, Attempt, ConsumerRequest, Notification


@dataclass(frozen=True)
class Claimed:
    id: int
    protocol_id: int
    channel: str
    recipient: str
    template: str
    subject: str | None
    body_text: str
    body_html: str | None
    attempts: int
    created_at: datetime
    duplicate_possible: bool


@dataclass(frozen=True)
class Result:
    """What one send came to, ready to be written."""

    claimed: Claimed
    started_at: datetime
    finished_at: datetime
    status: str                       # sent, delivered, queued (retry), unknown, failed, dead
    next_attempt_at: datetime | None = None
    provider_id: str | None = None
    error: str | None = None
    error_code: str | None = None


async def enqueue(session: AsyncSession, notifications: list[Notification]) -> None:
    """Add rows to the caller's transaction; never commits (the caller's commit is the acknowledgement)."""
    if not notifications:
        return  # an empty insert would add one default row
    session.add_all(notifications)
    await session.flush()


async def claim(session: AsyncSession, *, now: datetime, limit: int, lease: float) -> list[Claimed]:
    """Take up to `limit` due rows for `lease` seconds. Disjoint across processes on PostgreSQL."""
    due = (
        select(Notification.id)
        .where(Notification.status.in_(ACTIVE_STATUSES), Notification.next_attempt_at <= now)
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(limit)
    )
    if session.bind.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    # A row that was 'sending' (lease expired: its worker died mid-send) or 'unknown' may
    # already be in the consumer's hands: the record says so.
    stmt = (
        update(Notification)
        .where(Notification.id.in_(due.scalar_subquery()))
        .values(
            status="sending",
            attempts=Notification.attempts + 1,
            next_attempt_at=now + timedelta(seconds=lease),
            duplicate_possible=case(
                (Notification.status.in_(("sending", "unknown")), True), else_=Notification.duplicate_possible
            ),
        )
        .returning(
            Notification.id, Notification.protocol_id, Notification.channel, Notification.recipient,
            Notification.template, Notification.subject, Notification.body_text, Notification.body_html,
            Notification.attempts, Notification.created_at, Notification.duplicate_possible,
        )
        .execution_options(synchronize_session=False)
    )
    rows = (await session.execute(stmt)).all()
    return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)


async def record(session: AsyncSession, results: list[Result]) -> int:
    """Write outcomes and their evidence rows; returns how many rows this worker still owned."""
    owned = 0
    for r in results:
        values: dict[str, object] = {"status": r.status, "last_error": r.error, "error_code": r.error_code}
        if r.status in ("sent", "delivered"):
            values.update(sent_at=r.finished_at, provider_id=r.provider_id, last_error=None, error_code=None)
            if r.status == "delivered":
                values["delivered_at"] = r.finished_at
        if r.next_attempt_at is not None:
            values["next_attempt_at"] = r.next_attempt_at
        result = await session.execute(
            update(Notification)
            .where(
                Notification.id == r.claimed.id,
                Notification.status == "sending",
                Notification.attempts == r.claimed.attempts,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        session.add(
            Attempt(
                notification_id=r.claimed.id,
                attempt=r.claimed.attempts,
                started_at=r.started_at,
                finished_at=r.finished_at,
                outcome=r.status,
                error=r.error,
                error_code=r.error_code,
                provider_id=r.provider_id,
            )
        )
        owned += result.rowcount
    # What the consumer asked for is fulfilled once its message has left.
    # One query per batch finds the few that answer a request; each gets its own send time.
    done = {r.claimed.id: r.finished_at for r in results if r.status in ("sent", "delivered")}
    if done:
        waiting = (await session.scalars(
            select(ConsumerRequest.notification_id).where(
                ConsumerRequest.notification_id.in_(done), ConsumerRequest.fulfilled_at.is_(None))
        )).all()
        for notification_id in waiting:
            await session.execute(
                update(ConsumerRequest)
                .where(ConsumerRequest.notification_id == notification_id, ConsumerRequest.fulfilled_at.is_(None))
                .values(fulfilled_at=done[notification_id])
                .execution_options(synchronize_session=False)
            )
    return owned


async def release(session: AsyncSession, claimed: list[Claimed], *, now: datetime) -> None:
    """Give back rows whose send was interrupted at shutdown: they may have left, so 'unknown', due now."""
    for c in claimed:
        await session.execute(
            update(Notification)
            .where(Notification.id == c.id, Notification.status == "sending", Notification.attempts == c.attempts)
            .values(status="unknown", next_attempt_at=now, duplicate_possible=True)
            .execution_options(synchronize_session=False)
        )
