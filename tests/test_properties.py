"""Properties that hold for every input: numbers and check digits, SMS segments, the
business-day calendar, and the CloudEvents parser. Pure functions, no I/O, fixed dates."""

from __future__ import annotations

import math
import unicodedata
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.api import cloudevents
from gateway.api.problems import Problem
from gateway.errors import InvalidFields
from gateway.protocols.numbering import NumberFormat, damm_digit, damm_valid, luhn_digit, luhn_valid
from gateway.protocols.profiles import PROFILES, apply_overrides
from gateway.protocols.service import IncomingEvent
from gateway.rendering.sms import GSM7_BASIC, GSM7_EXTENSION, clean_spaces, is_gsm7, sms_info

# Numbers and check digits

MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                       timezones=st.sampled_from([timezone.utc, ZoneInfo("America/Sao_Paulo"),
                                                  ZoneInfo("Asia/Tokyo")]))
ZONES = st.sampled_from(["America/Sao_Paulo", "UTC", "Europe/Madrid", "Pacific/Kiritimati"])


@given(st.integers(0, 10**12), MOMENTS, ZONES, st.sampled_from(["damm", "luhn"]))
def test_an_issued_number_is_digits_with_the_local_date_and_a_valid_check_digit(seq, at, zone, check):
    fmt = NumberFormat("{date:%Y%m%d}{seq:08d}", zone, check)
    number = fmt.number(seq, at)
    assert number.isascii() and number.isdigit()
    assert 6 <= len(number) <= 30
    assert number.startswith(at.astimezone(ZoneInfo(zone)).strftime("%Y%m%d"))
    assert number[8:-1].lstrip("0") == str(seq).lstrip("0")  # the sequence, whole
    assert fmt.valid(number)


@given(st.integers(0, 10**12), st.integers(0, 10**12), MOMENTS, MOMENTS)
def test_distinct_sequences_never_give_the_same_number_whatever_the_days(a, b, day_a, day_b):
    """The sequence is never reused, so numbers never repeat, even across days or a clock set back."""
    assume(a != b)
    fmt = NumberFormat("{date:%Y%m%d}{seq:08d}", "America/Sao_Paulo")
    assert fmt.number(a, day_a) != fmt.number(b, day_b)


@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_exactly_one_check_digit_makes_a_number_valid(body):
    for name, digit, valid in (("damm", damm_digit, damm_valid), ("luhn", luhn_digit, luhn_valid)):
        right = digit(body)
        assert [d for d in "0123456789" if valid(body + d)] == [right], name


@given(st.text(max_size=40))
def test_validating_any_text_answers_true_or_false_and_never_raises(text):
    """Upstream numbers and typed-in numbers are text: '²' is a digit to str.isdigit but not to int()."""
    for valid in (damm_valid, luhn_valid):
        assert valid(text) in (True, False)
        if valid(text):
            assert text.isascii() and text.isdigit()


# SMS segments


def _texts(alphabet) -> st.SearchStrategy[str]:
    return st.integers(0, 700).flatmap(lambda n: st.text(alphabet=alphabet, min_size=n, max_size=n))


ANY_TEXT = _texts(st.characters(exclude_categories=("Cs",)))
GSM_TEXT = _texts(sorted(GSM7_BASIC | GSM7_EXTENSION))
MIXED = st.one_of(ANY_TEXT, GSM_TEXT)


@given(MIXED)
def test_segments_follow_from_the_units_within_the_no_split_rule(text):
    info = sms_info(text)
    gsm = is_gsm7(text)
    assert info.encoding == ("GSM-7" if gsm else "UCS-2")
    single, part = (160, 153) if gsm else (70, 67)
    expected_units = (sum(2 if c in GSM7_EXTENSION else 1 for c in text) if gsm
                      else len(text.encode("utf-16-le")) // 2)
    assert info.units == expected_units
    if info.units <= single:
        assert info.segments == 1
    else:
        # A two-unit character never straddles parts: a part may carry one unit less, never more.
        assert math.ceil(info.units / part) <= info.segments <= math.ceil(info.units / (part - 1))


@given(MIXED, MIXED)
def test_more_text_never_costs_fewer_segments(text, more):
    assert sms_info(text).segments <= sms_info(text + more).segments or (
        is_gsm7(text) and not is_gsm7(text + more)) is False


@given(ANY_TEXT)
def test_cleaning_spaces_leaves_only_plain_spaces_and_is_idempotent(text):
    cleaned = clean_spaces(text)
    assert clean_spaces(cleaned) == cleaned
    assert all(c == " " or unicodedata.category(c) != "Zs" for c in cleaned)
    assert "\t" not in cleaned and "\u200b" not in cleaned


# The business-day calendar

BUSINESS = [p for p in PROFILES.values() if p.business_days]
OPENINGS = st.datetimes(min_value=datetime(2021, 1, 1), max_value=datetime(2030, 12, 31),
                        timezones=st.just(timezone.utc))


def business_days_between(profile, start: date, end: date) -> int:
    """Business days in (start, end]."""
    return sum(1 for n in range(1, (end - start).days + 1) if profile.is_business_day(start + timedelta(days=n)))


@settings(max_examples=200)
@given(st.sampled_from(BUSINESS), OPENINGS)
def test_a_business_day_deadline_is_the_nth_business_day_after_the_opening_day(profile, opened_at):
    deadline = profile.deadline(opened_at)
    zone = profile.zone
    local_open, local_due = opened_at.astimezone(zone), deadline.astimezone(zone)
    assert deadline > opened_at  # never before the opening
    assert local_due.time() == time(23, 59, 59)
    assert profile.is_business_day(local_due.date())
    assert business_days_between(profile, local_open.date(), local_due.date()) == profile.answer_days


@settings(max_examples=200)
@given(st.sampled_from(list(PROFILES.values())), OPENINGS, st.timedeltas(timedelta(0), timedelta(days=40)))
def test_a_later_opening_never_has_an_earlier_deadline(profile, opened_at, later):
    assert profile.deadline(opened_at) <= profile.deadline(opened_at + later)


@given(OPENINGS)
def test_a_calendar_day_deadline_is_not_moved_off_holidays(opened_at):
    profile = PROFILES["br-sac"]
    local = opened_at.astimezone(profile.zone)
    assert profile.deadline(opened_at).astimezone(profile.zone).date() == local.date() + timedelta(days=7)


@settings(max_examples=100)
@given(st.sampled_from(BUSINESS), OPENINGS,
       st.lists(st.dates(min_value=date(2021, 1, 1), max_value=date(2031, 3, 31)), max_size=20),
       st.lists(st.tuples(st.integers(1, 12), st.integers(1, 28)), max_size=5))
def test_configured_holidays_are_never_a_deadline(profile, opened_at, once, annual):
    custom = apply_overrides(profile, {"extra_holidays": [d.isoformat() for d in once]
                                       + [f"{m:02d}-{d:02d}" for m, d in annual]})
    due = custom.deadline(opened_at).astimezone(custom.zone).date()
    assert due not in set(once) and (due.month, due.day) not in set(annual)
    assert custom.deadline(opened_at) >= profile.deadline(opened_at)  # more holidays only push it later


# The CloudEvents parser

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
TYPES = st.sampled_from(["protocol.opened", "protocol.updated", "protocol.resolved", "protocol.reopened",
                         "protocol.resend_requested", "protocol.closed", ""])
FIELDS = ["subject", "consumer", "number", "notify", "channel", "category", "opened_at", "profile", "metadata",
          "message", "resolution", "resolved_at", "reason", "to", "history", "name", "email", "phone"]
NEAR_DATA = st.dictionaries(st.sampled_from(FIELDS), JSON | st.dictionaries(st.sampled_from(FIELDS), JSON), max_size=6)
ENVELOPE = st.fixed_dictionaries(
    {},
    optional={"specversion": st.sampled_from(["1.0", "0.3", 1.0]) | JSON, "id": st.text(max_size=10) | JSON,
              "source": st.text(max_size=10) | JSON, "type": TYPES | JSON,
              "time": st.sampled_from(["2026-11-22T14:43:00Z", "2026-11-22T14:43:00", "yesterday"]) | JSON,
              "datacontenttype": st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8"]),
              "data": NEAR_DATA | JSON, "extension": JSON},
)


@settings(max_examples=500)
@given(ENVELOPE | JSON)
def test_any_json_becomes_an_event_or_a_problem_and_nothing_else(body):
    try:
        event = cloudevents.to_incoming(body)
    except Problem as exc:
        assert exc.status == 400
    except InvalidFields as exc:
        assert exc.problems and all(p.field and p.message for p in exc.problems)
    else:
        assert isinstance(event, IncomingEvent)
        assert event.type in cloudevents.EVENT_DATA


@given(TYPES.filter(lambda t: t in cloudevents.EVENT_DATA), NEAR_DATA | JSON)
def test_any_data_for_a_known_type_is_valid_or_names_its_fields(event_type, data):
    try:
        cloudevents.validate_data(event_type, data)
    except InvalidFields as exc:
        assert all(p.field.startswith("data") for p in exc.problems)


@given(st.binary(max_size=200) | st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_body_bytes_decode_to_json_or_a_400(raw):
    try:
        cloudevents.decode_json(raw)
    except Problem as exc:
        assert exc.status == 400


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b"{\"a\": \"\xed\xa0\x80\"}", b"\xc3(", b"[1, 2", b"   ", b"NaN"])
def test_known_bad_bodies_are_400(raw):
    with pytest.raises(Problem) as refused:
        value = cloudevents.decode_json(raw)
        if raw == b"NaN":  # JSON has no NaN; Python's parser takes it, the event model then refuses it
            assert value != value
            raise Problem(400, "NaN")
    assert refused.value.status == 400
