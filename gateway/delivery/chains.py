"""Fallback chains: a consumer message that did not arrive goes once by the next channel of its
template's chain, with the reason on record.

A step is taken when a message is `failed`, `undelivered` (a receipt, or an email's bounce) or
`dead`, or when it has no `delivered` receipt within `fallback.no_receipt_after` (only where
its transport sends receipts: the SMS and WhatsApp files never do, and waiting for one would
send every message again), or, with `fallback.not_read_after`, when a WhatsApp message was
delivered and not read in time.

The chain is `fallback.chains[template]` (else `fallback.chains.default`, else the built-in one
of the channel the message started on: WhatsApp, then SMS, then email; SMS, then email; email,
then SMS). `notify` names the channels sent at once; a chain continues from each of them, also to
channels `notify` did not name, and never to a channel this cascade already tried. A step is
skipped for a channel the consumer has no contact on or stopped (STOP by SMS or by WhatsApp);
and the cascade ends where the consumer already has the same message by that channel (its own
chain goes on from there): nothing is sent twice by the same channel.

The next step's message: by email, the `sms_fallback` template carrying the failed message's
own text; by SMS or WhatsApp, the original template rendered for that channel (a template that
cannot be rendered from the record alone, as a sweep's data, skips to the step after).
`dedup_key = "fallback:<id>"` makes a second trigger for the same message a no-op, whichever
process sees it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from gateway.config import FallbackSettings
from gateway.protocols.contacts import contacts
from gateway.protocols.messages import MessageBuilder
from gateway.protocols.whatsapp_consent import opted_out_sync
from gateway.store.models import Event, Notification, OptOut, Protocol

log = logging.getLogger(__name__)

WRAPPER = "sms_fallback"  # the email that carries a message another channel could not deliver
BUILT_IN = {"whatsapp": ("whatsapp", "sms", "email"), "sms": ("sms", "email"), "email": ("email", "sms")}
NOT_ARRIVED = ("failed", "dead", "undelivered", "cancelled")
MAX_STEPS = 8  # a cascade is at most one message per channel: a longer one is a loop in the data
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")  # WhatsApp's *bold*, which an email shows as is


def _event_context(session: Session, event_id: int | None) -> dict[str, Any]:
    """What the event's own message was rendered with (`event.message`, `event.resolution`...), from
    the stored event: its data and when it happened. What only the service knew then (the deadline
    before an extension) is not there: such a template skips to the chain's next step."""
    event = session.get(Event, event_id) if event_id is not None else None
    if event is None:
        return {}
    return {"event": {**(event.data or {}), "type": event.type, "occurred_at": event.occurred_at}}


def dedup_key(notification_id: int) -> str:
    return f"fallback:{notification_id}"


class Chains:
    def __init__(self, messages: MessageBuilder, settings: FallbackSettings, *, receipts: Mapping[str, bool]) -> None:
        self.messages = messages
        self.settings = settings
        # Per channel: the transport reports delivery, so "no receipt in time" means something.
        self.receipts = receipts

    def chain(self, template: str, first: str) -> tuple[str, ...]:
        configured = self.settings.chains.get(template) or self.settings.chains.get("default")
        return tuple(configured) if configured else BUILT_IN.get(first, ())

    def applies_to(self, n: Notification) -> bool:
        return (self.settings.enabled and n.audience == "consumer" and n.protocol_id is not None
                and n.channel in BUILT_IN and n.template not in self.settings.disabled_templates)

    def enqueue(self, session: Session, n: Notification, reason: str, now: datetime) -> Notification | None:
        """Queue the next step after `n` in the caller's transaction; None when there is none."""
        if not self.applies_to(n):
            return None
        protocol = session.get(Protocol, n.protocol_id)
        if protocol is None or protocol.status == "anonymized":
            return None
        key = dedup_key(n.id)
        if session.scalar(select(Notification.id).where(Notification.dedup_key == key)) is not None:
            return None
        steps = self._cascade(session, n)
        first = steps[0]
        if first.template in self.settings.disabled_templates:
            return None
        chain = self.chain(first.template, first.channel)
        tried = {s.channel for s in steps}
        after = chain[chain.index(n.channel) + 1:] if n.channel in chain else ()
        for channel in after:
            if channel in tried or not self._reachable(session, protocol, channel):
                continue
            if self._has_it_already(session, first, channel):
                log.info("no fallback: the consumer has this message by the next channel already", extra={
                    "action": "fallback_skipped", "notification": n.id, "channel": channel, "reason": reason})
                return None
            step = self._render(session, protocol, first, n, channel, reason, now)
            if step is None:
                continue
            step.dedup_key, step.fallback_of, step.event_id = key, n.id, n.event_id
            try:
                with session.begin_nested():  # a concurrent process may have inserted it: keep the rest
                    session.add(step)
                    session.flush()
            except IntegrityError:
                return None
            log.info("fallback queued", extra={"action": "fallback_queued", "notification": n.id, "fallback": step.id,
                                               "from": n.channel, "to": channel, "reason": reason})
            return step
        return None

    def _render(self, session: Session, protocol: Protocol, first: Notification, failed: Notification, channel: str,
                reason: str, now: datetime) -> Notification | None:
        target = contacts(protocol)[channel]
        assert target is not None
        try:
            if channel == "email":
                text = _BOLD.sub(r"\1", failed.body_text) if failed.channel == "whatsapp" else failed.body_text
                return self.messages.render(protocol, WRAPPER, "email", target, now, reason=f"fallback: {reason}",
                                            sms_text=text, failed_channel=failed.channel)
            return self.messages.render(protocol, first.template, channel, target, now, reason=f"fallback: {reason}",
                                        **_event_context(session, first.event_id))
        except Exception as exc:  # a template error must not undo the failure's record
            log.warning("no fallback by this channel: the template does not render from the record", extra={
                "action": "fallback_skipped", "notification": failed.id, "channel": channel,
                "error": type(exc).__name__})
            return None

    @staticmethod
    def _reachable(session: Session, protocol: Protocol, channel: str) -> bool:
        target = contacts(protocol)[channel]
        if not target:
            return False
        if channel == "sms":
            return session.get(OptOut, target) is None  # the consumer texted STOP
        if channel == "whatsapp":
            return not opted_out_sync(session, target)  # the consumer wrote STOP on WhatsApp
        return True

    @staticmethod
    def _cascade(session: Session, n: Notification) -> list[Notification]:
        """The messages of this cascade, the first (the event's or the sweep's own) first."""
        steps = [n]
        while steps[0].fallback_of is not None and len(steps) < MAX_STEPS:
            previous = session.get(Notification, steps[0].fallback_of)
            if previous is None:
                break
            steps.insert(0, previous)
        return steps

    @staticmethod
    def _has_it_already(session: Session, first: Notification, channel: str) -> bool:
        """The same message went to the consumer by `channel` too (the event's, or a reminder's twin),
        and did not fail: sending it again by that channel would be a repeat."""
        if first.event_id is not None:
            twin = Notification.event_id == first.event_id
        elif first.dedup_key and first.dedup_key.endswith(f":{first.channel}"):
            twin = Notification.dedup_key == first.dedup_key[: -len(first.channel)] + channel
        else:
            return False
        return session.scalar(select(Notification.id).where(
            twin, Notification.protocol_id == first.protocol_id, Notification.channel == channel,
            Notification.audience == "consumer", Notification.template == first.template,
            Notification.fallback_of.is_(None), Notification.status.not_in(NOT_ARRIVED)).limit(1)) is not None

    def overdue(self, session: Session, *, at: datetime, limit: int = 500) -> Sequence[tuple[Notification, str]]:
        """Messages whose receipt (or, for WhatsApp with not_read_after, whose reading) is overdue at
        `at` and that have no next step yet, each with why; only where the transport sends receipts."""
        found: list[tuple[Notification, str]] = []
        later = aliased(Notification)
        no_step = ~exists().where(later.fallback_of == Notification.id)
        minutes = int(self.settings.no_receipt_after // 60)
        for channel in ("sms", "whatsapp"):
            if not self.receipts.get(channel):
                continue
            cutoff = at - timedelta(seconds=self.settings.no_receipt_after)
            rows = session.scalars(select(Notification).where(
                Notification.channel == channel, Notification.status == "sent", Notification.sent_at <= cutoff,
                no_step).order_by(Notification.sent_at).limit(limit)).all()
            found += [(n, f"no delivery receipt within {minutes} min") for n in rows]
        if self.settings.not_read_after and self.receipts.get("whatsapp"):
            cutoff = at - timedelta(seconds=self.settings.not_read_after)
            rows = session.scalars(select(Notification).where(
                Notification.channel == "whatsapp", Notification.status == "delivered",
                Notification.delivered_at <= cutoff, no_step).order_by(Notification.delivered_at).limit(limit)).all()
            read_minutes = int(self.settings.not_read_after // 60)
            found += [(n, f"whatsapp not read within {read_minutes} min") for n in rows]
        return found

    def sweep(self, session: Session, *, at: datetime) -> int:
        """Take the next step for every message whose receipt is overdue at `at`; returns how many were queued."""
        return sum(self.enqueue(session, n, why, at) is not None for n, why in self.overdue(session, at=at))
