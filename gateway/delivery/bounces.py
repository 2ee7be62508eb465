"""A bounce (an RFC 3464 DSN addressed to an email's own return path) applied to its notification.

The notification becomes `undelivered` with the remote status code ("5.1.1") unless a final
status is already on record; the DSN is kept as a provider callback (addresses in the remote
words masked), and what `undelivered` calls for (the fallback, upstream's webhook) is queued
in the same transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.delivery.dsn import Failure
from gateway.delivery.receipts import RANK
from gateway.delivery.status_hooks import StatusHooks
from gateway.observability import scrub
from gateway.store.models import Notification, ProviderCallback

log = logging.getLogger(__name__)


async def apply_bounce(session: AsyncSession, hooks: StatusHooks, *, notification_id: int, failure: Failure,
                       now: datetime) -> tuple[str | None, int]:
    """Record the bounce; returns (the new status, or None if unchanged; notifications queued)."""
    notification = await session.get(Notification, notification_id, with_for_update=True)
    if notification is None or notification.channel != "email":
        return None, 0
    diagnostic = scrub(failure.diagnostic)[:500] if failure.diagnostic else None
    session.add(ProviderCallback(
        notification_id=notification.id, provider_id=notification.provider_id, status="bounced",
        error_code=failure.status, received_at=now,
        payload={"type": "dsn", "action": "failed", "status": failure.status, "diagnostic_code": diagnostic,
                 "remote_mta": failure.remote_mta},
    ))
    if RANK["undelivered"] <= RANK.get(notification.status, 0):
        await session.flush()
        return None, 0
    notification.status = "undelivered"
    notification.error_code = failure.status
    notification.last_error = f"bounce: {failure.status}" + (f" {diagnostic}" if diagnostic else "")
    log.warning("email bounced", extra={"action": "email_bounced", "notification": notification.id,
                                        "error_code": failure.status})
    await session.flush()
    return "undelivered", await session.run_sync(hooks.changed, notification, now)
