"""WhatsApp consent per number: when and how it was given, and when it was withdrawn.

Meta asks businesses to hold the consumer's opt-in before writing to them on WhatsApp, and to
stop when they ask. The upstream says when and how consent was given (`consumer.whatsapp_opt_in`);
a consumer who writes STOP/PARAR on WhatsApp withdraws it: no proactive WhatsApp (reminders,
fallbacks) goes to that number until they write START. What they asked for and the legally
required confirmation still go, as with an SMS STOP.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from gateway.store.models import WhatsAppConsent


def record_opt_in(session: Session, phone: str | None, at: datetime, via: str) -> None:
    """The upstream's word on consent; a later opt-in than the last withdrawal stands again."""
    if not phone:
        return
    consent = session.get(WhatsAppConsent, phone)
    if consent is None:
        session.add(WhatsAppConsent(phone=phone, opted_in_at=at, opted_in_via=via))
        return
    if consent.opted_in_at is None or at >= consent.opted_in_at:
        consent.opted_in_at, consent.opted_in_via = at, via
    if consent.opted_out_at is not None and at > consent.opted_out_at:
        consent.opted_out_at = consent.opted_out_keyword = None


async def opt_out(session: AsyncSession, phone: str, keyword: str, now: datetime) -> None:
    consent = await session.get(WhatsAppConsent, phone, with_for_update=True)
    if consent is None:
        session.add(WhatsAppConsent(phone=phone, opted_out_at=now, opted_out_keyword=keyword[:20]))
    else:
        consent.opted_out_at, consent.opted_out_keyword = now, keyword[:20]


async def opt_in(session: AsyncSession, phone: str, now: datetime) -> None:
    """The consumer wrote START: consent given by them, on WhatsApp, now."""
    consent = await session.get(WhatsAppConsent, phone, with_for_update=True)
    if consent is None:
        session.add(WhatsAppConsent(phone=phone, opted_in_at=now, opted_in_via="whatsapp: START"))
    else:
        consent.opted_in_at, consent.opted_in_via = now, "whatsapp: START"
        consent.opted_out_at = consent.opted_out_keyword = None


async def opted_out(session: AsyncSession, phones: Iterable[str | None]) -> set[str]:
    wanted = {p for p in phones if p}
    if not wanted:
        return set()
    return set((await session.scalars(select(WhatsAppConsent.phone).where(
        WhatsAppConsent.phone.in_(wanted), WhatsAppConsent.opted_out_at.is_not(None)))).all())


def opted_out_sync(session: Session, phone: str | None) -> bool:
    if not phone:
        return False
    consent = session.get(WhatsAppConsent, phone)
    return consent is not None and consent.opted_out_at is not None
