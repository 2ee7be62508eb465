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
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    def result_processor(self, dialect: Any, coltype: object) -> Any:
        # On SQLite the driver hands back the text stored; SQLAlchemy's way to an aware datetime
        # (parse, then TypeDecorator's call of process_result_value and its `replace`) took ~2 µs a
        # value, and a sweep's page of a thousand candidates reads five each. One parse of the
        # text with its offset added: ~0.15 µs. Anything else (no text, another shape) goes the
        # long way, as before.
        general = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or general is None:
            return general

        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            try:
                return stored_utc(value)
            except (TypeError, ValueError):
                return general(value)  # type: ignore[no-any-return]

        return process


def stored_utc(text: str) -> datetime:
    """A DATETIME as SQLite keeps it (UTC, naive: "2026-11-22 12:00:00.000000"), aware again.
    Raises ValueError for text of another shape, TypeError for what is not text."""
    parsed = _fromisoformat(text + "+00:00")
    if parsed.tzinfo is None:  # a date alone: Python reads "2026-01-02+00:00" as midnight and no zone
        raise ValueError(f"not a stored DATETIME: {text!r}")
    return parsed


_fromisoformat = datetime.fromisoformat


# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONDoc = JSON().with_variant(JSONB(), "postgresql")
