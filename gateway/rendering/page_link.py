"""The link to the consumer's page in a message: always by email; by SMS only where it costs
no segment more than the message without it (the opening SMS, one segment transliterated,
has no room for it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.rendering.templates import Channel, Rendered, Templates


def render_consumer(templates: Templates, name: str, channel: Channel, locale: str,
                    context: Mapping[str, Any], *, fallback: bool = True) -> Rendered:
    """What is sent: the message with the link, unless by SMS it costs a segment more."""
    with_link = templates.render(name, channel, locale, context, fallback=fallback)
    page = context.get("page") or {}
    if channel != "sms" or not page.get("url"):
        return with_link
    without = templates.render(name, channel, locale, {**context, "page": {**page, "url": None}}, fallback=fallback)
    assert with_link.sms is not None and without.sms is not None
    return with_link if with_link.sms.segments <= without.sms.segments else without
