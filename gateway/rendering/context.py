"""What a template sees: a protocol, its consumer, the company and the history, as plain values.

Pure functions of data. A protocol comes in as any object with the protocol's attributes
(a database row, or a test's namespace); nothing here knows the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
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


def company(settings: Settings, locale: str) -> dict[str, Any]:
    """The company as a message names it: its name in the reader's locale, and the addresses
    that are set (None when not: a template shows a sentence about one only when it is set)."""
    return {"name": settings.company_name(locale), "support_email": settings.support_email,
            "website": settings.company.website}


def ask(settings: Settings, *, textable: bool) -> dict[str, Any]:
    """How this consumer can ask for the whole history, each way only where it works for them:
    `sms_number` when inbound SMS is set up and the consumer has a phone the gateway may text;
    `reply` when replies to the email reach a mailbox; `email` and `website` when set;
    `whatsapp_reply` when the consumer's WhatsApp messages reach us."""
    number = settings.inbound_sms_number if textable else None
    return {
        "sms_number": _readable_phone(number) if number else None,
        "reply": bool(settings.email.reply_to),
        "email": settings.support_email,
        "website": settings.company.website,
        # Answering a WhatsApp message with the protocol's number returns its history.
        "whatsapp_reply": settings.inbound_whatsapp,
    }


@lru_cache(maxsize=64)  # the company's own number, asked by every message that offers "text us"
def _readable_phone(e164: str) -> str:
    import phonenumbers

    return phonenumbers.format_number(phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL)


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


def consumer_context(protocol: Any, settings: Settings, *, textable: bool, page_url: str | None = None,
                     **extra: Any) -> dict[str, Any]:
    """A consumer message about `protocol`; `textable`: the gateway may text the consumer's phone;
    `page_url`: the link to the consumer's page, None where there is none."""
    return {
        "locale": protocol.consumer_locale,
        "timezone": protocol.consumer_timezone,
        "protocol": protocol_fields(protocol),
        "consumer": {"name": protocol.consumer_name},
        "company": company(settings, protocol.consumer_locale),
        "ask": ask(settings, textable=textable),
        "page": {"url": page_url},
        **extra,
    }
