"""Turning a protocol into messages: rendered, with the history split for SMS, as rows to enqueue.

Every notification is rendered here, when it is enqueued, and stored as rendered with
its template's hash: the record shows what was sent even after a template changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.config import Settings
from gateway.config.whatsapp import FREE_TEXT_LIMIT
from gateway.delivery.notifications import build_notification
from gateway.protocols.contacts import may_text
from gateway.protocols.page_links import PageLinks
from gateway.rendering.context import ask, company, consumer_context
from gateway.rendering.page_link import render_consumer
from gateway.rendering.split import split_history
from gateway.rendering.templates import Rendered, TemplateError, Templates
from gateway.store.models import Notification, Protocol

class MessageBuilder:
    def __init__(self, templates: Templates, settings: Settings, pages: PageLinks | None = None) -> None:
        self.templates = templates
        self.settings = settings
        self.pages = pages  # None: consumer_page.enabled is false

    def has_channel(self, template: str, channel: str, locale: str) -> bool:
        """Whether `template` has a text for `channel` in the locale a consumer of `locale` gets."""
        try:
            return channel in self.templates.channels(template, self.templates.resolve_locale(template, locale))
        except TemplateError:
            return False

    def page_digest(self, number: str) -> str | None:
        """What a new protocol records of its page's token (None without the page)."""
        return self.pages.digest_for(number) if self.pages is not None else None

    def page_url(self, protocol: Protocol) -> str | None:
        """The link every message about `protocol` carries; records its token's hash on the row
        where it is missing or was made with another secret (protocols older than the page)."""
        if self.pages is None or protocol.status == "anonymized":
            return None
        url, digest = self.pages.link(protocol.number)
        if protocol.page_token_hash != digest:
            protocol.page_token_hash = digest
        return url

    def context(self, protocol: Protocol, **extra: Any) -> dict[str, Any]:
        textable = may_text(protocol.consumer_phone, tuple(self.settings.sms.allowed_countries))
        return consumer_context(protocol, self.settings, textable=textable, page_url=self.page_url(protocol), **extra)

    def render(self, protocol: Protocol, template: str, channel: str, recipient: str, now: datetime,
               *, reason: str | None = None, **extra: Any) -> Notification:
        return self._render(protocol, template, channel, recipient, now, reason, self.context(protocol, **extra))

    def render_each(self, protocol: Protocol, template: str, targets: Sequence[tuple[str, str]], now: datetime,
                    *, reason: str | None = None, **extra: Any) -> list[Notification]:
        """One notification per (channel, recipient), from one context: an event tells the consumer
        by each channel chosen at the opening, and the context (the page link's HMAC, whether the
        phone takes SMS) is the same for all of them."""
        context = self.context(protocol, **extra) if targets else {}
        with self.templates.one_look():  # the messages of an event from the same files
            return [self._render(protocol, template, channel, recipient, now, reason, context)
                    for channel, recipient in targets]

    def _render(self, protocol: Protocol, template: str, channel: str, recipient: str, now: datetime,
                reason: str | None, context: dict[str, Any]) -> Notification:
        with self.templates.one_look():  # an SMS may be rendered twice, with the page's link and without
            rendered = render_consumer(self.templates, template, channel,  # type: ignore[arg-type]
                                       protocol.consumer_locale, context)
        notification = self._notification(rendered, protocol.id, channel, recipient, now, reason)
        if channel == "whatsapp":
            notification.whatsapp_content = self.templates.whatsapp_content(rendered, protocol.consumer_locale, context)
        return notification

    def render_general(self, template: str, channel: str, recipient: str, now: datetime, *, locale: str,
                       timezone: str, reason: str | None = None, **extra: Any) -> Notification:
        """A consumer message about no single protocol (the reply to an inbound SMS)."""
        # The consumer texted us from this phone: texting back works for them.
        context = {"locale": locale, "timezone": timezone, "company": company(self.settings, locale),
                   "ask": ask(self.settings, textable=True), "page": {"url": None}, **extra}
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
        """The whole history by the channel asked for: one email, or as many SMS as it takes, each
        at most fallback.max_sms_segments segments, every entry whole (rendering/split.py)."""
        if channel == "email":
            return [self.render(protocol, "protocol_history", "email", recipient, now, history=list(entries))]
        # The parts hold the history itself: no link, which would cost a segment in each.
        context = {**self.context(protocol), "page": {"url": None}}

        def part(run: list[dict[str, Any]], number: int, count: int) -> Rendered:
            return self.templates.render("protocol_history", channel, protocol.consumer_locale,  # type: ignore[arg-type]
                                         {**context, "history": run, "part": number, "parts": count})

        with self.templates.one_look():  # every part from the same files (the split renders each several times)
            if channel == "whatsapp":  # free text (the consumer asked), at most WhatsApp's length a message
                parts = split_history(part, entries, FREE_TEXT_LIMIT, size=lambda r: len(r.text))
            else:
                parts = split_history(part, entries, self.settings.fallback.max_sms_segments)
        what = "WhatsApp" if channel == "whatsapp" else "SMS"
        return [self._notification(rendered, protocol.id, channel, recipient, now,
                                   f"history split for {what}: part {i} of {len(parts)}" if len(parts) > 1 else None)
                for i, rendered in enumerate(parts, 1)]
