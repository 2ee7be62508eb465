"""Jurisdiction profiles: how long a company has to answer, to send the history, to keep the record.

Deadlines end at 23:59:59 of the last day in the profile's time zone. Calendar days are
counted from the day after the opening and are not moved off a holiday; business days are
the Nth business day after the opening day, skipping weekends, the country's national
holidays (the `holidays` package), the configured state (`subdiv`) and extra dates.

Every profile can be overridden from the settings (`[profiles.<name>]`); `Profiles` is the
registry with those overrides applied, built from the settings where it is needed. The
module-level `PROFILES` are the built-ins, as the law we could verify sets them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

log = logging.getLogger(__name__)

# Decreto 11.034/2022 was published in the DOU on 2022-04-06 and took effect 180 days later.
BR_SAC_2022_FROM = date(2022, 10, 3)
END_OF_DAY = time(23, 59, 59)


@dataclass(frozen=True)
class CategoryRule:
    """A category's own answer clock inside a profile (a regulator's shorter deadline for, say,
    a request for cancellation); what it leaves unset is the profile's."""

    answer_days: int | None = None
    business_days: bool | None = None


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
    annual_holidays: frozenset[tuple[int, int]] = field(default_factory=frozenset)  # (month, day), every year
    # The history the consumer asks for: within N calendar days (end of day), or N hours exactly.
    history_days: int | None = 5
    history_hours: int | None = None
    history_law: str | None = None
    # The record's minimum retention after resolution; None: not set, no retention action applies.
    retention_years: int | None = None
    retention_days: int | None = None
    retention_law: str | None = None
    legal_minimum_years: int = 0  # the law's floor: a configured retention may not go below it
    # Seconds within which the opening confirmation must have been accepted by a provider (the
    # confirmation_overdue sweep alerts operations otherwise); None: no such rule.
    notify_within: float | None = None
    # How many times `protocol.deadline_extended` may move a protocol's deadline (0: never).
    max_extensions: int = 0
    # Per category (the protocol's `category`, compared exactly): its own answer clock.
    categories: Mapping[str, CategoryRule] = field(default_factory=dict, hash=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_holiday(self, day: date) -> bool:
        return (day in self.extra_holidays or (day.month, day.day) in self.annual_holidays
                or day in _holidays(self.country, self.subdiv, day.year))

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and not self.is_holiday(day)

    def add_days(self, start: date, days: int, *, business: bool) -> date:
        """The `days`th (business) day after `start`."""
        day = start
        if not business:
            return day + timedelta(days=days)
        remaining = days
        while remaining:
            day += timedelta(days=1)
            if self.is_business_day(day):
                remaining -= 1
        return day

    def answer_clock(self, category: str | None = None) -> tuple[int, bool]:
        """(days, business?) for a demand of `category`: the category's own rule, else the profile's."""
        rule = self.categories.get(category) if category is not None else None
        if rule is None:
            return self.answer_days, self.business_days
        return (rule.answer_days if rule.answer_days is not None else self.answer_days,
                rule.business_days if rule.business_days is not None else self.business_days)

    def extended(self, deadline: datetime, days: int, category: str | None = None) -> datetime:
        """`deadline` moved by `days` of the kind its clock counts (the end of that day)."""
        zone = self.zone
        _, business = self.answer_clock(category)
        day = self.add_days(deadline.astimezone(zone).date(), days, business=business)
        return datetime.combine(day, END_OF_DAY, tzinfo=zone)

    def deadline(self, opened_at: datetime, category: str | None = None) -> datetime:
        """When the answer is due, for a demand opened (or reopened) at `opened_at` (aware)."""
        zone = self.zone
        days, business = self.answer_clock(category)
        day = self.add_days(opened_at.astimezone(zone).date(), days, business=business)
        return datetime.combine(day, END_OF_DAY, tzinfo=zone)

    def history_due(self, requested_at: datetime) -> datetime:
        """When the history asked for at `requested_at` must have been sent."""
        if self.history_hours is not None:
            return requested_at + timedelta(hours=self.history_hours)
        zone = self.zone
        day = requested_at.astimezone(zone).date() + timedelta(days=self.history_days or 0)
        return datetime.combine(day, END_OF_DAY, tzinfo=zone)

    @property
    def has_retention(self) -> bool:
        return self.retention_years is not None or self.retention_days is not None

    def retention_end(self, start: datetime) -> datetime | None:
        """`start` (the resolution) plus the retention period; None where no period is set."""
        if not self.has_retention:
            return None
        return add_years(start, self.retention_years or 0) + timedelta(days=self.retention_days or 0)

    def retention_rule(self) -> str:
        """The rule in words, for audit entries and notices."""
        if not self.has_retention:
            return f"{self.name}: no retention period set"
        parts = [f"{n} {unit}" for n, unit in ((self.retention_years, "years"), (self.retention_days, "days")) if n]
        period = " and ".join(parts) or "0 days"
        law = f" ({self.retention_law})" if self.retention_law and self.legal_minimum_years else ""
        return f"{self.name}: {period} after resolution{law}"


def add_years(value: datetime, years: int) -> datetime:
    """The same instant `years` later by the calendar; 29 February becomes 1 March."""
    try:
        return value.replace(year=value.year + years)
    except ValueError:
        return value.replace(year=value.year + years, day=28) + timedelta(days=1)


@lru_cache(maxsize=256)
def _holidays(country: str, subdiv: str | None, year: int) -> holidays.HolidayBase:
    # language= always: holiday names otherwise follow LANG.
    return holidays.country_holidays(country, subdiv=subdiv, years=year, language="en_US")


_BR_RETENTION = "Decreto 11.034/2022 art. 12 §5"

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("br-sac", "BR", "America/Sao_Paulo", 7, False, "Decreto 11.034/2022 art. 13",
                history_days=5, history_law="Decreto 11.034/2022 art. 12 §2",
                retention_years=2, retention_law=_BR_RETENTION, legal_minimum_years=2),
        Profile("br-sac-2008", "BR", "America/Sao_Paulo", 5, True, "Decreto 6.523/2008 art. 17",
                history_days=None, history_hours=72, history_law="Decreto 6.523/2008 art. 16",
                retention_years=2, retention_law=_BR_RETENTION, legal_minimum_years=2),
        # No history clock or retention minimum we could verify: 5 days is an operational default.
        Profile("es", "ES", "Europe/Madrid", 15, True, "Ley 10/2025"),
        Profile("co", "CO", "America/Bogota", 15, True, "Ley 1480/2011 art. 58"),
        # Art. 56 binds the customer-service units of financial providers holding the SERNAC seal
        # (arts. 55-56, added by Ley 20.555), not every supplier: hence the name.
        Profile("cl-sello-sernac", "CL", "America/Santiago", 10, True,
                "Ley 19.496 art. 56 (financial providers holding the SERNAC seal)"),
        # Sector profiles. Their SACs are also bound by Decreto 11.034/2022 (history within 5 days,
        # record kept 2 years after resolution), as br-sac. The answer clocks below come from
        # secondary sources where the README says "unverified": each is a setting to check.
        # ANS RN 623/2024 (in force 2025-07-01, replaced RN 395/2016): coverage requests answered
        # within 5 business days (10 for high-complexity procedures and elective admissions, 7 for
        # non-care requests such as a readjustment: category rules). Unverified against the text, and
        # the summaries read disagree (one says 3 business days for care requests).
        Profile("br-ans", "BR", "America/Sao_Paulo", 5, True, "ANS RN 623/2024",
                history_days=5, history_law="Decreto 11.034/2022 art. 12 §2",
                retention_years=2, retention_law=_BR_RETENTION, legal_minimum_years=2),
        # ANATEL RGC, Resolução 765/2023 (most of it in force 2025-09-01): the protocol number by SMS or
        # email within 24 hours (RGC 632/2014 art. 7 §3 had the same; the 765 article is unverified);
        # complaints answered within 5 business days (unverified).
        Profile("br-anatel", "BR", "America/Sao_Paulo", 5, True, "Anatel Resolução 765/2023 (RGC)",
                history_days=5, history_law="Decreto 11.034/2022 art. 12 §2",
                retention_years=2, retention_law=_BR_RETENTION, legal_minimum_years=2, notify_within=24 * 3600.0),
        # ANEEL REN 1000/2021 art. 421: a complaint answered in writing, by the channel of the protocol
        # where possible (arts. 406, 416), within 5 business days (10 with a technical visit: a category
        # rule); §2 allows one exceptional extension of the conclusive answer. Read in ANEEL's answers
        # to the REN 1000 FAQ, not in the article's text.
        Profile("br-aneel", "BR", "America/Sao_Paulo", 5, True, "ANEEL REN 1000/2021 art. 421",
                history_days=5, history_law="Decreto 11.034/2022 art. 12 §2",
                retention_years=2, retention_law=_BR_RETENTION, legal_minimum_years=2, max_extensions=1),
        # Resolução CMN 4.860/2020 (amended by 5.182/2024): the ombudsman's answer within 10 business
        # days, extendable once, exceptionally and with reasons (unverified). The record's retention
        # (reported as 5 years at the BCB's disposal) is unverified: a setting.
        Profile("br-bacen-ouvidoria", "BR", "America/Sao_Paulo", 10, True,
                "Resolução CMN 4.860/2020", max_extensions=1),
    )
}

# Old names still accepted (settings, events, rows written before the rename), each with a warning.
ALIASES: dict[str, str] = {"cl": "cl-sello-sernac"}


def canonical_name(name: str) -> str:
    """The profile's current name: an old one is translated, with a warning naming the new one."""
    new = ALIASES.get(name)
    if new is None:
        return name
    log.warning("profile %r is now named %r; the old name is kept as an alias", name, new,
                extra={"action": "profile_alias", "profile": name, "renamed_to": new})
    return new


class UnknownProfile(KeyError):
    pass


def get_profile(name: str, settings: Any = None) -> Profile:
    """A profile by name, with the settings' overrides applied when `settings` is given."""
    if settings is not None:
        return Profiles.from_settings(settings).get(name)
    try:
        return PROFILES[canonical_name(name)]
    except KeyError:
        raise UnknownProfile(name) from None


def retention_end(profile: Profile, resolved_at: datetime) -> datetime | None:
    """The end of the record's minimum retention, or None where no period is set."""
    return profile.retention_end(resolved_at)


def opening_profile(settings: Any, explicit: str | None, opened_at: datetime) -> Profile:
    """The profile of a protocol being opened: the event's own, else the default for its date."""
    return Profiles.from_settings(settings).for_opening(explicit, opened_at)


# Overrides from the settings


def parse_holiday(value: Any) -> date | tuple[int, int]:
    """A date ("2026-06-04", or a TOML date) once, or "MM-DD" every year."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        month, day = (int(part) for part in text.split("-"))
        date(2024, month, day)  # a leap year: 02-29 is a valid annual date
        return month, day
    except (ValueError, TypeError):
        raise ValueError(f"expected a date 'YYYY-MM-DD' or an annual 'MM-DD', got {value!r}") from None


def apply_overrides(profile: Profile, values: Mapping[str, Any]) -> Profile:
    """The profile with the set keys of one `[profiles.<name>]` section applied.

    A ValueError names the key first ("retention_years: ..."), so the settings error names it.
    """
    changes: dict[str, Any] = {}
    for key in ("answer_days", "business_days", "timezone", "subdiv", "max_extensions", "notify_within"):
        if values.get(key) is not None:
            changes[key] = values[key]
    if values.get("extra_holidays"):
        once: set[date] = set()
        annual: set[tuple[int, int]] = set()
        for raw in values["extra_holidays"]:
            try:
                parsed = parse_holiday(raw)
            except ValueError as exc:
                raise ValueError(f"extra_holidays: {exc}") from None
            (annual if isinstance(parsed, tuple) else once).add(parsed)  # type: ignore[arg-type]
        changes["extra_holidays"] = frozenset(once)
        changes["annual_holidays"] = frozenset(annual)
    if values.get("history_days") is not None and values.get("history_hours") is not None:
        raise ValueError("history_hours: set history_days or history_hours, not both")
    if values.get("history_days") is not None:
        changes.update(history_days=values["history_days"], history_hours=None)
    if values.get("history_hours") is not None:
        changes.update(history_hours=values["history_hours"], history_days=None)
    if values.get("retention_years") is not None or values.get("retention_days") is not None:
        years, days = values.get("retention_years") or 0, values.get("retention_days") or 0
        if not _at_least(years, days, profile.legal_minimum_years):
            raise ValueError(f"retention_years: below the legal minimum of {profile.legal_minimum_years} years "
                             f"after resolution ({profile.retention_law})")
        changes.update(retention_years=years, retention_days=days)
    if values.get("categories"):
        changes["categories"] = {**profile.categories, **{
            name: CategoryRule(rule.get("answer_days"), rule.get("business_days"))
            for name, rule in values["categories"].items()}}
    updated = dataclasses.replace(profile, **changes)
    if updated.subdiv is not None:
        try:
            _holidays(updated.country, updated.subdiv, 2026)
        except NotImplementedError:
            raise ValueError(f"subdiv: {updated.subdiv!r} is not a subdivision of {updated.country} "
                             f"in the holidays package") from None
    return updated


def _at_least(years: int, days: int, minimum_years: int) -> bool:
    """Is `years` and `days` never shorter than `minimum_years`, whatever the start (leap years)?"""
    probes = (datetime(2023, 3, 1), datetime(2024, 2, 29), datetime(2027, 12, 31))
    return all(add_years(p, years) + timedelta(days=days) >= add_years(p, minimum_years) for p in probes)


_BUILT: dict[int, tuple[Any, Profiles]] = {}  # id(settings) -> (settings, its profiles); settings are immutable
_BUILT_MAX = 16


@dataclass(frozen=True)
class Profiles:
    """The profiles with the settings' overrides applied, and the rule that picks a default."""

    profiles: Mapping[str, Profile]
    default: str = "br-sac"
    br_sac_from: date = BR_SAC_2022_FROM

    @classmethod
    def from_settings(cls, settings: Any) -> Profiles:
        """Built once per settings object (the service asks on every event)."""
        cached = _BUILT.get(id(settings))
        if cached is not None and cached[0] is settings:
            return cached[1]
        built = cls._build(settings)
        if len(_BUILT) >= _BUILT_MAX:
            _BUILT.pop(next(iter(_BUILT)))
        _BUILT[id(settings)] = (settings, built)
        return built

    @classmethod
    def _build(cls, settings: Any) -> Profiles:
        overrides = getattr(settings, "profiles", None) or {}
        profiles = dict(PROFILES)
        for name, section in overrides.items():
            values = section.model_dump() if hasattr(section, "model_dump") else dict(section)
            name = ALIASES.get(name, name)  # the settings already warned of an old name
            profiles[name] = apply_overrides(profiles[name], values)
        policy = getattr(settings, "policy", None)
        return cls(profiles, ALIASES.get(settings.gateway.default_profile, settings.gateway.default_profile),
                   policy.br_sac_from if policy is not None else BR_SAC_2022_FROM)

    @property
    def names(self) -> list[str]:
        return list(self.profiles)

    def get(self, name: str) -> Profile:
        try:
            return self.profiles[canonical_name(name)]
        except KeyError:
            raise UnknownProfile(name) from None

    def for_opening(self, explicit: str | None, opened_at: datetime) -> Profile:
        """An explicit profile is always honoured. Otherwise the default; where that is br-sac,
        a demand opened before Decreto 11.034 took effect falls under Decreto 6.523 (br-sac-2008)."""
        if explicit:
            return self.get(explicit)
        profile = self.get(self.default)
        if profile.name == "br-sac" and opened_at.astimezone(profile.zone).date() < self.br_sac_from:
            return self.get("br-sac-2008")
        return profile

    def without_retention(self) -> list[str]:
        return [p.name for p in self.profiles.values() if not p.has_retention]

    def with_retention(self) -> Iterable[Profile]:
        return [p for p in self.profiles.values() if p.has_retention]
