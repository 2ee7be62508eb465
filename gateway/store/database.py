"""Engines and sessions: one code path for SQLite and PostgreSQL.

SQLite has one writer. Write transactions begin with `BEGIN IMMEDIATE` so that two of
them never both read and then fight over the lock ("database is locked"); a `begin`
event cannot tell a read from a write, so reads use a second engine whose transactions
are deferred and never wait behind the writer (WAL lets them read meanwhile).

The hot paths (an event's transaction, the dispatcher's turn) are written as plain
functions of a synchronous `Session` and run by `Database.transact`. Through aiosqlite
every statement is a round trip to the connection's thread and back through the event
loop (~0.3-0.5 ms on a busy loop, against ~0.05 ms of SQLite work), and a transaction
is some thirty of them; `transact` hands the whole function to that thread instead, one
trip per transaction, on the same single writer connection. On PostgreSQL the same
function runs through `AsyncSession.run_sync` (asyncpg has no thread to hop to).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from gateway.store.outage import DatabaseUnavailable  # noqa: F401 (the API imports it from here)
from gateway.store.pg_tls import PostgresTarget, postgres_target
from gateway.store.pool_ping import ping_when_idle

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000  # another process holding the write lock: wait, do not fail
# The daemon copies the WAL back into the database file from a reader connection every
# second (store/checkpoint.py), so a commit never pays for it: SQLite's own checkpoint,
# every 1,000 pages by default, ran inside whichever commit crossed the line (profiled:
# a fifth of an event's CPU when each commits alone). This is only the safety net, for
# a writer with no daemon beside it or a checkpointer that cannot keep up: the anonymize
# sweep writes ~30,000 pages a second, and at 10,000 its commits checkpointed every third
# of a second (a million protocols: 17.3 s against 14.7 s at 40,000, median of 3; ingest
# unchanged, bench/README.md). The WAL can reach ~160 MB before the writer steps in.
WRITER_AUTOCHECKPOINT_PAGES = 40_000
CONNECT_TIMEOUT = 10.0  # seconds: a host that never answers stops start-up instead of hanging it
# The database holds personal data: its folder and file are the owner's alone whatever the
# umask; SQLite gives its -wal and -shm files the database file's mode.
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def _sqlite_engine(url: str, *, begin: str, synchronous: str, autocheckpoint: int | None = None,
                   **pool: Any) -> AsyncEngine:
    """An engine on the SQLite file with our pragmas and BEGIN, and the pool's reset on return
    switched off: `_reset_when_open` does it instead, only when it is needed."""
    engine = create_async_engine(url, pool_reset_on_return=None, **pool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so our BEGIN is the one that runs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if autocheckpoint is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}")
        cursor.close()

    _begin_with(engine.sync_engine, begin)
    _reset_when_open(engine)
    return engine


def _reset_when_open(engine: AsyncEngine) -> None:
    """The pool's rollback on return (its `reset_on_return`, switched off by `_sqlite_engine`), only
    when a transaction is still open on the connection.

    Through aiosqlite the rollback is a trip to the connection's thread and back, and the pool
    made it on every return, though `transact`, `query` and the sessions have always ended
    their transaction by then: ~0.1 ms of CPU a transaction, for nothing (`python -m
    bench.transactions`). Whether sqlite3 has a transaction open is a flag, read here on the
    loop without the trip, while the connection's thread is idle: only a job whose caller was
    cancelled may still run there, and that job ends its own transaction. A connection given
    back with a transaction open (a raw BEGIN, a COMMIT that failed) is still rolled back: on
    the writer the write lock, on a reader its snapshot of the WAL, never stays with a
    connection at rest in the pool.
    """

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        # Not `asyncio_safe`: the connection is being garbage-collected outside the loop, where
        # the default reset does nothing either.
        if state.asyncio_safe and _transaction_open(record):
            dbapi_connection.rollback()


def _transaction_open(record: Any) -> bool:
    connection = record.driver_connection if record is not None else None  # None: detached
    if connection is None:
        return True  # nothing to read the flag from: roll back, as the default reset would
    try:
        return bool(connection.in_transaction)  # aiosqlite's property: sqlite3's own flag
    except ValueError:  # aiosqlite's connection already closed: nothing left to roll back
        return False


def _begin_with(engine: Any, begin: str) -> None:
    """Every transaction of `engine` starts with our `begin` (BEGIN IMMEDIATE for the writer)."""

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


_lent = threading.local()  # the sqlite3 connection lent to the sync engine, per aiosqlite thread


class LentConnection:
    """A pooled sqlite3 connection (the writer's or a reader's) lent to a synchronous
    engine for one transaction. The async pool owns it: the borrower must not close it.
    """

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def close(self) -> None:
        pass

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        """Already done: the async pool's connect ran the same dialect's functions (REGEXP, floor)
        on this connection before lending it. The lending engine connects anew for every
        transaction, and registering a function again replaces it, which SQLite refuses while
        any statement of the connection is still active ("Error creating function")."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class WalState(NamedTuple):
    """What a checkpoint found in SQLite's WAL: its length in frames, and how many are copied back."""

    frames: int
    copied: int


class Database:
    """The writer and reader engines (the same engine on PostgreSQL) and their sessions."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL", pool_size: int = 10,
                 connect_timeout: float = CONNECT_TIMEOUT, create: bool = True) -> None:
        """`create=False` (the CLI's commands but `migrate`) never makes a SQLite file or its folder."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.postgres: PostgresTarget | None = None
        if self.is_sqlite:
            path = sqlite_path(url)
            if path is not None and create:
                create_sqlite_file(path)
            # One writer connection: concurrent writers queue in the pool (cheap, fair)
            # instead of polling SQLite's busy handler. Other processes still meet busy_timeout.
            self.writer = _sqlite_engine(url, begin="BEGIN IMMEDIATE", synchronous=sqlite_synchronous,
                                         autocheckpoint=WRITER_AUTOCHECKPOINT_PAGES,
                                         pool_size=1, max_overflow=0, pool_timeout=60)
            self.reader = _sqlite_engine(url, begin="BEGIN", synchronous=sqlite_synchronous,
                                         pool_size=4, max_overflow=4)
            # Used only inside aiosqlite's threads, on a connection the async pool lent us.
            self._sync_writer = _lending_engine(begin="BEGIN IMMEDIATE")
            self._sync_reader = _lending_engine(begin="BEGIN")
        else:
            self.postgres = postgres_target(url, connect_timeout=connect_timeout)
            # A connection the server dropped (a restart, pg_terminate_backend) is found dead at
            # checkout and replaced, so the pool recovers by itself: checked when it sat idle
            # (store/pool_ping.py), as pool_pre_ping checked it at every checkout.
            self.writer = create_async_engine(self.postgres.url, connect_args=self.postgres.connect_args,
                                              pool_size=pool_size, max_overflow=pool_size)
            ping_when_idle(self.writer)
            self.reader = self.writer
        self._write = async_sessionmaker(self.writer, expire_on_commit=False)
        self._read = async_sessionmaker(self.reader, expire_on_commit=False)
        # One checkpoint at a time in this process: SQLite answers a second one started meanwhile
        # with "busy" at once, and the one that must not fail (emptying the WAL after anonymizing,
        # store/vacuum.py) would lose to the checkpointer's routine one.
        self.checkpoint_lock = asyncio.Lock()

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back on error."""
        async with self._write() as session, session.begin():
            yield session

    async def transact(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` as one write transaction, committed when it returns.

        `fn` must not await or block on anything but the database: on SQLite it runs in the
        writer connection's thread, and the writer is held for all of it. It returns plain
        values, never a `Result` still to be read: aiosqlite's thread keeps the last return
        value until its next job, and a statement left active holds the connection.
        """
        if not self.is_sqlite:
            async with self.write() as session:
                return await session.run_sync(fn)
        return await _in_thread(self.writer, self._sync_writer, fn)

    async def query(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a read transaction; on SQLite in one trip, like `transact`."""
        if not self.is_sqlite:
            async with self.read() as session:
                return await session.run_sync(fn)
        return await _in_thread(self.reader, self._sync_reader, fn)

    async def checkpoint(self) -> WalState:
        """SQLite: copy what the WAL holds into the database file, from a reader connection.
        Returns what it found: the WAL's frames, and how many of them are in the file now
        (none on PostgreSQL).

        PASSIVE: it never waits for the writer nor makes it wait; what it cannot copy now
        (frames a reader still uses) waits for the next one. Outside any transaction, as a
        checkpoint must be.
        """
        if not self.is_sqlite:
            return WalState(0, 0)
        async with self.checkpoint_lock:
            (row,) = await self.outside_transaction(["PRAGMA wal_checkpoint(PASSIVE)"], writer=False)
        if row is None:  # (busy, frames in the WAL, frames copied back)
            return WalState(0, 0)
        return WalState(max(int(row[1]), 0), max(int(row[2]), 0))  # -1 each: not in WAL mode

    async def outside_transaction(self, statements: Sequence[str], *, writer: bool = True) -> list[Any]:
        """SQLite: run each statement on the writer's connection (or a reader's) outside any
        transaction, as checkpoints, VACUUM and pragmas must be; the first row of each, or None."""
        if not self.is_sqlite:
            raise RuntimeError("outside_transaction is for SQLite's connections")
        rows: list[Any] = []
        async with (self.writer if writer else self.reader).connect() as connection:
            adapted = await connection.get_raw_connection()
            driver = adapted.driver_connection  # aiosqlite: autocommit (isolation_level None), no BEGIN
            for sql in statements:
                # Each cursor closed at once: aiosqlite's thread keeps the last result until its
                # next job, and the statement would stay active on the connection meanwhile.
                async with driver.execute(sql) as cursor:
                    rows.append(await cursor.fetchone())
        return rows

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.is_sqlite:
            self._sync_writer.dispose()
            self._sync_reader.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def create_sqlite_file(path: Path) -> None:
    """Make the folder (0700) and an empty database file (0600) before SQLite does, so that
    neither is ever readable by others, whatever the process's umask."""
    if not path.parent.exists():
        path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    os.fchmod(fd, PRIVATE_FILE)  # the umask only removes bits; this says exactly which
    os.close(fd)


def _lending_engine(*, begin: str) -> Any:
    engine = create_engine("sqlite://", creator=lambda: LentConnection(_lent.connection), poolclass=NullPool)
    _begin_with(engine, begin)
    return engine


async def _in_thread(pool: AsyncEngine, engine: Any, fn: Callable[[Session], T]) -> T:
    """Borrow a connection of `pool` and run the whole transaction in its aiosqlite thread."""
    async with pool.connect() as connection:  # pool order: on the writer, the one connection's queue
        adapted = await connection.get_raw_connection()
        worker = adapted.driver_connection  # aiosqlite.Connection
        # aiosqlite's own queue to its thread: the private `_execute`, which every one of its
        # public methods uses (aiosqlite is pinned below 0.23 for it).
        return await worker._execute(_run_lent, engine, worker._conn, fn)


def _run_lent(engine: Any, connection: Any, fn: Callable[[Session], T]) -> T:
    _lent.connection = connection
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            return fn(session)
    finally:
        _lent.connection = None


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT with the dialect's ON CONFLICT clauses (PostgreSQL's or SQLite's)."""
    if session.bind.dialect.name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)
