"""Addresses that unsubscribed from the emails they did not ask for, recorded as an SMS STOP is.

Sweeps leave such an address out of their reminders; what the consumer asked for and the
legally required confirmation still go. Kept by the SHA-256 of the lower-cased address.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.database import dialect_insert
from gateway.store.models import EmailOptOut, Notification

log = logging.getLogger(__name__)


def email_key(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


@dataclass(frozen=True)
class Unsubscribed:
    locale: str


async def notification_for(session: AsyncSession, notification_id: int) -> Notification | None:
    """The consumer email a link names (None for anything else: a link is for emails only)."""
    notification = await session.get(Notification, notification_id)
    if notification is None or notification.channel != "email" or notification.audience != "consumer":
        return None
    return notification


async def unsubscribe(session: AsyncSession, notification_id: int, *, via: str, now: datetime) -> Unsubscribed | None:
    """Record the opt-out of the address `notification_id` went to; a second time changes nothing."""
    notification = await notification_for(session, notification_id)
    if notification is None:
        return None
    await session.execute(dialect_insert(session, EmailOptOut).values(
        email_key=email_key(notification.recipient), opted_out_at=now, via=via, notification_id=notification.id,
    ).on_conflict_do_nothing())
    log.info("email unsubscribed", extra={"action": "email_unsubscribed", "notification": notification.id, "via": via})
    return Unsubscribed(notification.locale)


async def opted_out_keys(session: AsyncSession, addresses: Iterable[str]) -> set[str]:
    keys = {email_key(a) for a in addresses if a}
    if not keys:
        return set()
    return set((await session.scalars(select(EmailOptOut.email_key).where(EmailOptOut.email_key.in_(keys)))).all())
