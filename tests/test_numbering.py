"""Protocol numbers and their check digits."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protocols.numbering import NumberFormat, damm_digit, damm_valid, luhn_digit, luhn_valid

digits = st.text(alphabet="0123456789", min_size=5, max_size=29)


@pytest.mark.parametrize(("body", "check"), [("572", "4"), ("5724", "0")])
def test_damm_published_examples(body, check):
    # 572 -> 4 is the worked example of Damm's algorithm in the literature.
    assert damm_digit(body) == check


@given(digits, st.data())
def test_damm_catches_every_single_digit_error(body, data):
    number = body + damm_digit(body)
    i = data.draw(st.integers(0, len(number) - 1))
    wrong = data.draw(st.sampled_from([d for d in "0123456789" if d != number[i]]))
    assert not damm_valid(number[:i] + wrong + number[i + 1:])


@given(digits, st.data())
def test_damm_catches_every_adjacent_transposition(body, data):
    number = body + damm_digit(body)
    i = data.draw(st.integers(0, len(number) - 2))
    if number[i] != number[i + 1]:
        assert not damm_valid(number[:i] + number[i + 1] + number[i] + number[i + 2:])


def test_luhn_misses_09_90_where_damm_does_not():
    body = "1090"
    swapped = "1900"
    assert luhn_valid(body + luhn_digit(body)) and luhn_valid(swapped + luhn_digit(body))
    assert damm_valid(body + damm_digit(body)) and not damm_valid(swapped + damm_digit(body))


def test_number_has_the_local_date_and_the_sequence():
    fmt = NumberFormat("{date:%Y%m%d}{seq:08d}", "America/Sao_Paulo")
    # 01:30 UTC on the 23rd is still the 22nd in São Paulo.
    number = fmt.number(17, datetime(2026, 11, 23, 1, 30, tzinfo=timezone.utc))
    assert number[:16] == "2026112200000017" and len(number) == 17 and damm_valid(number)


@given(st.integers(1, 10**8 - 1), st.integers(1, 10**8 - 1))
def test_distinct_sequences_give_distinct_numbers(a, b):
    fmt = NumberFormat("{date:%Y%m%d}{seq:08d}", "UTC")
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert (fmt.number(a, at) == fmt.number(b, at)) == (a == b)
