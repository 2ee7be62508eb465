"""Consumer contacts: phone numbers to E.164, email addresses checked, CR/LF refused."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneNumberType

_SMS_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


class ContactError(ValueError):
    pass


def normalize_phone(raw: str, region: str | None, *, for_sms: bool, allowed_regions: list[str]) -> str:
    """E.164 form of `raw`, or ContactError saying why not.

    `is_valid_number` and the number type, not `is_possible_number`: the latter accepts
    numbers no carrier will route. Letters are refused here, since phonenumbers would
    silently turn "ramal 2" into digits.
    """
    if any(c.isalpha() for c in raw):
        raise ContactError("expected a phone number, got letters")
    try:
        number = _parse(raw, (region or (allowed_regions[0] if allowed_regions else "BR")).upper())
    except phonenumbers.NumberParseException:
        raise ContactError("expected a phone number in E.164 (+5511987654321) or national form with consumer.region") from None
    # The number's type, asked once: `is_valid_number` is the same walk through the region's
    # metadata with "not UNKNOWN" at its end (tests/test_contacts.py holds the library to it),
    # and asking both walked it twice for an SMS number (3.5 µs of the ~30 a check costs).
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        raise ContactError("not a valid phone number")
    if for_sms:
        found = phonenumbers.region_code_for_number(number)
        if allowed_regions and found not in allowed_regions:
            raise ContactError(f"SMS to {found or 'this region'} is not allowed (sms.allowed_countries)")
        if kind not in _SMS_TYPES:
            raise ContactError("not a mobile number: it cannot receive SMS")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if for_sms:  # what may_text would find again for this number: the same checks passed
        _remember_textable((e164, tuple(allowed_regions)), True)
    return e164


@lru_cache(maxsize=1024)
def _parse(raw: str, region: str) -> phonenumbers.PhoneNumber:
    """Remembered for the last numbers seen: an event's phone is parsed when it arrives and
    again to ask whether it takes SMS (~40 µs each), mostly as the same text from the same
    region. The object is shared: read it, never change it."""
    return phonenumbers.parse(raw, region)


def normalize_email(raw: str) -> str:
    if "\r" in raw or "\n" in raw:
        raise ContactError("an email address cannot contain line breaks")
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ContactError(str(exc)) from None


def contacts(protocol: Any) -> dict[str, str | None]:
    """Where each channel reaches the consumer of `protocol`: WhatsApp goes to consumer.whatsapp,
    else to the phone."""
    return {"email": protocol.consumer_email, "sms": protocol.consumer_phone,
            "whatsapp": protocol.consumer_whatsapp or protocol.consumer_phone}


def may_text(phone: str | None, allowed_regions: tuple[str, ...]) -> bool:
    """Whether the gateway may send SMS to `phone` (and so ask it to text back): a mobile number
    in `sms.allowed_countries`. A message offers "text us" only to consumers for whom it works.

    Remembered for the last numbers asked or checked for SMS by normalize_phone: each of an
    event's messages asks it of the number the opening has just checked, and checking one
    costs more than rendering an SMS (profiled on the ingest)."""
    if not phone:
        return False
    known = _TEXTABLE.get((phone, allowed_regions))
    if known is not None:
        return known
    try:
        normalize_phone(phone, None, for_sms=True, allowed_regions=list(allowed_regions))
    except ContactError:
        _remember_textable((phone, allowed_regions), False)
        return False
    _remember_textable((phone, allowed_regions), True)  # normalize_phone kept its E.164 form
    return True


_TEXTABLE: dict[tuple[str, tuple[str, ...]], bool] = {}


def _remember_textable(key: tuple[str, tuple[str, ...]], textable: bool) -> None:
    if len(_TEXTABLE) >= 4096:  # the last numbers seen, never without bound
        _TEXTABLE.clear()
    _TEXTABLE[key] = textable
