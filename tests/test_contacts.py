"""Consumer contacts (protocols/contacts.py): phones to E.164 and whether they may be texted,
emails checked. `may_text` remembers what it and normalize_phone found; the answers must be
the same as working them out afresh, whatever was asked before."""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest

from gateway.protocols import contacts
from gateway.protocols.contacts import ContactError, may_text, normalize_email, normalize_phone

MOBILE, LANDLINE, PORTUGAL = "+5511987654321", "+551133334444", "+351912345678"


@pytest.fixture(autouse=True)
def forget() -> None:
    contacts._TEXTABLE.clear()


def test_phones_in_national_or_e164_form_become_e164() -> None:
    assert normalize_phone("(11) 98765-4321", "BR", for_sms=True, allowed_regions=["BR"]) == MOBILE
    assert normalize_phone(LANDLINE, None, for_sms=False, allowed_regions=["BR"]) == LANDLINE
    with pytest.raises(ContactError, match="not a mobile"):
        normalize_phone(LANDLINE, None, for_sms=True, allowed_regions=["BR"])
    with pytest.raises(ContactError, match="not allowed"):
        normalize_phone(PORTUGAL, None, for_sms=True, allowed_regions=["BR"])
    with pytest.raises(ContactError, match="letters"):
        normalize_phone("ramal 2", "BR", for_sms=False, allowed_regions=["BR"])


@pytest.mark.parametrize("first", ["normalize", "may_text", "nothing"])
def test_may_text_gives_the_same_answers_whatever_was_checked_before(first: str) -> None:
    cases = [(MOBILE, ("BR",), True), (LANDLINE, ("BR",), False), (PORTUGAL, ("BR",), False),
             (PORTUGAL, ("BR", "PT"), True), (MOBILE, ("PT",), False), (None, ("BR",), False)]
    for phone, allowed, _ in cases:
        if first == "normalize" and phone:
            try:
                normalize_phone(phone, None, for_sms=True, allowed_regions=list(allowed))
            except ContactError:
                pass
        elif first == "may_text":
            may_text(phone, allowed)
    assert [may_text(phone, allowed) for phone, allowed, _ in cases] == [want for *_, want in cases]


def test_an_opening_checks_its_phone_once_for_both_questions(monkeypatch: Any) -> None:
    checked: list[object] = []
    real = phonenumbers.number_type
    monkeypatch.setattr(phonenumbers, "number_type", lambda n: (checked.append(n), real(n))[1])
    assert normalize_phone(MOBILE, "BR", for_sms=True, allowed_regions=["BR"]) == MOBILE
    assert may_text(MOBILE, ("BR",)) and may_text(MOBILE, ("BR",))
    assert len(checked) == 1


def test_emails_are_checked_and_line_breaks_refused() -> None:
    assert normalize_email("Maria@Example.COM") == "Maria@example.com"
    with pytest.raises(ContactError, match="line breaks"):
        normalize_email("a@example.com\r\nBcc: b@example.com")
    with pytest.raises(ContactError):
        normalize_email("not an address")


# Numbers of many kinds and places: valid and not, mobile, landline, toll-free, shared-cost,
# NANPA numbers (several regions share +1), non-geographic ones (+800, +882), too short, too long.
CORPUS = ["+5511987654321", "+551133334444", "+5511912345678", "+55119876543", "+551198765432100",
          "+5500000000000", "+351912345678", "+351212345678", "+12025550123", "+16135550123", "+18005550123",
          "+14165550123",
          "+442079460000", "+447911123456", "+448081570000", "+34612345678", "+34912345678", "+5215512345678",
          "+80012345678", "+882345678901", "+4930123456", "+491701234567", "+61412345678", "+1242359",
          "+3906698", "+390669812345", "+35312345"]


@pytest.mark.parametrize("raw", CORPUS)
def test_a_number_is_valid_exactly_when_its_type_is_known(raw: str) -> None:
    """normalize_phone asks a number's type once and takes UNKNOWN for "not valid": what
    `is_valid_number` answers, asked apart (a newer phonenumbers that parted them fails here)."""
    number = phonenumbers.parse(raw, None)
    known = phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.UNKNOWN
    assert phonenumbers.is_valid_number(number) == known
    try:
        normalize_phone(raw, None, for_sms=False, allowed_regions=[])
    except ContactError as error:
        assert not phonenumbers.is_valid_number(number) and str(error) == "not a valid phone number"
    else:
        assert phonenumbers.is_valid_number(number)
