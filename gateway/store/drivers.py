"""The database driver under a transaction, for the statements every event runs.

An event's statements skip SQLAlchemy's execution machinery, which costs more than the
databases spend running them: on SQLite they go to the sqlite3 connection the writer lends
(store/sqlite_driver.py), on PostgreSQL to SQLAlchemy's asyncpg adapter under the session
(store/postgres_driver.py). Both answer the same methods, so a caller asks once and writes
each statement once, with `?` placeholders (the PostgreSQL side numbers them):

    driver = drivers.under(session)
    if driver is not None:
        found = driver.query_one("SELECT answer FROM events WHERE id = ?", (row_id,))
        answer = None if found is None else driver.json_value(found[0])

None means a connection neither takes (SQLite under an `AsyncSession.run_sync`, whose driver is
aiosqlite's): use the Core there. `name` tells the databases apart where their SQL differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.orm import Session

from gateway.store import postgres_driver, sqlite_driver


class Driver(Protocol):
    name: str  # "sqlite" or "postgresql", as SQLAlchemy's dialects are named

    def insert(self, table: Table, values: dict[str, Any]) -> int: ...

    def insert_rows(self, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]: ...

    def can_insert(self, table: Table, columns: tuple[str, ...]) -> bool: ...

    def query_one(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None: ...

    def execute(self, sql: str, params: Sequence[Any]) -> int: ...

    def json_value(self, stored: Any) -> Any: ...


_KEY = "gateway.driver"  # where a session keeps the answer: asked several times an event


def under(session: Session) -> Driver | None:
    """The driver under `session`'s transaction, or None where only the Core can go."""
    try:
        return session.info[_KEY]  # type: ignore[no-any-return]
    except KeyError:
        pass
    raw = sqlite_driver.connection(session)
    found: Driver | None = (sqlite_driver.SQLiteDriver(raw) if raw is not None
                            else postgres_driver.connection(session))
    session.info[_KEY] = found
    return found
