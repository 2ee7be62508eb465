"""The event's own statements straight to the PostgreSQL driver, on the transaction's connection.

On PostgreSQL an event's transaction runs in a greenlet (`AsyncSession.run_sync`), and each of
its statements through `Session.execute` cost ~180-210 µs of CPU, against ~105-125 µs for the
same INSERT on a cursor of the DBAPI connection under it (3,000 INSERT … RETURNING in one
transaction, alternating three times); SQLAlchemy's statement cache lookup, execution context
and bind and result processing make the difference, as on SQLite (store/sqlite_driver.py).
Here, for the statements every event runs (its row, its protocol's, a lone notification of
one shape, the same-event check, the number, the answer), the SQL text is built once per table
and shape of row and goes to that cursor: SQLAlchemy's own asyncpg adapter, so the same
transaction and savepoints, the same prepared-statement cache, asyncpg's errors translated as
the adapter translates them, and SQLAlchemy's exceptions raised (IntegrityError,
OperationalError...), as the repeat handling and the outage classifier expect. Values are
converted as the column types would (aware UTC datetimes; JSON, None included, as text, which
the adapter's JSONB codec expects; booleans); a JSONB column comes back decoded by that codec.

Only with the asyncpg driver, the only one the gateway runs PostgreSQL with.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import JSON, Boolean, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gateway.store.insert_shapes import Convert, InsertShape, insert_shape, shapeable
from gateway.store.types import UTCDateTime, utc

_RAW = "gateway.asyncpg"  # where a session keeps the answer of `connection`: asked per statement


class Lent:
    """SQLAlchemy's asyncpg adapter under a transaction, with what an error needs: the dialect,
    which tells a lost connection, and the session's Connection, to invalidate it then."""

    __slots__ = ("adapter", "dialect", "connection")

    def __init__(self, session: Session) -> None:
        self.connection = session.connection()
        self.dialect = self.connection.dialect
        self.adapter = self.connection.connection.dbapi_connection


def connection(session: Session) -> Lent | None:
    """The driver under `session`'s transaction on PostgreSQL, or None (SQLite)."""
    if _RAW in session.info:
        return session.info[_RAW]  # type: ignore[no-any-return]
    dialect = session.bind.dialect  # type: ignore[union-attr]
    raw = Lent(session) if dialect.name == "postgresql" and dialect.driver == "asyncpg" else None
    session.info[_RAW] = raw
    return raw


def _json(value: Any) -> str:
    # None too, as SQLAlchemy's JSON type writes it (none_as_null is off): the JSON `null`, not SQL NULL.
    return json.dumps(value)


def _boolean(value: Any) -> bool | None:
    return None if value is None else bool(value)  # asyncpg refuses 0 and 1 for a boolean


def _converter(column: Any) -> Convert | None:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return utc  # what UTCDateTime binds on PostgreSQL: aware, in UTC
    if isinstance(kind, JSON) or isinstance(getattr(kind, "impl", None), JSON):
        return _json
    if isinstance(kind, Boolean):
        return _boolean
    return None  # text and numbers go to asyncpg as they are


@cache
def _shape(table: Table, columns: tuple[str, ...]) -> InsertShape:
    return insert_shape(table, columns, placeholders=lambda n: ", ".join(f"${i}" for i in range(1, n + 1)),
                        converter=_converter, suffix=" RETURNING id")


def _run(raw: Lent, sql: str, params: Sequence[Any]) -> Any:
    """The adapter's errors as SQLAlchemy's: what the callers, the repeat handling and the outage
    classifier already know. A lost connection is invalidated, as the Core does, so that the pool
    never lends it again. The parameters stay out of the message: they hold personal data."""
    cursor = raw.adapter.cursor()
    # As the dialect's execution context does (PGExecutionContext_asyncpg): a prepared statement
    # older than the last schema change the dialect saw is prepared again, and a cached one the
    # server refuses (a column's type changed under it) marks them all as stale.
    cursor._invalidate_schema_cache_asof = raw.dialect._invalidate_schema_cache_asof
    try:
        cursor.execute(sql, params)
    except raw.adapter.dbapi.Error as exc:
        if isinstance(exc, (raw.adapter.dbapi.InvalidCachedStatementError, raw.adapter.dbapi.InternalServerError)):
            raw.dialect._invalidate_schema_cache()
        lost = raw.dialect.is_disconnect(exc, raw.adapter, cursor)
        if lost:
            raw.connection.invalidate(exc)
        raise DBAPIError.instance(sql, list(params), exc, raw.adapter.dbapi.Error, hide_parameters=True,
                                  connection_invalidated=lost, dialect=raw.dialect) from exc
    except BaseException as exc:
        if not isinstance(exc, Exception):  # cancelled mid-statement: where the connection stands is unknown
            raw.connection.invalidate(exc)  # type: ignore[arg-type]
        raise
    return cursor


def insert(raw: Lent, table: Table, values: dict[str, Any]) -> int:
    """One row; returns its id."""
    shape = _shape(table, tuple(values))
    return _run(raw, shape.sql, shape.params(values)).fetchone()[0]  # type: ignore[no-any-return]


def insert_rows(raw: Lent, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Rows of one shape, their ids in order, an INSERT each (see `takes`)."""
    return [insert(raw, table, values) for values in rows]


def takes(count: int) -> bool:
    """Whether `insert_rows` is the way for `count` rows of one shape: for one. Several go as the
    Core's one statement: as little CPU as an INSERT each (measured: two rows ~240-340 µs either
    way), in one round trip."""
    return count == 1


def can_insert(table: Table, columns: tuple[str, ...]) -> bool:
    return shapeable(_shape, table, columns)


def query_one(raw: Lent, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    return _run(raw, sql, params).fetchone()  # type: ignore[no-any-return]


def execute(raw: Lent, sql: str, params: Sequence[Any]) -> int:
    """A statement that returns no rows; how many rows it changed."""
    return _run(raw, sql, params).rowcount  # type: ignore[no-any-return]
