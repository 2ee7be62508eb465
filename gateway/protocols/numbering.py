"""Protocol numbers: digits only, a date part, a never-reused sequence, a check digit
(or none, `gateway.check_digit = "none"`), and any literal digits the format holds.

Damm by default: it catches every single-digit error and every adjacent transposition,
where Luhn misses 09<->90. The sequence is global, not per day, so a number is never
reused even if the format's date part is changed or the clock goes back.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from gateway.store import drivers

# The quasigroup of order 10 from H. Michael Damm's thesis (2004), as usually published.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def damm_digit(digits: str) -> str:
    interim = 0
    for d in digits:
        interim = _DAMM[interim][int(d)]
    return str(interim)


def damm_valid(number: str) -> bool:
    return number.isascii() and number.isdigit() and damm_digit(number) == "0"


def luhn_digit(digits: str) -> str:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2 == 0:  # every second digit from the right, counting the check digit to come
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isascii() and number.isdigit() and luhn_digit(number[:-1]) == number[-1]


def no_digit(digits: str) -> str:
    return ""


def digits_only(number: str) -> bool:
    return number.isascii() and number.isdigit()


# "none": for layouts a regulator fixes digit by digit, where an extra digit would break them.
CHECK_DIGITS = {"damm": (damm_digit, damm_valid), "luhn": (luhn_digit, luhn_valid), "none": (no_digit, digits_only)}


class NumberFormat:
    """Turns a sequence value and a moment into a protocol number."""

    def __init__(self, fmt: str, timezone: str, check: str = "damm") -> None:
        self.fmt = fmt
        self.zone = ZoneInfo(timezone)
        self.digit, self.valid = CHECK_DIGITS[check]

    def number(self, seq: int, at: datetime) -> str:
        body = self.fmt.format(date=at.astimezone(self.zone), seq=seq)
        return body + self.digit(body)


_NEXTVAL = text("SELECT nextval('protocol_number_seq')")
# Under BEGIN IMMEDIATE the transaction already holds SQLite's write lock.
_BUMP = text("UPDATE counters SET value = value + 1 WHERE name = 'protocol_number' RETURNING value")


def next_sequence(session: Session) -> int:
    """The next value, inside the caller's transaction."""
    # Every gateway-issued number passes here: straight to the driver where it can.
    postgresql = session.bind.dialect.name == "postgresql"  # type: ignore[union-attr]
    statement = _NEXTVAL if postgresql else _BUMP
    driver = drivers.under(session)
    if driver is not None:
        return driver.query_one(statement.text, ())[0]  # type: ignore[index]
    return session.execute(statement).scalar_one()
