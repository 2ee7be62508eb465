"""Turning a protocol into messages: rendered, with the history split for SMS, as rows to enqueue.

Every notification is rendered here, when it is enqueued, and stored as rendered with
its template's hash: the record shows what was sent even after a template changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.config import Settings
from gateway.delivery.notifications import build_notification
from gateway.observability import mask_email
from gateway.rendering.context import company, consumer_context
from gateway.rendering.templates import Rendered, Templates
from gateway.store.models import Notification, Protocol

# Twilio joins up to 10 segments into one message on the phone; past that, a message would be
# cut by the carrier, so a long SMS history is split at entry boundaries instead.
MAX_CONCATENATED_SEGMENTS = 10


class MessageBuilder:
    def __init__(self, templates: Templates, settings: Settings) -> None:
        self.templates = templates
        self.settings = settings

    def context(self, protocol: Protocol, **extra: Any) -> dict[str, Any]:
        return consumer_context(protocol, self.settings, **extra)

    def company(self) -> dict[str, Any]:
        return company(self.settings)

    def render(self, protocol: Protocol, template: str, channel: str, recipient: str, now: datetime,
               *, reason: str | None = None, **extra: Any) -> Notification:
        rendered = self.templates.render(template, channel, protocol.consumer_locale, self.context(protocol, **extra))
        return self._notification(rendered, protocol.id, channel, recipient, now, reason)

    def render_general(self, template: str, channel: str, recipient: str, now: datetime, *, locale: str,
                       timezone: str, reason: str | None = None, **extra: Any) -> Notification:
        """A consumer message about no single protocol (the reply to an inbound SMS)."""
        context = {"locale": locale, "timezone": timezone, "company": self.company(), **extra}
        return self._notification(self.templates.render(template, channel, locale, context), None, channel,
                                  recipient, now, reason)

    @staticmethod
    def _notification(rendered: Rendered, protocol_id: int | None, channel: str, recipient: str, now: datetime,
                      reason: str | None) -> Notification:
        assert rendered.channel == channel
        return build_notification(rendered, protocol_id=protocol_id, recipient=recipient, audience="consumer",
                                  now=now, reason=reason)

    def history(self, protocol: Protocol, channel: str, recipient: str, entries: Sequence[dict[str, Any]],
                now: datetime) -> list[Notification]:
        """The whole history by email, or by SMS: whole if it is short, otherwise a short SMS and
        the full history by email when the consumer has an email, else split between entries."""
        if channel == "email":
            return [self.render(protocol, "protocol_history", "email", recipient, now, history=list(entries))]
        full = self.render(protocol, "protocol_history", "sms", recipient, now,
                           history=list(entries), history_by_email=False)
        if (full.segments or 1) <= self.settings.fallback.max_sms_segments:
            return [full]
        if protocol.consumer_email:
            short = self.render(protocol, "protocol_history", "sms", recipient, now, history=list(entries),
                                history_by_email=True, masked_email=mask_email(protocol.consumer_email),
                                reason="history too long for SMS: full text sent by email")
            email = self.render(protocol, "protocol_history", "email", protocol.consumer_email, now,
                                history=list(entries), reason="the full history asked for by SMS")
            return [short, email]
        return self._split(protocol, recipient, entries, now)

    def _split(self, protocol: Protocol, recipient: str, entries: Sequence[dict[str, Any]],
               now: datetime) -> list[Notification]:
        """Greedy runs of whole entries, each run one SMS of at most MAX_CONCATENATED_SEGMENTS:
        a number or a date is never cut in half."""
        parts: list[Notification] = []
        run: list[dict[str, Any]] = []
        best: Notification | None = None
        for entry in entries:
            trial = self.render(protocol, "protocol_history", "sms", recipient, now,
                                history=[*run, entry], history_by_email=False)
            if run and (trial.segments or 1) > MAX_CONCATENATED_SEGMENTS:
                assert best is not None
                parts.append(best)
                run, best = [entry], self.render(protocol, "protocol_history", "sms", recipient, now,
                                                  history=[entry], history_by_email=False)
            else:
                run, best = [*run, entry], trial
        if best is not None:
            parts.append(best)
        for i, part in enumerate(parts, 1):
            part.reason = f"history split for SMS: part {i} of {len(parts)}"
        return parts
