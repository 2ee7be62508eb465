"""SMS that did not arrive go again by email, once, with the reason on record.

Triggers: a permanent refusal (Twilio 21610 = the consumer texted STOP to the carrier,
21211, ...), an `undelivered` or `failed` receipt, or no `delivered` receipt within
`fallback.no_receipt_after` (only where the SMS transport sends receipts: the SMS file never
does, and waiting for one would send every SMS again by email). The email carries the SMS's
own text, wrapped by the `sms_fallback` template, and is not sent when the consumer already
got the same message by email. `dedup_key = "fallback:<sms id>"` makes a second trigger for
the same SMS a no-op, whichever process sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from gateway.config import FallbackSettings
from gateway.protocols.messages import MessageBuilder
from gateway.store.models import Notification, Protocol

log = logging.getLogger(__name__)

TEMPLATE = "sms_fallback"


def dedup_key(sms_id: int) -> str:
    return f"fallback:{sms_id}"


class Fallback:
    def __init__(self, messages: MessageBuilder, settings: FallbackSettings, *, receipts: bool) -> None:
        self.messages = messages
        self.settings = settings
        self.receipts = receipts  # the SMS transport reports delivery: "no receipt in time" means something

    def applies_to(self, sms: Notification) -> bool:
        return (self.settings.enabled and sms.channel == "sms" and sms.audience == "consumer"
                and sms.protocol_id is not None and sms.template not in self.settings.disabled_templates
                and sms.fallback_of is None)

    def enqueue(self, session: Session, sms: Notification, reason: str, now: datetime) -> Notification | None:
        """Queue the email for `sms` in the caller's transaction, unless there is no email or one exists."""
        if not self.applies_to(sms):
            return None
        protocol = session.get(Protocol, sms.protocol_id)
        if protocol is None or not protocol.consumer_email or protocol.status == "anonymized":
            return None
        key = dedup_key(sms.id)
        if session.scalar(select(Notification.id).where(Notification.dedup_key == key)) is not None:
            return None
        if self._emailed_already(session, sms):
            log.info("sms not followed by email: the email already carried it",
                     extra={"action": "fallback_skipped", "notification": sms.id, "reason": reason})
            return None
        email = self.messages.render(protocol, TEMPLATE, "email", protocol.consumer_email, now,
                                     reason=f"fallback: {reason}", sms_text=sms.body_text)
        email.dedup_key = key
        email.fallback_of = sms.id
        email.event_id = sms.event_id
        try:
            with session.begin_nested():  # a concurrent process may have inserted it: keep the rest
                session.add(email)
                session.flush()
        except IntegrityError:
            return None
        log.info("sms falls back to email", extra={"action": "fallback_queued", "notification": sms.id,
                                                    "fallback": email.id, "reason": reason})
        return email

    @staticmethod
    def _emailed_already(session: Session, sms: Notification) -> bool:
        """The same message went to the consumer by email too (the event's, or a reminder's twin),
        and that email did not fail: sending the SMS's text again by email would be a repeat."""
        if sms.event_id is not None:
            twin = Notification.event_id == sms.event_id
        elif sms.dedup_key and sms.dedup_key.endswith(":sms"):
            twin = Notification.dedup_key == sms.dedup_key[: -len("sms")] + "email"
        else:
            return False
        return session.scalar(select(Notification.id).where(
            twin, Notification.protocol_id == sms.protocol_id, Notification.channel == "email",
            Notification.audience == "consumer", Notification.template == sms.template,
            Notification.status.not_in(("failed", "dead", "undelivered", "cancelled"))).limit(1)) is not None

    def overdue(self, session: Session, *, at: datetime, limit: int = 500) -> Sequence[Notification]:
        """SMS sent before `at - no_receipt_after` with no delivery receipt and no fallback yet;
        none when the SMS transport sends no receipts."""
        if not self.receipts:
            return []
        fallback = aliased(Notification)
        cutoff = at - timedelta(seconds=self.settings.no_receipt_after)
        query = (
            select(Notification)
            .where(
                Notification.channel == "sms",
                Notification.status == "sent",
                Notification.sent_at <= cutoff,
                Notification.fallback_of.is_(None),
                ~exists().where(fallback.fallback_of == Notification.id),
            )
            .order_by(Notification.sent_at)
            .limit(limit)
        )
        return session.scalars(query).all()

    def sweep(self, session: Session, *, at: datetime) -> int:
        """Fall back every SMS whose receipt is overdue at `at`; returns how many emails were queued."""
        queued = 0
        minutes = int(self.settings.no_receipt_after // 60)
        for sms in self.overdue(session, at=at):
            if self.enqueue(session, sms, f"no delivery receipt within {minutes} min", at) is not None:
                queued += 1
        return queued
