"""Dates and times as a consumer reads them: in their locale and time zone, to the minute,
always with the zone ("22/11/2026 11:43 (BRT)"), as the `datetime`, `date` and `time` filters.

Babel (CLDR) supplies the patterns; the offset label is written here, so that a Babel
release cannot change what a consumer reads.
"""

from __future__ import annotations

import re
from datetime import date as Date
from datetime import datetime as DateTime
from datetime import timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError, dates
from jinja2 import pass_context
from jinja2.runtime import Context


@lru_cache(maxsize=1024)  # every render asks, and parsing the tag with Babel takes ~3 µs
def formatting_locale(requested: str, resolved: str) -> str:
    """The locale dates are formatted in when `requested` was asked and `resolved` found."""
    tag = requested.replace("_", "-")
    if tag.split("-")[0].lower() != resolved.split("-")[0].lower():
        return resolved
    try:
        Locale.parse(tag, sep="-")
    except (ValueError, TypeError, UnknownLocaleError):
        return resolved
    return tag


# Filters: values are timezone-aware datetimes; the context says the locale and time zone.


@pass_context
def format_datetime(context: Context, value: DateTime, zone: str = "long") -> str:
    """pt-BR "22/11/2026 11:43 (horário de Brasília)", en "Nov 22, 2026, 9:43 AM (EST)";
    `datetime("short")` names the zone in fewer letters where it has a shorter name
    ("(Brasilia)", GSM-7), for SMS."""
    if type(value) is DateTime and value.tzinfo is timezone.utc:  # as the service passes them: see _utc_text
        return _utc_datetime_text(value, str(context.get("timezone")), str(context.get("locale")), _short(zone))
    return datetime_text(value, *_consumer(context, value), short=_short(zone))


@lru_cache(maxsize=1024)
def _utc_datetime_text(value: DateTime, zone: str, locale: str, short: bool) -> str:
    # Remembered by the instant and the context's own strings: an event's messages show its few
    # instants a dozen times (the email's HTML and text, the SMS), and the way through _consumer
    # and _minute to the minute's text costs ~1.5 µs a time. UTC values only: in a zone with
    # summer time the two 1:30 of the night the clocks go back compare (and hash) equal though
    # they are an hour apart, and one would answer for the other.
    return datetime_text(value, _zone(zone), _locale(locale), short=short)


@pass_context
def format_date(context: Context, value: DateTime) -> str:
    """pt-BR "29/11/2026", en "Nov 29, 2026"."""
    return date_text(value, *_consumer(context, value))


@pass_context
def format_time(context: Context, value: DateTime, zone: str = "long") -> str:
    """pt-BR "11:43 (horário de Brasília)": a time without its zone is ambiguous."""
    return time_text(value, *_consumer(context, value), short=_short(zone))


def _short(zone: str) -> bool:
    if zone not in ("long", "short"):
        raise ValueError(f"zone={zone!r}: expected 'long' or 'short'")
    return zone == "short"


def datetime_text(value: DateTime, zone: ZoneInfo, locale: Locale, *, short: bool = False) -> str:
    # Shown to the minute: every event of a minute shares one formatting (Babel's is the
    # costliest part of a render, and each event renders a few times).
    return _datetime_minute(_minute(value, zone), zone, locale, short)


# Since 1972 every zone's offset from UTC is a whole number of minutes (tzdata: Liberia's
# -0:44:30 was the last to go), so the minute a clock there shows starts at a UTC minute too.
_WHOLE_MINUTE_OFFSETS = DateTime(1973, 1, 1, tzinfo=timezone.utc)


def _minute(value: DateTime, zone: ZoneInfo) -> DateTime:
    """The minute `value` falls in on the consumer's clock (equal instants are equal keys)."""
    if value.tzinfo is timezone.utc and value >= _WHOLE_MINUTE_OFFSETS:
        return value.replace(second=0, microsecond=0)  # no conversion: ~2 µs less, a date each
    return value.astimezone(zone).replace(second=0, microsecond=0)


@lru_cache(maxsize=4096)
def _datetime_minute(value: DateTime, zone: ZoneInfo, locale: Locale, short: bool) -> str:
    time = dates.format_time(value, "short", tzinfo=zone, locale=locale)
    both = _datetime_pattern(locale).format(time, _date(value, zone, locale))
    return f"{both} ({_zone_label(value, zone, locale, short)})"


def _datetime_pattern(locale: Locale) -> str:
    # The zone follows in brackets; a pattern that brackets the time itself (eu "{1} ({0})")
    # would read "2026/11/22 (15:43) (CET)", so its time goes unbracketed: "2026/11/22 15:43 (CET)".
    return str(locale.datetime_formats["short"]).replace("'", "").replace("({0})", "{0}")


def date_text(value: DateTime, zone: ZoneInfo, locale: Locale) -> str:
    return _date(value, zone, locale)


def time_text(value: DateTime, zone: ZoneInfo, locale: Locale, *, short: bool = False) -> str:
    return _time_minute(_minute(value, zone), zone, locale, short)


@lru_cache(maxsize=4096)
def _time_minute(value: DateTime, zone: ZoneInfo, locale: Locale, short: bool) -> str:
    return f"{dates.format_time(value, 'short', tzinfo=zone, locale=locale)} ({_zone_label(value, zone, locale, short)})"


def formatted(value: DateTime, how: str, *, timezone: str, locale: str, short: bool = False) -> str:
    """What the `datetime`, `date` or `time` filter shows for `value` (for checks and previews)."""
    if how == "date":
        return date_text(value, _zone(timezone), _locale(locale))
    formats = {"datetime": datetime_text, "time": time_text}
    return formats[how](value, _zone(timezone), _locale(locale), short=short)


def locale_of(context: Context) -> Locale:
    """The locale a render formats in (the context's `locale`)."""
    return _locale(str(context.get("locale")))


def _consumer(context: Context, value: object) -> tuple[ZoneInfo, Locale]:
    if not isinstance(value, DateTime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the service passes timezone-aware ones")
    return _zone(str(context.get("timezone"))), _locale(str(context.get("locale")))


def _date(value: DateTime, zone: ZoneInfo, locale: Locale) -> str:
    return _day(value.astimezone(zone).date(), locale)


# Per calendar day: a retention notice lists up to 500 dates per protocol group, tens of thousands
# a sweep, and Babel's formatting was a third of that sweep (3.5 of 11.8 s over 1,000,000 protocols).
@lru_cache(maxsize=4096)
def _day(day: Date, locale: Locale) -> str:
    # Numeric where the day or the year comes first ("29/11/2026", eu "2026/11/29"); elsewhere
    # the month by name, since "11/29/2026" reads as another day to most of the world
    # ("Nov 29, 2026"). Basque's month by name would read "2026 aza. 29(a)".
    unambiguous = str(locale.date_formats["short"].pattern).lstrip().startswith(("d", "y"))
    return dates.format_skeleton("yMd" if unambiguous else "yMMMd", day, locale=locale)


# Brazil's official time is named after its capital, and that name is what consumers read in
# every notice ("10h, horário de Brasília"), not "BRT" or an offset. Only while it is UTC-3:
# a date from the years of summer time shows its offset instead.
BRASILIA_ZONES = frozenset({"America/Sao_Paulo", "America/Bahia", "America/Fortaleza", "America/Recife",
                            "America/Belem", "America/Maceio", "America/Araguaina", "America/Santarem"})
BRASILIA_OFFSET = timedelta(hours=-3)
# The short name is for SMS, and is spelt without the accent: "í" is not in the GSM 7-bit
# alphabet, and one such letter would make the whole SMS UCS-2, at over twice the cost.
BRASILIA_LABELS = {  # language: (long, short)
    "pt": ("horário de Brasília", "Brasilia"),
    "es": ("hora de Brasilia", "Brasilia"),
    "en": ("Brasília time", "Brasilia"),
    "ca": ("hora de Brasília", "Brasilia"),
    "gl": ("hora de Brasilia", "Brasilia"),
    "eu": ("Brasiliako ordua", "Brasilia"),
}


def _zone_label(value: DateTime, zone: ZoneInfo, locale: Locale, short: bool = False) -> str:
    offset = value.astimezone(zone).utcoffset()
    if zone.key in BRASILIA_ZONES and offset == BRASILIA_OFFSET and locale.language in BRASILIA_LABELS:
        return BRASILIA_LABELS[locale.language][short]
    # CLDR has abbreviations only where they are in common use (EST in en, CET in es);
    # elsewhere the offset, written by us as "GMT-05:00" in every locale. CLDR's localized
    # GMT format is not stable across Babel releases (2.19 made pt-BR "-05:00 GMT"), and
    # what a consumer reads must not change because a dependency did.
    abbreviation = dates.format_datetime(value, "z", tzinfo=zone, locale=locale)
    return abbreviation if re.fullmatch(r"[A-Z]{2,5}", abbreviation) else gmt_offset(offset)


def gmt_offset(offset: timedelta | None) -> str:
    """ "GMT-05:00", "GMT+05:30", and "GMT" for no offset."""
    if not offset:
        return "GMT"
    minutes = round(offset.total_seconds() / 60)
    sign = "+" if minutes > 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"GMT{sign}{hours:02d}:{minutes:02d}"


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


@lru_cache(maxsize=64)
def _locale(tag: str) -> Locale:
    try:
        return Locale.parse(tag.replace("_", "-"), sep="-")
    except (ValueError, UnknownLocaleError) as exc:
        raise ValueError(f"unknown locale {tag!r}") from exc
