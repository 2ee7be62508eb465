"""Jurisdiction profiles: how long a company has to answer, and how deadlines are counted.

Deadlines end at 23:59:59 of the last day in the profile's time zone. Calendar days are
counted from the day after the opening and are not moved off a holiday; business days are
the Nth business day after the opening day, skipping weekends and the profile's holidays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays


@dataclass(frozen=True)
class Profile:
    name: str
    country: str                 # ISO 3166 code for the `holidays` package
    timezone: str
    answer_days: int
    business_days: bool
    law: str
    subdiv: str | None = None
    extra_holidays: frozenset[date] = field(default_factory=frozenset)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.extra_holidays and day not in _holidays(self.country, self.subdiv, day.year)

    def deadline(self, opened_at: datetime) -> datetime:
        """When the answer is due, for a demand opened at `opened_at` (aware)."""
        zone = ZoneInfo(self.timezone)
        day = opened_at.astimezone(zone).date()
        if self.business_days:
            remaining = self.answer_days
            while remaining:
                day += timedelta(days=1)
                if self.is_business_day(day):
                    remaining -= 1
        else:
            day += timedelta(days=self.answer_days)
        return datetime.combine(day, time(23, 59, 59), tzinfo=zone)


@lru_cache(maxsize=64)
def _holidays(country: str, subdiv: str | None, year: int) -> holidays.HolidayBase:
    # language= always: holiday names otherwise follow LANG.
    return holidays.country_holidays(country, subdiv=subdiv, years=year, language="en_US")


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("br-sac", "BR", "America/Sao_Paulo", 7, False, "Decreto 11.034/2022 art. 13"),
        Profile("br-sac-2008", "BR", "America/Sao_Paulo", 5, True, "Decreto 6.523/2008 art. 17"),
        Profile("es", "ES", "Europe/Madrid", 15, True, "Ley 10/2025"),
        Profile("co", "CO", "America/Bogota", 15, True, "Ley 1480/2011 art. 58"),
        Profile("cl", "CL", "America/Santiago", 10, True, "Ley 19.496 art. 56"),
    )
}


class UnknownProfile(KeyError):
    pass


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(name) from None


RETENTION_YEARS = {"br-sac": 2, "br-sac-2008": 2}  # Decreto 11.034 art. 12 §5; others need a setting


def retention_end(profile: Profile, resolved_at: datetime) -> datetime | None:
    """The end of the record's minimum retention, or None where the law sets none we could verify."""
    years = RETENTION_YEARS.get(profile.name)
    if years is None:
        return None
    try:
        return resolved_at.replace(year=resolved_at.year + years)
    except ValueError:  # 29 February
        return resolved_at.replace(year=resolved_at.year + years, day=28) + timedelta(days=1)
