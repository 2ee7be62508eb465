"""A consumer texts the gateway's number: keywords, opt-outs, and a reply through the outbox.

The reply lists only protocols of the phone that texted, opened within `inbound.window`
(Brazilian mobile numbers are recycled). A number that is not that phone's, or does not
exist, gets exactly the reply that no number gets: nothing tells the two apart, and the
number is never echoed back.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.delivery import outbox
from gateway.errors import RateLimited
from gateway.protocols import ratelimit, whatsapp_consent
from gateway.protocols.messages import MessageBuilder
from gateway.protocols.links import history_events
from gateway.rendering.context import history_entries
from gateway.store.database import Database, dialect_insert
from gateway.store.models import InboundMessage, Notification, OptOut, Protocol

log = logging.getLogger(__name__)

# The carriers' and Twilio's standard words, plus Portuguese and Spanish ones.
STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "PARAR", "PARE", "SAIR", "CANCELAR", "BAJA"}
START_WORDS = {"START", "UNSTOP", "YES", "VOLTAR", "RETOMAR", "ALTA"}
OPEN_STATUSES = ("open", "reopened")
NUMBER = re.compile(r"\d{6,30}")


@dataclass(frozen=True)
class Command:
    kind: str              # "stop", "start", "protocol" (a number was given) or "list"
    number: str | None = None


def parse(body: str) -> Command:
    """'PROTOCOLO', 'Histórico 2026...', '2026...', 'parar' -> what the consumer asks for."""
    text = unicodedata.normalize("NFKD", body).encode("ascii", "ignore").decode().upper()
    words = re.findall(r"[A-Z]+", text)
    if words and words[0] in STOP_WORDS and len(words) <= 2:
        return Command("stop")
    if words and words[0] in START_WORDS and len(words) <= 2:
        return Command("start")
    digits = NUMBER.search(re.sub(r"(?<=\d)[\s.\-/](?=\d)", "", text))
    return Command("protocol", digits.group(0)) if digits else Command("list")


class InboundSMS:
    def __init__(self, db: Database, messages: MessageBuilder, settings: Settings,
                 wake: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.messages = messages
        self.settings = settings
        self.wake = wake

    def phone(self, raw: str) -> str | None:
        try:
            number = phonenumbers.parse(raw, None)
        except phonenumbers.NumberParseException:
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    async def receive(self, *, sid: str, from_raw: str, to: str | None, body: str, now: datetime,
                      channel: str = "sms") -> str:
        """Handle one inbound SMS or WhatsApp message once (Twilio retries carry the same MessageSid),
        answered by the channel it came by; returns what happened."""
        phone = self.phone(from_raw)
        if phone is None:
            return "ignored"
        try:
            async with self.db.write() as session:
                message = InboundMessage(provider_id=sid, from_phone=phone, to_phone=to, body=body[:1600],
                                         received_at=now, channel=channel)
                session.add(message)
                await session.flush()
                outcome = await self._answer(session, message, parse(body), now)
        except IntegrityError:
            return "duplicate"
        log.info("inbound message", extra={"action": f"inbound_{channel}", "outcome": outcome, "from": phone})
        if outcome in ("replied", "history"):
            self.wake()
        return outcome

    async def _answer(self, session: AsyncSession, message: InboundMessage, command: Command, now: datetime) -> str:
        phone, channel = message.from_phone, message.channel
        if command.kind == "stop":
            if channel == "whatsapp":  # WhatsApp's consent, apart from SMS's: each STOP speaks for its channel
                await whatsapp_consent.opt_out(session, phone, message.body.strip(), now)
            else:
                await session.execute(dialect_insert(session, OptOut).values(
                    phone=phone, opted_out_at=now, keyword=message.body[:20].strip()).on_conflict_do_nothing())
            return "opted_out"  # the carrier (or Twilio) confirms an SMS STOP itself; a reply would be refused
        if command.kind == "start":
            if channel == "whatsapp":
                await whatsapp_consent.opt_in(session, phone, now)
            else:
                await session.execute(delete(OptOut).where(OptOut.phone == phone))
            return "opted_in"
        count, window = self.settings.limits.inbound_per_phone
        try:
            async with session.begin_nested():
                key = ratelimit.contact_key("inbound", phone)
                await session.run_sync(lambda sync: ratelimit.hit(sync, key, limit=count, window=window, now=now,
                                                                   what="messages from this phone"))
        except RateLimited:
            return "rate_limited"  # recorded, not answered: a loop or an abuse must not cost SMS
        recent = await self._recent(session, phone, now)
        owned = next((p for p in recent if p.number == command.number), None) if command.number else None
        if owned is not None:
            events = (await session.scalars(history_events(owned.id))).all()
            replies = self.messages.history(owned, channel, phone, history_entries(events), now)
            outcome = "history"
        else:
            replies = [self._list_reply(phone, [p for p in recent if p.status in OPEN_STATUSES], now, channel)]
            outcome = "replied"
        for reply in replies:
            reply.reason = "reply to an inbound WhatsApp message" if channel == "whatsapp" else "reply to an inbound SMS"
        await session.run_sync(outbox.enqueue, replies)
        message.reply_notification_id = replies[0].id
        return outcome

    async def _recent(self, session: AsyncSession, phone: str, now: datetime) -> list[Protocol]:
        since = now - timedelta(seconds=self.settings.inbound.window)
        query = (select(Protocol)
                 .where(or_(Protocol.consumer_phone == phone, Protocol.consumer_whatsapp == phone),
                        func.coalesce(Protocol.last_event_at, Protocol.opened_at) >= since)
                 .order_by(Protocol.opened_at.desc())
                 .limit(50))
        return list((await session.scalars(query)).all())

    def _list_reply(self, phone: str, protocols: list[Protocol], now: datetime, channel: str) -> Notification:
        shown = protocols[: self.settings.inbound.max_listed]
        latest = protocols[0] if protocols else None
        locale = latest.consumer_locale if latest else self.settings.gateway.default_locale
        zone = latest.consumer_timezone if latest else self.settings.gateway.timezone
        return self.messages.render_general(
            "inbound_reply", channel, phone, now, locale=locale, timezone=zone,
            protocols=[{"number": p.number, "subject": p.subject, "opened_at": p.opened_at, "status": p.status,
                        "deadline_at": p.deadline_at} for p in shown],
            window_days=int(self.settings.inbound.window // 86400),
        )
