"""The event's own statements straight to the sqlite3 driver, on the writer's connection.

An event writes a protocol, the event and its notifications, checks its idempotency key
and bumps the number counter: a handful of statements whose SQLite work is ~0.05 ms each,
while SQLAlchemy's execution machinery (statement cache lookup, execution context,
parameter and result processing) cost ~3 times that per statement, about a third of an
event's CPU on the writer thread (profiled with `python -m bench.profile_ingest`). Here
the SQL text is built once per table and shape of row, the values are converted as the
column types would (UTC datetimes as SQLAlchemy's text, JSON, booleans) and the sqlite3
connection the transaction already holds runs it: the same transaction, the same BEGIN
IMMEDIATE and savepoints, only without the layers in between.

The dispatcher's turn takes the same path (delivery/outbox_sqlite.py).

PostgreSQL has its own: store/postgres_driver.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import JSON, Boolean, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gateway.store.database import LentConnection
from gateway.store.insert_shapes import Convert, InsertShape, insert_shape, shapeable
from gateway.store.types import UTCDateTime, stored_utc, utc

_RAW = "gateway.sqlite3"  # where a session keeps the answer of `connection`: asked per statement


def connection(session: Session) -> Any | None:
    """The sqlite3 connection under `session`'s transaction (a `Database.transact` one), or None:
    on PostgreSQL, and on SQLite under an `AsyncSession.run_sync`, whose driver is aiosqlite's."""
    if _RAW in session.info:
        return session.info[_RAW]
    raw = None
    if session.bind.dialect.name == "sqlite":  # type: ignore[union-attr]
        driver = session.connection().connection.driver_connection
        # The writer's or a reader's sqlite3 connection, lent to the sync engine (store/database.py).
        if isinstance(driver, LentConnection):
            raw = driver
    session.info[_RAW] = raw
    return raw


def datetime_text(value: datetime | None) -> str | None:
    # What UTCDateTime and SQLite's DATETIME store: UTC, naive, microseconds always written.
    if type(value) is datetime and value.tzinfo is timezone.utc:
        return _utc_text(value)
    value = utc(value)
    return None if value is None else _utc_text(value)


@lru_cache(maxsize=256)
def _utc_text(value: datetime) -> str:
    # Remembered: an event's rows bind the same few instants a dozen times. Only for UTC values:
    # in a zone with summer time, the two 1:30 of the night the clocks go back compare (and hash)
    # equal though they are an hour apart, and a cache keyed on one would answer for the other.
    # isoformat, not strftime: the same text (zero-padded, as SQLAlchemy writes it) in half the time.
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _json(value: Any) -> str:
    # None too, as SQLAlchemy's JSON type writes it (none_as_null is off): the JSON `null`, not SQL NULL.
    return json.dumps(value)


def _boolean(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _converter(column: Any) -> Convert | None:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return datetime_text
    if isinstance(kind, JSON) or isinstance(getattr(kind, "impl", None), JSON):
        return _json
    if isinstance(kind, Boolean):
        return _boolean
    return None


@cache
def _shape(table: Table, columns: tuple[str, ...]) -> InsertShape:
    return insert_shape(table, columns, placeholders=lambda n: ", ".join("?" * n), converter=_converter)


def _run(raw: Any, sql: str, params: Sequence[Any]) -> Any:
    """sqlite3's errors as SQLAlchemy's (IntegrityError, OperationalError...): what the callers,
    the repeat handling and the outage classifier already know."""
    try:
        return raw.execute(sql, params)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, list(params), exc, sqlite3.Error) from exc


def query_one(raw: Any, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    return _run(raw, sql, params).fetchone()


def execute(raw: Any, sql: str, params: Sequence[Any]) -> int:
    """A statement that returns no rows; how many rows it changed."""
    return _run(raw, sql, params).rowcount


def json_value(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class SQLiteDriver:
    """The writer's (or a reader's) sqlite3 connection under a transaction, as store/drivers.py
    hands it out: the same methods as PostgreSQL's."""

    __slots__ = ("raw",)
    name = "sqlite"

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def insert(self, table: Table, values: dict[str, Any]) -> int:
        """One row; returns its id."""
        shape = _shape(table, tuple(values))
        return _run(self.raw, shape.sql, shape.params(values)).lastrowid  # type: ignore[no-any-return]

    def insert_rows(self, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Rows of one shape, their ids in order (one execute each: sqlite3 runs them in C, no round trips)."""
        return [self.insert(table, values) for values in rows]

    def can_insert(self, table: Table, columns: tuple[str, ...]) -> bool:
        return shapeable(_shape, table, columns)

    def query_one(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        return query_one(self.raw, sql, params)

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        return execute(self.raw, sql, params)

    json_value = staticmethod(json_value)


def stored_datetime(text: str | None) -> datetime | None:
    """A DATETIME as UTCDateTime reads it back: stored in UTC, naive; aware again."""
    return None if text is None else stored_utc(text)
