"""When a proactive message may reach a consumer: inside their local sending window.

Only what the gateway sends of its own accord (reminders) waits; confirmations and anything
the consumer asked for go at once. The window may wrap midnight (22:00 to 06:00).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


def in_window(local: time, send_after: time, send_before: time) -> bool:
    if send_after < send_before:
        return send_after <= local < send_before
    return local >= send_after or local < send_before


def next_allowed(at: datetime, timezone: str, send_after: time, send_before: time) -> datetime:
    """`at` if it is inside the window in `timezone`, else the window's next opening."""
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone)
    if in_window(local.time().replace(tzinfo=None), send_after, send_before):
        return at
    day = local.date()
    if local.time().replace(tzinfo=None) >= send_after:
        day += timedelta(days=1)
    opening = datetime.combine(day, send_after, tzinfo=zone)
    # A window opening inside a DST gap does not exist locally: zoneinfo moves it forward.
    return opening.astimezone(at.tzinfo or zone)
