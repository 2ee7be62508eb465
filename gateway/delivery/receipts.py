"""Delivery receipts: a provider's word on a notification, applied without going backwards.

Receipts arrive late and out of order. Statuses are ranked and a receipt only moves a
notification forward: a `sent` after a `delivered` changes nothing. A receipt also settles
a send whose outcome was `unknown` (the provider call timed out), so it is not sent again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.delivery.status_hooks import StatusHooks
from gateway.store.models import Notification, ProviderCallback

log = logging.getLogger(__name__)

# Twilio's MessageStatus values, in our one enum.
TWILIO_STATUS = {
    "accepted": "sent", "queued": "sent", "scheduled": "sent", "sending": "sent", "sent": "sent",
    "delivered": "delivered", "read": "read",
    "undelivered": "undelivered", "failed": "failed", "canceled": "failed",
}
# Higher is later. Final receipts share the top rank: the first one stands. `dead` (we gave up)
# ranks below them, so a late receipt still tells the truth about what the consumer got.
# WhatsApp's `read` comes after `delivered` (forward only): a read receipt that arrives before
# its delivered one counts as both.
RANK = {"queued": 0, "sending": 1, "unknown": 1, "sent": 2, "dead": 2,
        "delivered": 3, "undelivered": 3, "failed": 3, "cancelled": 3, "read": 4}


async def apply_twilio_receipt(
    session: AsyncSession, hooks: StatusHooks, *, notification_id: int | None, form: dict[str, Any], now: datetime
) -> tuple[str | None, int]:
    """Record the receipt; returns (the new status, or None if unchanged; notifications queued)."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    provider_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    error_code = form.get("ErrorCode") or None
    notification = None
    if notification_id is not None:
        notification = await session.get(Notification, notification_id, with_for_update=True)
    if notification is None and sid:
        notification = await session.scalar(
            select(Notification).where(Notification.provider_id == sid).with_for_update())
    session.add(ProviderCallback(
        notification_id=notification.id if notification else None, provider_id=sid, status=provider_status,
        error_code=error_code, payload=form, received_at=now,
    ))
    new = TWILIO_STATUS.get(provider_status)
    if notification is None or new is None or RANK[new] <= RANK.get(notification.status, 0) or (
            new == "read" and notification.status in ("undelivered", "failed", "cancelled")):
        return None, 0
    settled_unknown = notification.status in ("unknown", "dead")
    notification.status = new
    notification.provider_id = notification.provider_id or sid
    if new in ("sent", "delivered", "read") and notification.sent_at is None:
        notification.sent_at = now
    if new == "delivered" or (new == "read" and notification.delivered_at is None):
        notification.delivered_at = now
    if new in ("undelivered", "failed"):
        notification.error_code = error_code
        notification.last_error = f"receipt: {provider_status}" + (f" (error {error_code})" if error_code else "")
    log.info("receipt applied", extra={"action": "receipt_applied", "notification": notification.id,
                                       "status": new, "error_code": error_code, "settled_unknown": settled_unknown})
    await session.flush()
    return new, await session.run_sync(hooks.changed, notification, now)
