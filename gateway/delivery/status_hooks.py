"""What follows a notification's change of status, in the transaction that records it:
a consumer message that did not arrive takes the next step of its chain, and upstream hears
of it by webhook.

Synchronous, like the outbox: the dispatcher runs them inside its turn's transaction."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.clock import iso
from gateway.config import WebhooksSettings
from gateway.delivery.chains import Chains
from gateway.delivery.outbox import Result
from gateway.store.models import Notification, Protocol

# Our statuses that upstream hears of, as CloudEvents types.
WEBHOOK_TYPES = {"sent": "notification.sent", "delivered": "notification.delivered",
                 "failed": "notification.failed", "undelivered": "notification.failed",
                 "dead": "notification.failed"}
WEBHOOK_SOURCE = "urn:protocol-gateway"


class StatusHooks:
    def __init__(self, chains: Chains, webhooks: WebhooksSettings) -> None:
        self.chains = chains
        self.webhooks = webhooks

    def after_send(self, session: Session, results: Sequence[Result]) -> int:
        """The dispatcher recorded these outcomes: follow up those that call for it."""
        queued = 0
        for r in results:
            if r.claimed.channel == "webhook" or r.status not in WEBHOOK_TYPES:
                continue
            if not self.webhooks.url and r.status not in ("failed", "dead"):
                continue
            notification = session.get(Notification, r.claimed.id)
            if notification is not None and notification.status == r.status:  # still ours: no receipt overtook it
                queued += self.changed(session, notification, r.finished_at)
        return queued

    def changed(self, session: Session, notification: Notification, now: datetime) -> int:
        """Queue what this status calls for; returns how many notifications were queued."""
        queued = 0
        if notification.channel == "webhook":
            return 0
        if notification.status in ("failed", "undelivered", "dead"):
            code = f" ({notification.error_code})" if notification.error_code else ""
            what = "bounced" if notification.channel == "email" and notification.status == "undelivered" \
                else notification.status
            if self.chains.enqueue(session, notification, f"{notification.channel} {what}{code}", now):
                queued += 1
        if self._webhook(session, notification, now):
            queued += 1
        return queued

    def _webhook(self, session: Session, notification: Notification, now: datetime) -> bool:
        event_type = WEBHOOK_TYPES.get(notification.status)
        if not self.webhooks.url or event_type is None or event_type not in self.webhooks.events:
            return False
        protocol = session.get(Protocol, notification.protocol_id) if notification.protocol_id else None
        # No personal data leaves in a status event: ids, statuses and codes only.
        body = json.dumps({
            "specversion": "1.0",
            "id": f"notification-{notification.id}-{notification.status}",
            "source": WEBHOOK_SOURCE,
            "type": event_type,
            "time": iso(now),
            "subject": protocol.number if protocol else None,
            "datacontenttype": "application/json",
            "data": {
                "notification": {"id": notification.id, "channel": notification.channel,
                                 "template": notification.template, "status": notification.status,
                                 "provider_id": notification.provider_id, "error_code": notification.error_code},
                "protocol": {"number": protocol.number} if protocol else None,
            },
        }, separators=(",", ":"))
        session.add(Notification(
            protocol_id=notification.protocol_id, event_id=notification.event_id, channel="webhook",
            audience="upstream", recipient=self.webhooks.url, template=event_type,
            template_hash="sha256:" + hashlib.sha256(body.encode()).hexdigest(), locale="",
            body_text=body, status="queued", attempts=0, next_attempt_at=now, created_at=now,
            duplicate_possible=False, dedup_key=f"webhook:{notification.id}:{notification.status}",
        ))
        return True
