"""Engines and sessions: one code path for SQLite and PostgreSQL.

SQLite has one writer. Write transactions begin with `BEGIN IMMEDIATE` so that two of
them never both read and then fight over the lock ("database is locked"); a `begin`
event cannot tell a read from a write, so reads use a second engine whose transactions
are deferred and never wait behind the writer (WAL lets them read meanwhile).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000  # another process holding the write lock: wait, do not fail


class DatabaseUnavailable(Exception):
    """The database cannot be reached: the API answers 503 and acknowledges nothing."""


def _sqlite_pragmas(engine: AsyncEngine, *, begin: str, synchronous: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so our BEGIN is the one that runs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


class Database:
    """The writer and reader engines (the same engine on PostgreSQL) and their sessions."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL", pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split(":///", 1)[1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # One writer connection: concurrent writers queue in the pool (cheap, fair)
            # instead of polling SQLite's busy handler. Other processes still meet busy_timeout.
            self.writer = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)
            self.reader = create_async_engine(url, pool_size=4, max_overflow=4)
            _sqlite_pragmas(self.writer, begin="BEGIN IMMEDIATE", synchronous=sqlite_synchronous)
            _sqlite_pragmas(self.reader, begin="BEGIN", synchronous=sqlite_synchronous)
        else:
            self.writer = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            self.reader = self.writer
        self._write = async_sessionmaker(self.writer, expire_on_commit=False)
        self._read = async_sessionmaker(self.reader, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back on error."""
        async with self._write() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT with the dialect's ON CONFLICT clauses (PostgreSQL's or SQLite's)."""
    if session.bind.dialect.name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)
