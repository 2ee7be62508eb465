"""Dates are shown to the minute on the consumer's clock (rendering/dates.py), and a UTC value is
cut to its minute without converting it first: the same text as converting, in every zone, on
either side of 1973 (before it some zones were seconds off UTC), and whatever zone the value
itself carries."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rendering import dates

ZONES = ["America/Sao_Paulo", "Europe/Madrid", "Africa/Monrovia", "Asia/Kolkata", "Asia/Kathmandu",
         "Australia/Lord_Howe", "America/St_Johns", "Pacific/Chatham", "UTC", "Europe/Amsterdam"]
LOCALES = ["pt-BR", "es", "en", "eu"]


def _by_conversion(value: datetime, zone: zoneinfo.ZoneInfo, locale: object, short: bool) -> str:
    return dates._datetime_minute(value.astimezone(zone).replace(second=0, microsecond=0), zone, locale, short)


@settings(max_examples=300)
@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2100, 1, 1)),
       st.sampled_from(ZONES), st.sampled_from(LOCALES), st.booleans(),
       st.sampled_from([timezone.utc, timezone(timedelta(hours=-3)), timezone(timedelta(minutes=19, seconds=32))]))
def test_a_minute_cut_in_utc_reads_as_the_minute_converted(naive: datetime, zone_name: str, tag: str, short: bool,
                                                           carried: timezone) -> None:
    value = naive.replace(tzinfo=timezone.utc).astimezone(carried)
    zone, locale = zoneinfo.ZoneInfo(zone_name), dates._locale(tag)
    assert dates.datetime_text(value, zone, locale, short=short) == _by_conversion(value, zone, locale, short)


def test_before_1973_a_zone_seconds_off_utc_still_shows_its_own_minute() -> None:
    # Monrovia was -0:44:30 until 1972: 12:00:40 UTC was 11:16:10 there, in the minute 11:16
    # (cut in UTC first, it would read 11:15).
    zone, locale = zoneinfo.ZoneInfo("Africa/Monrovia"), dates._locale("en")
    assert "11:16" in dates.datetime_text(datetime(1960, 6, 1, 12, 0, 40, tzinfo=timezone.utc), zone, locale)
    assert "11:59" in dates.time_text(datetime(1980, 6, 1, 11, 59, 59, tzinfo=timezone.utc), zone, locale)


@settings(max_examples=300)
@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2100, 1, 1)),
       st.lists(st.tuples(st.sampled_from(ZONES), st.sampled_from(LOCALES), st.sampled_from(["long", "short"])),
                min_size=1, max_size=6),
       st.sampled_from([timezone.utc, timezone(timedelta(hours=-3)), zoneinfo.ZoneInfo("America/Sao_Paulo")]))
def test_the_filter_remembers_an_instant_per_zone_locale_and_length(naive: datetime, contexts, carried) -> None:
    """The `datetime` filter remembers a UTC instant's text by the render's zone, locale and length
    (dates._utc_datetime_text): each asked in turn, and again, reads as worked out afresh; a value in
    another zone takes the way it always took."""
    value = naive.replace(tzinfo=timezone.utc).astimezone(carried)
    for zone_name, tag, length in contexts * 2:
        context = {"timezone": zone_name, "locale": tag}
        expected = dates.datetime_text(value, zoneinfo.ZoneInfo(zone_name), dates._locale(tag), short=length == "short")
        assert dates.format_datetime(_Context(context), value, length) == expected


class _Context(dict):  # what the filter reads of Jinja's context: get()
    pass
