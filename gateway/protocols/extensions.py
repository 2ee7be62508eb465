"""Moving a protocol's clocks later: its answer deadline (a regulator allows N extensions) and
its record's retention (a complaint filed with a regulator keeps the record longer).

Both only ever move later: a shorter deadline or retention would be a way to lose the consumer's
rights through an event. Refusals name the field (422) before anything is written.
"""

from __future__ import annotations

from datetime import datetime

from gateway.errors import FieldProblem, InvalidFields
from gateway.protocols.profiles import Profile, add_years
from gateway.protocols.schemas import DeadlineExtendedData

EXTENDABLE = ("open", "reopened")


def new_deadline(profile: Profile, category: str | None, status: str, current: datetime | None,
                 data: DeadlineExtendedData, extensions_so_far: int, prefix: str) -> datetime:
    """The deadline `data` asks for, or InvalidFields saying why it may not move."""
    given = f"{prefix}days" if data.days is not None else f"{prefix}deadline_at"
    if (data.days is None) == (data.deadline_at is None):
        raise InvalidFields([FieldProblem(f"{prefix}days", "give days or deadline_at (one of them)")])
    if status not in EXTENDABLE or current is None:
        raise InvalidFields([FieldProblem(f"{prefix}number", f"the protocol is {status}: only an open demand's "
                                                             "deadline can be extended")])
    if extensions_so_far >= profile.max_extensions:
        allowed = "no extension" if not profile.max_extensions else f"at most {profile.max_extensions} extension(s)"
        raise InvalidFields([FieldProblem(given, f"profile {profile.name} allows {allowed} "
                                                 f"(profiles.{profile.name}.max_extensions)")])
    if data.days is not None:
        return profile.extended(current, data.days, category)
    assert data.deadline_at is not None
    if data.deadline_at <= current:
        raise InvalidFields([FieldProblem(given, f"must be later than the current deadline ({current.isoformat()})")])
    return data.deadline_at


def extended_retention(retention_until: datetime | None, years: int) -> datetime | None:
    """The stored end of retention `years` later (none stored yet: the resolution adds them)."""
    return add_years(retention_until, years) if retention_until is not None else None
