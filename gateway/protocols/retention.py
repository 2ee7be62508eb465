"""When a record's retention ends: its profile's period after `resolved_at` (or, for a protocol
left unresolved, after it went `retention.abandoned_after` without events), never before the
`retention_until` stored when it was resolved. Profiles without a period take part in nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gateway.errors import ServiceError
from gateway.protocols.profiles import Profiles, UnknownProfile, add_years
from gateway.store.models import Protocol
from gateway.store.sweep_models import OPEN_STATUSES

# What a retention decision reads of a protocol.
CANDIDATE_COLUMNS = (Protocol.id, Protocol.number, Protocol.profile, Protocol.status, Protocol.resolved_at,
                     Protocol.retention_until, Protocol.last_event_at, Protocol.updated_at, Protocol.legal_hold,
                     Protocol.retention_extension_years)


class RetentionRefused(ServiceError):
    status = 409
    title = "Refused"


def retention_start(row: Any, abandoned_after: timedelta) -> datetime | None:
    if row.status == "resolved":
        # Never earlier than we heard of the resolution (a back-dated resolved_at must not shorten
        # the record's life): the last event received is the resolution, or came after it.
        return max(row.resolved_at, row.last_event_at or row.resolved_at)
    if row.status in OPEN_STATUSES:
        last = row.last_event_at or row.updated_at
        return last + abandoned_after if last else None
    return None


def effective_end(row: Any, profiles: Profiles, abandoned_after: timedelta) -> datetime | None:
    """The end of the record's retention under the current settings, never before the stored one."""
    try:
        profile = profiles.get(row.profile)
    except UnknownProfile:
        return None
    start = retention_start(row, abandoned_after)
    if start is None or not profile.has_retention:
        return None
    computed = profile.retention_end(start)
    assert computed is not None
    computed = add_years(computed, row.retention_extension_years or 0)  # protocol.retention_extended
    stored = row.retention_until if row.status == "resolved" else None
    return max(computed, stored) if stored else computed
