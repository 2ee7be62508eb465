"""What a template sees: a protocol, its consumer, the company and the history, as plain values.

Pure functions of data. A protocol comes in as any object with the protocol's attributes
(a database row, or a test's namespace); nothing here knows the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.config import Settings

# What each event type contributes to the history the consumer may ask for (art. 12 §2).
_HISTORY_TEXT = {
    "protocol.opened": "subject",
    "protocol.updated": "message",
    "protocol.resolved": "resolution",
    "protocol.reopened": "reason",
    "protocol.deadline_extended": "reason",
}


def history_entries(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Events (rows with type, occurred_at, data) as the `history` list templates show."""
    entries = []
    for event in events:
        field = _HISTORY_TEXT.get(event.type)
        text = event.data.get(field) if field else None
        entries.append({"type": event.type, "occurred_at": event.occurred_at, "text": text})
    return entries


def company(settings: Settings) -> dict[str, Any]:
    return {"name": settings.gateway.company_name, "reply_to": settings.email.reply_to, "sms_keyword": "PROTOCOLO"}


def protocol_fields(protocol: Any) -> dict[str, Any]:
    """What templates see of a protocol."""
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
