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
