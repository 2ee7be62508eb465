"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


def utc(value: datetime | None) -> datetime | None:
    """An aware datetime, in UTC: what every datetime column binds, each shaping it for its
    database (naive on SQLite, text on the SQLite driver's path). Naive input is a bug and refused."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime")
    return value.astimezone(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out.

    SQLite drops the offset of `DateTime(timezone=True)` without converting, so every
    value is turned to UTC first and stored naive there; naive input is a bug and refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        value = utc(value)
        return value.replace(tzinfo=None) if value is not None and dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else _aware_utc(value)

    def result_processor(self, dialect: Any, coltype: object) -> Any:
        # On SQLite the driver hands back the text stored; SQLAlchemy's way to an aware datetime
        # (parse, then TypeDecorator's call of process_result_value and its `replace`) took ~2 µs a
        # value, and a sweep's page of a thousand candidates reads five each. The text we write
        # is parsed once with its offset added: ~0.3 µs. Anything else goes the long way, as before.
        general = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or general is None:
            return general

        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            fast = _as_written(value)
            return fast if fast is not None else general(value)

        return process


def stored_utc(text: str) -> datetime:
    """A DATETIME as SQLite keeps it (UTC, naive: "2026-11-22 12:00:00.000000"), aware again;
    text of another shape as SQLAlchemy's reading gives it (naive is UTC, an offset converted)."""
    fast = _as_written(text)
    if fast is not None:
        return fast
    return _aware_utc(_fromisoformat(text))


def _aware_utc(value: datetime) -> datetime:
    """A datetime read back: naive is UTC (as stored), an offset converted to UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _as_written(value: Any) -> datetime | None:
    """The text SQLAlchemy and store/sqlite_driver.py write, with or without microseconds; None for
    any other shape. Only these: with an offset appended, Python 3.11 reads some malformed times
    without a word ("14:43:071" as 14:43:07), where the text alone is refused."""
    if type(value) is not str or len(value) not in (19, 26) or value[10] != " ":
        return None
    try:
        return _fromisoformat(value + "+00:00")
    except ValueError:
        return None


_fromisoformat = datetime.fromisoformat


# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONDoc = JSON().with_variant(JSONB(), "postgresql")
