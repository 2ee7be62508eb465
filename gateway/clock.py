"""Time: the one reader of the wall clock, and how every time is written in answers.

Time is an argument everywhere else: `app.py` hands `utcnow` (or a test's fixed clock) to
each part that needs "now", and sweeps, deadlines and retention are functions of `at`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC, as every time in the API and the evidence is."""
    return None if value is None else value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
