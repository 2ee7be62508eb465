"""Deadline tables checked by hand, against calendars printed beside each case.

Every expected date below was counted on paper from the opening day, skipping what the
comment lists; the code must agree with the paper, not the other way round.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from gateway.config import ConfigError
from gateway.protocols.profiles import PROFILES, Profiles, UnknownProfile, apply_overrides, get_profile, retention_end
from tests.helpers import make_settings

SP = ZoneInfo("America/Sao_Paulo")
UTC = timezone.utc


def due(name: str, opened: date, **overrides) -> str:
    profile = apply_overrides(PROFILES[name], overrides) if overrides else PROFILES[name]
    opened_at = datetime(opened.year, opened.month, opened.day, 10, 30, tzinfo=profile.zone)
    return profile.deadline(opened_at).isoformat()


@pytest.mark.parametrize(
    ("profile", "opened", "expected", "why"),
    [
        # br-sac: 7 calendar days from the day after; a holiday on the last day does not move it.
        ("br-sac", date(2026, 11, 22), "2026-11-29T23:59:59-03:00", "Sun 22 + 7"),
        ("br-sac", date(2026, 11, 13), "2026-11-20T23:59:59-03:00", "ends on Consciência Negra: not moved"),
        ("br-sac", date(2026, 12, 28), "2027-01-04T23:59:59-03:00", "across the new year"),
        ("br-sac", date(2028, 2, 25), "2028-03-03T23:59:59-03:00", "across 29 February 2028"),
        # br-sac-2008: 5 business days after the opening day.
        ("br-sac-2008", date(2026, 11, 18), "2026-11-26T23:59:59-03:00",
         "Thu 19 (1), Fri 20 Consciência Negra, weekend, Mon 23..Thu 26 (2..5)"),
        ("br-sac-2008", date(2026, 12, 30), "2027-01-07T23:59:59-03:00",
         "Thu 31 (1), Fri 1 Jan holiday, weekend, Mon 4..Thu 7 (2..5)"),
        ("br-sac-2008", date(2026, 4, 2), "2026-04-10T23:59:59-03:00",
         "Fri 3 Good Friday, weekend, Mon 6..Fri 10 (1..5)"),
        ("br-sac-2008", date(2026, 11, 20), "2026-11-27T23:59:59-03:00",
         "opened on a holiday: Mon 23..Fri 27 (1..5)"),
        ("br-sac-2008", date(2026, 7, 8), "2026-07-15T23:59:59-03:00", "9 July is São Paulo's, not national"),
        # es: 15 business days; Spain's national days (25 Dec, 1 Jan, 6 Jan).
        ("es", date(2026, 12, 16), "2027-01-11T23:59:59+01:00",
         "Thu 17..Thu 24 (1..6), 25 Dec, Mon 28..Thu 31 (7..10), 1 Jan, Mon 4, Tue 5 (11, 12), "
         "6 Jan Epifanía, Thu 7, Fri 8, Mon 11 (13..15)"),
        # co: 15 business days; Colombia moves many holidays to Monday (Ley Emiliani).
        ("co", date(2026, 3, 16), "2026-04-09T23:59:59-05:00",
         "Tue 17..Fri 20 (1..4), Mon 23 San José, Tue 24..Wed 1 Apr (5..11), Holy Thu 2 and Fri 3, "
         "Mon 6..Thu 9 (12..15)"),
        # cl-sello-sernac: 10 business days; Chile's Fiestas Patrias 18-19 September.
        ("cl-sello-sernac", date(2026, 9, 10), "2026-09-25T23:59:59-03:00",
         "Fri 11..Thu 17 (1..5), Fri 18 holiday, Mon 21..Fri 25 (6..10)"),
        ("cl-sello-sernac", date(2026, 12, 21), "2027-01-06T23:59:59-03:00",
         "Tue 22..Thu 24 (1..3), 25 Dec, Mon 28..Thu 31 (4..7), 1 Jan, Mon 4..Wed 6 (8..10)"),
        ("cl-sello-sernac", date(2026, 6, 19), "2026-07-06T23:59:59-04:00",
         "Mon 22..Fri 26 (1..5), Mon 29 San Pedro y San Pablo, Tue 30..Mon 6 Jul (6..10); winter time, -04"),
        # br-ans: 5 business days (RN 623/2024, unverified figure).
        ("br-ans", date(2026, 11, 18), "2026-11-26T23:59:59-03:00",
         "Thu 19 (1), Fri 20 Consciência Negra, weekend, Mon 23..Thu 26 (2..5)"),
        ("br-ans", date(2026, 12, 29), "2027-01-06T23:59:59-03:00",
         "Wed 30, Thu 31 (1, 2), Fri 1 Jan, weekend, Mon 4..Wed 6 (3..5)"),
        # br-anatel: 5 business days (RGC, unverified figure).
        ("br-anatel", date(2026, 9, 4), "2026-09-14T23:59:59-03:00",
         "Mon 7 Independência, Tue 8..Mon 14 (1..5)"),
        ("br-anatel", date(2026, 10, 7), "2026-10-15T23:59:59-03:00",
         "Thu 8, Fri 9 (1, 2), Mon 12 Aparecida, Tue 13..Thu 15 (3..5)"),
        ("br-anatel", date(2026, 12, 24), "2027-01-04T23:59:59-03:00",
         "Fri 25 Christmas, Mon 28..Thu 31 (1..4), Fri 1 Jan, weekend, Mon 4 (5)"),
        # br-aneel: 5 business days (REN 1000/2021 art. 421).
        ("br-aneel", date(2026, 10, 30), "2026-11-09T23:59:59-03:00",
         "weekend, Mon 2 Nov Finados, Tue 3..Mon 9 (1..5)"),
        # br-bacen-ouvidoria: 10 business days (Resolução CMN 4.860/2020, unverified figure).
        ("br-bacen-ouvidoria", date(2026, 12, 21), "2027-01-06T23:59:59-03:00",
         "Tue 22..Thu 24 (1..3), 25 Dec, Mon 28..Thu 31 (4..7), 1 Jan, Mon 4..Wed 6 (8..10)"),
        ("br-bacen-ouvidoria", date(2027, 2, 3), "2027-02-17T23:59:59-03:00",
         "Carnaval is not a national holiday: Thu 4..Wed 17 (1..10)"),
    ],
)
def test_deadline_tables(profile, opened, expected, why):
    assert due(profile, opened) == expected, why


def test_state_and_city_holidays_from_settings():
    # subdiv SP adds 9 July (Revolução Constitucionalista, a Thursday in 2026).
    assert due("br-sac-2008", date(2026, 7, 8), subdiv="SP") == "2026-07-16T23:59:59-03:00"
    # São Paulo city's anniversary, 25 January, every year: Monday 25 January 2027.
    assert due("br-sac-2008", date(2027, 1, 22)) == "2027-01-29T23:59:59-03:00"
    assert due("br-sac-2008", date(2027, 1, 22), extra_holidays=["01-25"]) == "2027-02-01T23:59:59-03:00"
    # A one-off date (a city holiday decreed for one year).
    assert due("br-sac-2008", date(2026, 6, 3), extra_holidays=[date(2026, 6, 4)]) == "2026-06-11T23:59:59-03:00"


@pytest.mark.parametrize(
    ("profile", "overrides", "opened", "category", "expected", "why"),
    [
        # Categories with their own clocks, as the README's sector examples configure them.
        ("br-ans", {"categories": {"alta_complexidade": {"answer_days": 10}}}, date(2026, 4, 13), "alta_complexidade",
         "2026-04-28T23:59:59-03:00", "Tue 14..Mon 20 (1..5), Tue 21 Tiradentes, Wed 22..Tue 28 (6..10)"),
        ("br-ans", {"categories": {"alta_complexidade": {"answer_days": 10}}}, date(2026, 4, 13), "outra",
         "2026-04-20T23:59:59-03:00", "another category keeps the profile's 5: Tue 14..Mon 20"),
        ("br-ans", {"subdiv": "RJ"}, date(2026, 4, 21), None, "2026-04-29T23:59:59-03:00",
         "opened on Tiradentes; Wed 22 (1), Thu 23 São Jorge (RJ), Fri 24..Wed 29 (2..5)"),
        ("br-ans", {}, date(2026, 4, 21), None, "2026-04-28T23:59:59-03:00", "without RJ: Wed 22..Tue 28 (1..5)"),
        ("br-aneel", {"categories": {"visita_tecnica": {"answer_days": 10}}}, date(2026, 11, 12), "visita_tecnica",
         "2026-11-27T23:59:59-03:00", "Fri 13..Thu 19 (1..5), Fri 20 holiday, Mon 23..Fri 27 (6..10)"),
        ("br-bacen-ouvidoria", {"extra_holidays": ["2027-02-08", "2027-02-09"]}, date(2027, 2, 3), None,
         "2027-02-19T23:59:59-03:00", "Carnaval as bank holidays: Thu 4, Fri 5 (1, 2), Wed 10..Fri 19 (3..10)"),
        ("br-sac", {"categories": {"cancelamento": {"answer_days": 3}}}, date(2026, 12, 30), "cancelamento",
         "2027-01-02T23:59:59-03:00", "3 calendar days across the new year, not moved off 1 January's weekend"),
    ],
)
def test_category_and_calendar_tables(profile, overrides, opened, category, expected, why):
    rules = apply_overrides(PROFILES[profile], overrides)
    opened_at = datetime(opened.year, opened.month, opened.day, 10, 30, tzinfo=rules.zone)
    assert rules.deadline(opened_at, category).isoformat() == expected, why


@pytest.mark.parametrize(
    ("profile", "deadline", "days", "expected", "why"),
    [
        ("br-aneel", date(2026, 11, 9), 5, "2026-11-16T23:59:59-03:00", "Tue 10..Mon 16 (1..5)"),
        ("br-aneel", date(2026, 11, 13), 5, "2026-11-23T23:59:59-03:00",
         "Mon 16..Thu 19 (1..4), Fri 20 holiday, Mon 23 (5)"),
        ("br-bacen-ouvidoria", date(2026, 12, 30), 10, "2027-01-14T23:59:59-03:00",
         "Thu 31 (1), 1 Jan, Mon 4..Thu 14 (2..10)"),
        ("br-sac", date(2026, 12, 29), 5, "2027-01-03T23:59:59-03:00", "calendar days: Wed 30..Sun 3"),
    ],
)
def test_extension_tables(profile, deadline, days, expected, why):
    rules = PROFILES[profile]
    current = datetime(deadline.year, deadline.month, deadline.day, 23, 59, 59, tzinfo=rules.zone)
    assert rules.extended(current, days).isoformat() == expected, why


def test_the_day_is_the_profiles_local_day():
    profile = PROFILES["br-sac"]
    late_evening = datetime(2026, 11, 23, 2, 30, tzinfo=UTC)  # 22 Nov 23:30 in São Paulo
    assert profile.deadline(late_evening) == datetime(2026, 11, 29, 23, 59, 59, tzinfo=SP)
    assert profile.deadline(late_evening).astimezone(UTC).isoformat() == "2026-11-30T02:59:59+00:00"


def test_consciencia_negra_is_a_national_holiday():
    profile = PROFILES["br-sac-2008"]
    assert not profile.is_business_day(date(2026, 11, 20))
    assert profile.is_business_day(date(2026, 11, 19))


def test_history_due():
    asked = datetime(2026, 11, 22, 14, 0, tzinfo=SP)
    assert PROFILES["br-sac"].history_due(asked) == datetime(2026, 11, 27, 23, 59, 59, tzinfo=SP)
    assert PROFILES["br-sac-2008"].history_due(asked) == asked + timedelta(hours=72)
    overridden = apply_overrides(PROFILES["es"], {"history_hours": 48})
    assert overridden.history_due(asked) == asked + timedelta(hours=48)


def test_retention_end_per_profile():
    resolved = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert retention_end(PROFILES["br-sac"], resolved) == datetime(2028, 11, 30, 12, 0, tzinfo=UTC)
    assert retention_end(PROFILES["br-sac-2008"], resolved) == datetime(2028, 11, 30, 12, 0, tzinfo=UTC)
    leap = datetime(2024, 2, 29, 9, 0, tzinfo=UTC)
    assert retention_end(PROFILES["br-sac"], leap) == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    for name in ("es", "co", "cl-sello-sernac"):
        assert retention_end(PROFILES[name], resolved) is None, name  # a setting, not a guess
    es = apply_overrides(PROFILES["es"], {"retention_years": 5, "retention_days": 10})
    assert es.retention_end(resolved) == datetime(2031, 12, 10, 12, 0, tzinfo=UTC)
    longer = apply_overrides(PROFILES["br-sac"], {"retention_years": 5})
    assert longer.retention_end(resolved) == datetime(2031, 11, 30, 12, 0, tzinfo=UTC)


def test_retention_below_the_legal_minimum_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^settings: profiles\.br-sac\.retention_years: below the legal minimum"):
        make_settings(tmp_path, "sqlite+aiosqlite:///x.db", profiles={"br-sac": {"retention_years": 1}})
    with pytest.raises(ConfigError, match=r"profiles\.xx: unknown profile"):
        make_settings(tmp_path, "sqlite+aiosqlite:///x.db", profiles={"xx": {"answer_days": 3}})
    with pytest.raises(ConfigError, match=r"profiles\.br-sac\.subdiv: 'ZZ' is not a subdivision"):
        make_settings(tmp_path, "sqlite+aiosqlite:///x.db", profiles={"br-sac": {"subdiv": "ZZ"}})
    # 1 year and 400 days is never shorter than 2 years: allowed.
    make_settings(tmp_path, "sqlite+aiosqlite:///x.db", profiles={"br-sac": {"retention_years": 1, "retention_days": 400}})


def test_default_profile_follows_the_decree_in_force_at_the_opening(tmp_path):
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///x.db")
    profiles = Profiles.from_settings(settings)
    before = datetime(2022, 10, 2, 23, 30, tzinfo=SP)
    on_the_day = datetime(2022, 10, 3, 0, 30, tzinfo=SP)  # 03:30 UTC
    assert profiles.for_opening(None, before).name == "br-sac-2008"
    assert profiles.for_opening(None, on_the_day).name == "br-sac"
    assert profiles.for_opening("br-sac", before).name == "br-sac"  # an explicit profile is honoured
    assert profiles.for_opening("es", on_the_day).name == "es"
    with pytest.raises(UnknownProfile):
        profiles.for_opening("xx", on_the_day)

    moved = Profiles.from_settings(make_settings(tmp_path, "sqlite+aiosqlite:///x.db", policy={"br_sac_from": "2023-01-01"}))
    assert moved.for_opening(None, datetime(2022, 12, 31, 12, tzinfo=SP)).name == "br-sac-2008"
    spain = Profiles.from_settings(make_settings(tmp_path, "sqlite+aiosqlite:///x.db", gateway={"default_profile": "es"}))
    assert spain.for_opening(None, before).name == "es"


def test_overrides_from_settings_reach_the_profiles(tmp_path):
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///x.db", profiles={
        "br-sac": {"answer_days": 10, "business_days": True, "subdiv": "SP"},
        "es": {"retention_years": 5},
    })
    profile = get_profile("br-sac", settings)
    assert (profile.answer_days, profile.business_days, profile.subdiv) == (10, True, "SP")
    assert get_profile("br-sac").answer_days == 7  # the built-ins are untouched
    profiles = Profiles.from_settings(settings)
    assert profiles.without_retention() == ["co", "cl-sello-sernac", "br-bacen-ouvidoria"]
    assert "es: 5 years after resolution" == profiles.get("es").retention_rule()
