"""Fixed-window rate limits counted in the database, so they hold across processes.

One upsert per hit: the row for (key, window) is created or bumped in the caller's
transaction, and the count it returns decides. A refused hit is rolled back with the
caller's transaction, so only accepted requests count.

A contact (an email address may be 320 characters) is never written into a key as it is:
its SHA-256 is, so every key fits the column, and anonymization finds the rows of a contact
it releases by the same digest (`contact_digest`).
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from gateway.errors import RateLimited
from gateway.store.database import dialect_insert
from gateway.store.models import RateLimit

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def contact_digest(contact: str) -> str:
    """A fixed-length stand-in for a phone or email address (compared without case, as matched)."""
    return hashlib.sha256(contact.casefold().encode("utf-8")).hexdigest()


def contact_key(kind: str, contact: str) -> str:
    """'resend:contact:<sha256>': one consumer's budget, whichever protocol asks."""
    return f"{kind}:contact:{contact_digest(contact)}"


def requester_key(protocol_id: int, requester: str | None) -> str:
    """One requester's (an API key's) budget for one protocol; `gateway` for the gateway's own callers."""
    return f"resend:protocol:{protocol_id}:by:{requester or 'gateway'}"


def window_start(now: datetime, window: float) -> datetime:
    elapsed = (now - EPOCH).total_seconds()
    return EPOCH + timedelta(seconds=elapsed - elapsed % window)


def hit(session: Session, key: str, *, limit: int, window: float, now: datetime, what: str) -> int:
    """Count one hit; raise RateLimited (with seconds until the window ends) past `limit`."""
    start = window_start(now, window)
    stmt = dialect_insert(session, RateLimit).values(key=key, window_start=start, hits=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[RateLimit.key, RateLimit.window_start], set_={"hits": RateLimit.hits + 1}
    ).returning(RateLimit.hits)
    hits = session.execute(stmt).scalar_one()
    if hits > limit:
        retry_after = max(1, math.ceil((start + timedelta(seconds=window) - now).total_seconds()))
        raise RateLimited(f"too many {what}: at most {limit} per {_human(window)}; retry in {retry_after} s",
                          retry_after=retry_after)
    return hits


async def prune(session: AsyncSession, *, before: datetime) -> int:
    """Drop windows that ended: they can no longer refuse anything."""
    result = await session.execute(delete(RateLimit).where(RateLimit.window_start < before))
    return result.rowcount or 0


def _human(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = int(seconds // size)
            return unit if n == 1 else f"{n} {unit}s"
    return f"{seconds:g} s"
