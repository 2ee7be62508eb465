"""When an event says something happened: never before its protocol was opened, never after
the gateway received it.

A resolution back-dated to 1970 would start the retention clock decades ago, and the next
anonymization sweep would destroy the legal record; a CRM with a wrong clock does the same
with no attacker. Such a time is refused (422, naming the field) before anything is written.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.errors import FieldProblem, InvalidFields

# Two systems' clocks never agree exactly: an upstream's time this far past ours (or before an
# opening it stamped itself) is drift, not a lie. Anything further is refused.
CLOCK_SKEW = timedelta(seconds=60)


def not_after_receipt(value: datetime | None, field: str, *, received_at: datetime) -> None:
    """An opening may be back-dated (records migrated from another system), never in the future."""
    if value is not None and value > received_at + CLOCK_SKEW:
        raise InvalidFields([FieldProblem(field, f"{_iso(value)} is later than the time the event was received "
                                                 f"({_iso(received_at)})")])


def within_protocol(value: datetime | None, field: str, *, opened_at: datetime, received_at: datetime) -> None:
    """A time about an existing protocol lies between its opening and the moment we received the event."""
    if value is None:
        return
    if value < opened_at - CLOCK_SKEW:
        raise InvalidFields([FieldProblem(field, f"{_iso(value)} is before the protocol was opened "
                                                 f"({_iso(opened_at)})")])
    not_after_receipt(value, field, received_at=received_at)


def _iso(value: datetime) -> str:
    return value.isoformat()
