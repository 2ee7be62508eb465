"""The link to the consumer's page in a message: always by email; by SMS only where it costs
no segment more than the message without it (the opening SMS, one segment transliterated,
has no room for it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.rendering.sms import GSM7_PART, GSM7_SINGLE, UCS2_PART, UCS2_SINGLE, SmsInfo
from gateway.rendering.templates import Channel, Rendered, Templates


def render_consumer(templates: Templates, name: str, channel: Channel, locale: str,
                    context: Mapping[str, Any], *, fallback: bool = True) -> Rendered:
    """What is sent: the message with the link, unless by SMS it costs a segment more."""
    page = context.get("page") or {}
    url = page.get("url")
    if channel != "sms" or not url:
        return templates.render(name, channel, locale, context, fallback=fallback)
    without = templates.render(name, channel, locale, {**context, "page": {**page, "url": None}}, fallback=fallback)
    assert without.sms is not None
    if without.sms.units + len(url) + 1 > _room(without.sms):
        return without  # the link alone would not fit in what is left: no second render (the usual case)
    with_link = templates.render(name, channel, locale, context, fallback=fallback)
    assert with_link.sms is not None
    return with_link if with_link.sms.segments <= without.sms.segments else without


def _room(info: SmsInfo) -> int:
    """Units the message's segments hold (3GPP: one alone, or parts with their header)."""
    single, part = (GSM7_SINGLE, GSM7_PART) if info.encoding == "GSM-7" else (UCS2_SINGLE, UCS2_PART)
    return single if info.segments == 1 else part * info.segments
