"""The event's own statements straight to the PostgreSQL driver, on the transaction's connection.

On PostgreSQL an event's transaction runs in a greenlet (`AsyncSession.run_sync`), and each of
its statements through `Session.execute` cost ~180-210 µs of CPU, against ~105-125 µs for the
same INSERT on a cursor of the DBAPI connection under it (3,000 INSERT … RETURNING in one
transaction, alternating three times); SQLAlchemy's statement cache lookup, execution context
and bind and result processing make the difference, as on SQLite (store/sqlite_driver.py).
Here, for the statements every event runs (the same-event check, the number, its protocol's row,
and its own row with its notifications and its answer: store/postgres_event.py), the SQL text is
built once per table and shape of row and goes to that cursor: SQLAlchemy's own asyncpg adapter,
so the same transaction and savepoints, the same prepared-statement cache, asyncpg's errors
translated as the adapter translates them, and SQLAlchemy's exceptions raised (IntegrityError,
OperationalError...), as the repeat handling and the outage classifier expect. Values are
converted as the column types would (aware UTC datetimes; JSON, None included, as text, which
the adapter's JSONB codec expects; booleans); a JSONB column comes back decoded by that codec.

Rows of one shape otherwise (the notices of a sweep, the parts of a history by SMS) go as one
INSERT a thousand rows, as the Core's `insertmanyvalues` sends them, without the ~300 µs of CPU it
spent building an event's parameters (`py-spy record --gil` of the PostgreSQL ingest: 10 % of the
process).

Only with the asyncpg driver, the only one the gateway runs PostgreSQL with.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import JSON, Boolean, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gateway.store import postgres_event
from gateway.store.insert_shapes import Convert, InsertShape, insert_shape, shapeable
from gateway.store.types import UTCDateTime, utc


class PostgresDriver:
    """SQLAlchemy's asyncpg adapter under a transaction, with what an error needs: the dialect,
    which tells a lost connection, and the session's Connection, to invalidate it then. The
    statements come with `?` placeholders, as on SQLite (store/drivers.py), numbered here."""

    __slots__ = ("adapter", "dialect", "connection")
    name = "postgresql"

    def __init__(self, session: Session) -> None:
        self.connection = session.connection()
        self.dialect = self.connection.dialect
        self.adapter = self.connection.connection.dbapi_connection

    def insert(self, table: Table, values: dict[str, Any]) -> int:
        """One row; returns its id."""
        shape = _shape(table, tuple(values))
        return self._run(shape.sql, shape.params(values)).fetchone()[0]  # type: ignore[no-any-return]

    def insert_rows(self, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Rows of one shape in as few statements as the protocol allows (one round trip each, one
        for an event's few), their ids in the order of `rows`."""
        if len(rows) == 1:
            return [self.insert(table, rows[0])]
        shape = _shape(table, tuple(rows[0]))
        ids: list[int] = []
        step = _rows_a_statement(len(shape.columns))
        for start in range(0, len(rows), step):
            page = rows[start:start + step]
            params = [param for values in page for param in shape.params(values)]
            sql = _many(table, shape, len(page), self.dialect)
            # Numbered in the order of the rows (see `_many`): ascending ids are the rows' in order,
            # and a later statement's are greater.
            ids.extend(sorted(row[0] for row in self._run(sql, params).fetchall()))
        return ids

    def insert_event(self, events: Table, values: dict[str, Any], notifications: Table,
                     rows: Sequence[dict[str, Any]]) -> tuple[int, list[int]] | None:
        """An event's row and its notifications' (at least one, without `event_id`: the statement gives it;
        of shapes `_one_shape` can join) in one statement; the ids of the event and of the notifications, in order.
        The event's `answer` names each notification with a null `id`: it is stored with their
        ids (store/postgres_event.py). None, with nothing written, for more rows than a statement
        takes, or rows whose shapes `_one_shape` cannot make one."""
        one_shape = _one_shape(notifications, rows)
        if one_shape is None:
            return None
        rows = one_shape
        event, notification = _shape(events, tuple(values)), _shape(notifications, tuple(rows[0]))
        if len(rows) > _rows_a_statement(len(notification.columns), len(event.columns)):
            return None
        sql = postgres_event.event_sql(events, event, notifications, notification, len(rows), self.dialect)
        event_id, ids = self._run(sql, postgres_event.params(event, values, notification, rows)).fetchone()
        return event_id, list(ids)

    def can_insert(self, table: Table, columns: tuple[str, ...]) -> bool:
        return shapeable(_shape, table, columns)

    def query_one(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        return self._run(_numbered(sql), params).fetchone()  # type: ignore[no-any-return]

    def query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Every row a statement returns (asyncpg's records: indexed and unpacked as tuples)."""
        return self._run(_numbered(sql), params).fetchall()  # type: ignore[no-any-return]

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        """A statement that returns no rows; how many rows it changed."""
        return self._run(_numbered(sql), params).rowcount  # type: ignore[no-any-return]

    @staticmethod
    def json_value(stored: Any) -> Any:
        return stored  # the adapter's JSONB codec has decoded it

    def _run(self, sql: str, params: Sequence[Any]) -> Any:
        """The adapter's errors as SQLAlchemy's: what the callers, the repeat handling and the outage
        classifier already know. A lost connection is invalidated, as the Core does, so that the pool
        never lends it again. The parameters stay out of the message: they hold personal data."""
        adapter, dialect = self.adapter, self.dialect
        cursor = adapter.cursor()
        # As the dialect's execution context does (PGExecutionContext_asyncpg): a prepared statement
        # older than the last schema change the dialect saw is prepared again, and a cached one the
        # server refuses (a column's type changed under it) marks them all as stale.
        cursor._invalidate_schema_cache_asof = dialect._invalidate_schema_cache_asof
        try:
            cursor.execute(sql, params)
        except adapter.dbapi.Error as exc:
            if isinstance(exc, (adapter.dbapi.InvalidCachedStatementError, adapter.dbapi.InternalServerError)):
                dialect._invalidate_schema_cache()
            lost = dialect.is_disconnect(exc, adapter, cursor)
            if lost:
                self.connection.invalidate(exc)
            raise DBAPIError.instance(sql, list(params), exc, adapter.dbapi.Error, hide_parameters=True,
                                      connection_invalidated=lost, dialect=dialect) from exc
        except BaseException as exc:
            if not isinstance(exc, Exception):  # cancelled mid-statement: where the connection stands is unknown
                self.connection.invalidate(exc)  # type: ignore[arg-type]
            raise
        return cursor


def connection(session: Session) -> PostgresDriver | None:
    """The driver under `session`'s transaction on PostgreSQL, or None (SQLite). Ask store/drivers.py,
    which keeps it for the transaction."""
    dialect = session.bind.dialect  # type: ignore[union-attr]
    return PostgresDriver(session) if dialect.name == "postgresql" and dialect.driver == "asyncpg" else None


# A JSON column a row leaves out, given all the same (`_one_shape`): SQL NULL, as when left out.
_LEFT_OUT = object()


def _json(value: Any) -> str | None:
    # None too, as SQLAlchemy's JSON type writes it (none_as_null is off): the JSON `null`, not SQL NULL.
    return None if value is _LEFT_OUT else json.dumps(value)


def _one_shape(table: Table, rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]] | None:
    """`rows` with the same columns, in the same order, so that one statement takes them all: a column
    some rows leave out is given in those rows the NULL it would have had (a WhatsApp notification
    holds its approved template's content, an email or an SMS none). None where a column left out
    would have had something else (a default)."""
    if len({tuple(row) for row in rows}) == 1:
        return rows
    given = [set(row) for row in rows]
    anywhere, everywhere = set.union(*given), set.intersection(*given)
    filled: dict[str, Any] = {}
    for name in anywhere - everywhere:
        column = table.c[name]
        if not column.nullable or column.default is not None or column.server_default is not None:
            return None
        filled[name] = _LEFT_OUT if _converter(column) is _json else None
    order = [column.key for column in table.columns if column.key in anywhere]
    return [{name: row[name] if name in row else filled[name] for name in order} for row in rows]


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


# A statement's parameters are counted in 16 bits by PostgreSQL's protocol (asyncpg refuses more);
# past a thousand rows a statement, a longer one saves nothing that counts.
_PARAMETERS_AT_MOST = 32767
_ROWS_AT_MOST = 1000


def _rows_a_statement(width: int, others: int = 0) -> int:
    return min(_ROWS_AT_MOST, (_PARAMETERS_AT_MOST - others) // width)


@lru_cache(maxsize=16)  # a thousand rows' statement is ~0.5 MB of text: few kept
def _many(table: Table, shape: InsertShape, count: int, dialect: Any) -> str:
    """`count` rows of `shape` as one INSERT whose ids follow the rows' order, as SQLAlchemy's Core
    writes it for PostgreSQL (`sort_by_parameter_order`): the rows are numbered in a VALUES list and
    inserted ORDER BY that number, so the id sequence is drawn row after row; RETURNING itself
    promises no order. The VALUES list's placeholders are cast (postgres_event.value_types)."""
    types = postgres_event.value_types(table, shape.columns, dialect)
    width = len(types)
    rows = ", ".join(
        "(" + ", ".join(f"${row * width + i + 1}::{kind}" for i, kind in enumerate(types)) + f", {row})"
        for row in range(count)
    )
    names = ", ".join(f"p{i}" for i in range(width))
    return (f"INSERT INTO {table.name} ({', '.join(shape.columns)}) SELECT {names} FROM (VALUES {rows}) "
            f"AS numbered({names}, row_number) ORDER BY row_number RETURNING id")


@lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """`?` placeholders as asyncpg's `$1`, `$2`…. Every `?` is taken for one: a statement given here
    writes JSONB's `?` operators as functions (`jsonb_exists`), and one with a `?` between plain
    quotes is refused rather than mangled (E'…', $$…$$, quoted names and comments are not looked
    into: write none of them with a `?` here)."""
    if any("?" in quoted for quoted in sql.split("'")[1::2]):
        raise ValueError(f"a '?' inside a string literal would be taken for a placeholder: {sql!r}")
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))
