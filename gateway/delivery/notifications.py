"""Notification rows from rendered templates: what the outbox stores and the dispatcher sends.

The shape is the service's: rendered at enqueue, stored as rendered with the template's
hash. Sweeps add what an event's messages do not need: an audience, a unique `dedup_key`
that makes a second insert impossible, a `reason`, and a `next_attempt_at` that may lie in
the future (a reminder waiting for the consumer's local window).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from gateway.rendering.templates import Rendered
from gateway.store import rows
from gateway.store.models import Notification


def build_notification(
    rendered: Rendered,
    *,
    protocol_id: int | None,
    recipient: str,
    audience: str,
    now: datetime,
    next_attempt_at: datetime | None = None,
    dedup_key: str | None = None,
    reason: str | None = None,
) -> Notification:
    return rows.new(
        Notification,
        protocol_id=protocol_id,
        channel=rendered.channel,
        audience=audience,
        dedup_key=dedup_key,
        reason=reason,
        recipient=recipient,
        template=rendered.template,
        template_hash=rendered.hash,
        locale=rendered.locale,
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        segments=rendered.sms.segments if rendered.sms else None,
        status="queued",
        attempts=0,
        next_attempt_at=next_attempt_at or now,
        created_at=now,
        duplicate_possible=False,
    )


def address_key(address: str) -> str:
    """A short, stable stand-in for an operations address inside a dedup key."""
    return hashlib.sha256(address.lower().encode()).hexdigest()[:12]
