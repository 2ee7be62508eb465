"""Dead letters and the outbox seen by operations: list, retry one, requeue many, and the
numbers `/metrics` shows at each scrape.

Retrying puts a notification back in the queue, due now: `status = 'queued'`,
`next_attempt_at = now`. Its attempts and their evidence stay; the requeue itself is
recorded as an attempt row with outcome `requeued` whose `error` says who and why. Only
notifications that did not reach the consumer can be retried: `dead`, `failed`,
`undelivered`, `unknown` (and `queued`, which is then just sent now). Never one that is
`sent`, `delivered`, `sending` (in flight) or `cancelled`, nor one with a delivery time or
a `delivered` receipt on record, whatever its status says: requeueing never duplicates a
message that was delivered. Every condition is in the UPDATE itself, so a receipt or a
worker racing the requeue wins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import parse_duration
from gateway.delivery.admin_options import ATTENTION, DEFAULT_LIMIT, MAX_LIMIT, RETRYABLE, STATUSES  # noqa: F401
from gateway.errors import Conflict, NotFound
from gateway.observability import mask
from gateway.store.models import ACTIVE_STATUSES, Attempt, Notification, Protocol, ProviderCallback

log = logging.getLogger(__name__)

ALIASES = {"pending": ACTIVE_STATUSES, "attention": ATTENTION, "all": STATUSES}


def parse_statuses(text: str | None) -> tuple[str, ...]:
    """'dead,failed' -> ('dead', 'failed'); 'pending' = queued, sending, unknown; default: attention."""
    if not text:
        return ATTENTION
    out: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part in ALIASES:
            out.extend(ALIASES[part])
        elif part in STATUSES:
            out.append(part)
        else:
            raise ValueError(f"unknown status {part!r}: expected some of {', '.join(STATUSES + tuple(ALIASES))}")
    return tuple(dict.fromkeys(out))


def parse_since(text: str, *, now: datetime) -> datetime:
    """An RFC 3339 time with its offset ('2026-11-22T10:00:00-03:00'), or a duration ago ('2h', '3d')."""
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected a time such as 2026-11-22T10:00:00Z or a duration ago such as 2h, got {text!r}") \
            from None
    if value.utcoffset() is None:
        raise ValueError(f"give the time with its offset (Z or -03:00): {text!r}")
    return value


@dataclass(frozen=True)
class OutboxItem:
    id: int
    protocol: str | None
    channel: str
    template: str
    recipient: str | None  # masked
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    error_code: str | None
    provider_id: str | None
    provider: str | None  # the named relay or account of the last try
    duplicate_possible: bool
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _item(n: Notification, number: str | None) -> OutboxItem:
    return OutboxItem(n.id, number, n.channel, n.template, mask(n.recipient), n.status, n.attempts, n.created_at,
                      n.next_attempt_at, n.sent_at, n.delivered_at, n.last_error, n.error_code, n.provider_id,
                      n.provider, n.duplicate_possible, n.reason)


async def list_notifications(session: AsyncSession, *, statuses: tuple[str, ...] = ATTENTION,
                             limit: int = DEFAULT_LIMIT, before: int | None = None,
                             protocol: str | None = None) -> list[OutboxItem]:
    """Newest first; `before` is the id to continue below (the last id of the previous page)."""
    query = (select(Notification, Protocol.number).outerjoin(Protocol, Protocol.id == Notification.protocol_id)
             .where(Notification.status.in_(statuses)).order_by(Notification.id.desc())
             .limit(max(1, min(limit, MAX_LIMIT))))
    if before is not None:
        query = query.where(Notification.id < before)
    if protocol is not None:
        query = query.where(Protocol.number == protocol)
    return [_item(n, number) for n, number in (await session.execute(query)).all()]


async def get_item(session: AsyncSession, notification_id: int) -> OutboxItem:
    found = (await session.execute(
        select(Notification, Protocol.number).outerjoin(Protocol, Protocol.id == Notification.protocol_id)
        .where(Notification.id == notification_id))).first()
    if found is None:
        raise NotFound(f"no notification {notification_id}")
    return _item(*found)


def _never_delivered() -> ColumnElement[bool]:
    receipt = exists().where(ProviderCallback.notification_id == Notification.id,
                             ProviderCallback.status == "delivered")
    return and_(Notification.delivered_at.is_(None), ~receipt)


def _last_tried() -> Any:
    """When the last attempt ended (a dead row's time of death), else when it was created."""
    last = (select(func.max(Attempt.finished_at)).where(Attempt.notification_id == Notification.id)
            .correlate(Notification).scalar_subquery())
    return func.coalesce(last, Notification.created_at)


async def retry(session: AsyncSession, notification_id: int, *, now: datetime, reason: str) -> OutboxItem:
    """Queue one notification again, due now; 404 when unknown, 409 when it must not be retried."""
    item = await get_item(session, notification_id)
    ids = await _requeue(session, [Notification.id == notification_id], now=now, reason=reason)
    if not ids:
        current = await get_item(session, notification_id)
        if current.status in RETRYABLE:
            raise Conflict(f"notification {notification_id} has been delivered: it is not sent again")
        raise Conflict(f"notification {notification_id} is {current.status}: only "
                       f"{', '.join(RETRYABLE)} notifications can be retried")
    log.info("notification requeued", extra={"action": "outbox_requeued", "notification": notification_id,
                                             "previous_status": item.status, "reason": reason})
    return await get_item(session, notification_id)


async def requeue(session: AsyncSession, *, statuses: tuple[str, ...], now: datetime, reason: str,
                  since: datetime | None = None, limit: int | None = None, dry_run: bool = False) -> list[int]:
    """Queue again every notification in `statuses` (retryable ones only) whose last attempt
    ended at or after `since`; returns their ids, oldest first."""
    refused = [s for s in statuses if s not in RETRYABLE]
    if refused:
        raise ValueError(f"cannot requeue {', '.join(refused)} notifications: only {', '.join(RETRYABLE)}")
    conditions: list[ColumnElement[bool]] = [Notification.status.in_(statuses)]
    if since is not None:
        conditions.append(_last_tried() >= since)
    if dry_run:
        query = select(Notification.id).where(*conditions, _never_delivered()).order_by(Notification.id)
        return list((await session.scalars(query.limit(limit) if limit else query)).all())
    ids = await _requeue(session, conditions, now=now, reason=reason, limit=limit)
    log.info("notifications requeued", extra={"action": "outbox_requeued", "count": len(ids),
                                              "statuses": ",".join(statuses), "reason": reason})
    return ids


async def _requeue(session: AsyncSession, conditions: list[ColumnElement[bool]], *, now: datetime, reason: str,
                   limit: int | None = None) -> list[int]:
    chosen = (select(Notification.id, Notification.status, Notification.attempts)
              .where(*conditions, Notification.status.in_(RETRYABLE), _never_delivered())
              .order_by(Notification.id))
    if limit:
        chosen = chosen.limit(limit)
    if session.bind.dialect.name == "postgresql":
        chosen = chosen.with_for_update(of=Notification)  # a receipt or a claim racing this waits, then is seen
    rows = (await session.execute(chosen)).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    updated = (await session.execute(
        update(Notification)
        .where(Notification.id.in_(ids), Notification.status.in_(RETRYABLE), _never_delivered())
        .values(status="queued", next_attempt_at=now, retry_from=now)
        .returning(Notification.id)
        .execution_options(synchronize_session=False))).scalars().all()
    done = set(updated)
    session.add_all([
        Attempt(notification_id=r.id, attempt=r.attempts, started_at=now, finished_at=now, outcome="requeued",
                error=f"requeued (was {r.status}): {reason}"[:1000])
        for r in rows if r.id in done
    ])
    await session.flush()
    return sorted(done)


@dataclass(frozen=True)
class OutboxStats:
    depth: dict[str, int]  # every status, zero included
    oldest_due_seconds: float  # how long the oldest due row has waited past its time; 0 when none is due
    dead: int


async def outbox_stats(session: AsyncSession, *, now: datetime) -> OutboxStats:
    counts = dict((await session.execute(
        select(Notification.status, func.count()).group_by(Notification.status))).all())
    # Due: waiting to be sent (queued, unknown) or claimed by a worker whose lease ran out.
    oldest = await session.scalar(
        select(func.min(Notification.next_attempt_at))
        .where(Notification.status.in_(ACTIVE_STATUSES), Notification.next_attempt_at <= now))
    depth = {status: int(counts.get(status, 0)) for status in STATUSES}
    depth.update({status: int(count) for status, count in counts.items() if status not in depth})
    waited = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return OutboxStats(depth, waited, depth.get("dead", 0))
