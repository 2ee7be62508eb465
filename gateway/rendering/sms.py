"""SMS encoding and segment counting, exact to 3GPP TS 23.038 / 23.040.

A message that fits the GSM 7-bit alphabet (basic table plus the extension table, whose
characters cost an escape septet each) is sent in GSM-7: 160 septets alone, 153 per part
once concatenated (the user-data header takes the rest). Anything else goes as UCS-2,
counted in UTF-16 code units: 70 alone, 67 per part. Phones and Twilio never split an
escape pair or a surrogate pair between parts, so a part may end one unit short; the
segment count packs parts the same way. No maintained PyPI package does this, hence here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# 3GPP TS 23.038 §6.2.1, in code order; the escape (0x1B) is left out: it is not text.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# §6.2.1.1: each costs two septets (escape + character).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7 = GSM7_BASIC | GSM7_EXTENSION

GSM7_SINGLE, GSM7_PART = 160, 153  # septets
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units


@dataclass(frozen=True, slots=True)
class SmsInfo:
    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int  # what the carrier bills; an empty message still costs one


# Every SMS is measured several times as it is rendered (written, transliterated, with and without
# the page's link): set operations in C rather than a Python step per character (profiled on the
# ingest, the character loops were a tenth of an event's rendering).


def is_gsm7(text: str) -> bool:
    return GSM7.issuperset(text)


def sms_info(text: str) -> SmsInfo:
    """How `text` goes over the air: its encoding, size in units and number of segments."""
    if is_gsm7(text):
        double = GSM7_EXTENSION.intersection(text)
        units = len(text) + sum(text.count(c) for c in double)
        if units <= GSM7_SINGLE:
            return SmsInfo("GSM-7", units, 1)
        if not double:  # every character one septet: parts are simply full
            return SmsInfo("GSM-7", units, -(-units // GSM7_PART))
        costs = [2 if c in GSM7_EXTENSION else 1 for c in text]
        return SmsInfo("GSM-7", units, _segments(costs, GSM7_SINGLE, GSM7_PART))
    # A character past U+FFFF is a surrogate pair: two units (a lone surrogate, one).
    units = len(text.encode("utf-16-le", "surrogatepass")) // 2
    if units <= UCS2_SINGLE:
        return SmsInfo("UCS-2", units, 1)
    if units == len(text):  # no surrogate pair to keep whole
        return SmsInfo("UCS-2", units, -(-units // UCS2_PART))
    costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return SmsInfo("UCS-2", units, _segments(costs, UCS2_SINGLE, UCS2_PART))


def _segments(costs: list[int], single: int, part: int) -> int:
    if sum(costs) <= single:
        return 1
    count, used = 1, 0
    for cost in costs:  # a two-unit character never straddles two parts
        if used + cost > part:
            count, used = count + 1, 0
        used += cost
    return count


# Typography that word processors and phones put in text, and which would force UCS-2.
_ASCII = {
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "´": "'", "`": "'",
    "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "«": '"', "»": '"',
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-",
    "…": "...", "•": "-", "·": "-", "º": "o", "ª": "a", "œ": "oe", "Œ": "OE",
    "\t": " ", "\u00a0": " ", "\u2007": " ", "\u2009": " ", "\u202f": " ",
    "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "",
}


# Spaces that look like a space but are not GSM-7 (Babel puts U+202F in "11:43 AM"):
# one of them would send the whole message as UCS-2, at twice the segments.
_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}
# Unicode's space separators (category Zs) other than the space itself, written out rather than
# found by scanning every code point at import (tests/test_sms.py checks the list).
SPACE_SEPARATORS = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_SPACES = str.maketrans({"\t": " ", **dict.fromkeys(SPACE_SEPARATORS, " "), **dict.fromkeys(_INVISIBLE, None)})


_ODD_SPACE = re.compile("[" + "".join(chr(c) for c in sorted(_SPACES)) + "]")


def clean_spaces(text: str) -> str:
    """Plain spaces for every kind of space, no zero-width characters; letters untouched.

    Applied to every SMS, transliterated or not: it changes nothing a reader can see.
    """
    # Most texts have none: a regex looks in C, where translate asks its table for every character.
    return text.translate(_SPACES) if _ODD_SPACE.search(text) else text


def transliterate_gsm7(text: str) -> str:
    """Replace what GSM-7 lacks by its nearest GSM-7 spelling: ç->c, ã->a, “”->\"\", –->-.

    Letters the GSM-7 table has (é, à, ñ, ü, Ç, ...) are kept, and so is anything without
    a Latin fallback (emoji, CJK): such text stays UCS-2, and `sms_info` will say so.
    """
    # NFC first: text typed on some systems carries "e" + combining acute instead of "é".
    text = unicodedata.normalize("NFC", text)
    if GSM7.issuperset(text):
        return text
    # The regex finds the few characters GSM-7 lacks in C; a Python step per character cost an
    # SMS ~14 µs against ~2 (measured on an opening's SMS in Portuguese).
    return _NOT_GSM7.sub(_replace_one, text)


_NOT_GSM7 = re.compile("[^" + "".join(re.escape(c) for c in sorted(GSM7)) + "]")


def _replace_one(match: re.Match[str]) -> str:
    return _gsm7_char(match.group())


@lru_cache(maxsize=512)
def _gsm7_char(c: str) -> str:
    if c in GSM7:
        return c
    if c in _ASCII:
        return _ASCII[c]
    bare = "".join(d for d in unicodedata.normalize("NFD", c) if not unicodedata.combining(d))
    return bare if is_gsm7(bare) else c
