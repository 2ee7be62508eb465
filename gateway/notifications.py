"""Building notification rows from rendered templates, for messages no event caused.

The shape is the service's: rendered at enqueue, stored as rendered with the template's
hash. Sweeps add what an event's messages do not need: an audience, a unique `dedup_key`
that makes a second insert impossible, a `reason`, and a `next_attempt_at` that may lie in
the future (a reminder waiting for the consumer's local window).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from gateway.config import Settings
from gateway.store.models import Notification
from gateway.templating import Rendered


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
    return Notification(
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


def company(settings: Settings) -> dict[str, Any]:
    return {"name": settings.gateway.company_name, "reply_to": settings.email.reply_to, "sms_keyword": "PROTOCOLO"}


def protocol_fields(protocol: Any) -> dict[str, Any]:
    """What templates see of a protocol (the service's context, plus the profile)."""
    return {
        "number": protocol.number,
        "subject": protocol.subject,
        "category": protocol.category,
        "status": protocol.status,
        "profile": protocol.profile,
        "opened_at": protocol.opened_at,
        "deadline_at": protocol.deadline_at,
        "resolved_at": protocol.resolved_at,
        "channel": protocol.channel,
    }


def consumer_context(protocol: Any, settings: Settings, **extra: Any) -> dict[str, Any]:
    return {
        "locale": protocol.consumer_locale,
        "timezone": protocol.consumer_timezone,
        "protocol": protocol_fields(protocol),
        "consumer": {"name": protocol.consumer_name},
        "company": company(settings),
        **extra,
    }
