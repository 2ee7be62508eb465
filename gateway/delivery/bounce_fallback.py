"""An email that bounced goes again by SMS, once, when the consumer has a phone we may text.

The SMS is the same template rendered for SMS (what the email said, in the SMS's words);
`dedup_key = "fallback:<email id>"`, as for SMS falling back to email, so a second bounce for
the same email queues nothing. A template that cannot be rendered for SMS from the record
alone (it needed data only its sweep had) is logged and left: the bounce stays on record.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.config import FallbackSettings
from gateway.delivery.fallback import dedup_key
from gateway.protocols.messages import MessageBuilder
from gateway.store.models import Notification, OptOut, Protocol

log = logging.getLogger(__name__)


class BounceFallback:
    def __init__(self, messages: MessageBuilder, settings: FallbackSettings) -> None:
        self.messages = messages
        self.settings = settings

    def enqueue(self, session: Session, email: Notification, reason: str, now: datetime) -> Notification | None:
        if not (self.settings.enabled and email.channel == "email" and email.audience == "consumer"
                and email.protocol_id is not None and email.fallback_of is None
                and email.template not in self.settings.disabled_templates):
            return None
        protocol = session.get(Protocol, email.protocol_id)
        if protocol is None or not protocol.consumer_phone or protocol.status == "anonymized":
            return None
        if session.get(OptOut, protocol.consumer_phone) is not None:  # the consumer texted STOP
            return None
        key = dedup_key(email.id)
        if session.scalar(select(Notification.id).where(Notification.dedup_key == key)) is not None:
            return None
        try:
            sms = self.messages.render(protocol, email.template, "sms", protocol.consumer_phone, now,
                                       reason=f"fallback: {reason}")
        except Exception as exc:  # a template error must not undo the bounce's record
            log.warning("bounced email has no SMS fallback", extra={
                "action": "fallback_skipped", "notification": email.id, "error": type(exc).__name__})
            return None
        sms.dedup_key, sms.fallback_of, sms.event_id = key, email.id, email.event_id
        try:
            with session.begin_nested():  # another process may have queued it meanwhile
                session.add(sms)
                session.flush()
        except IntegrityError:
            return None
        log.info("bounced email falls back to sms", extra={"action": "fallback_queued", "notification": email.id,
                                                           "fallback": sms.id, "reason": reason})
        return sms
