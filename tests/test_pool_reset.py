"""SQLite's pools roll a connection back on return only when a transaction is still open on it.

The rollback is a trip to aiosqlite's thread; the pool made it on every return, after
transactions that had always ended (store/database.py, `_reset_when_open`).
"""

from __future__ import annotations

from collections.abc import Iterator

import aiosqlite
import pytest
from sqlalchemy import func, literal, select, text

from gateway.store.database import Database


@pytest.fixture
def rollbacks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every rollback aiosqlite is asked for (the pool's reset goes through it)."""
    calls: list[int] = []
    real = aiosqlite.Connection.rollback

    async def counted(self: aiosqlite.Connection) -> None:
        calls.append(1)
        await real(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counted)
    yield calls


async def _connected(url: str, rollbacks: list[int]) -> Database:
    """A database whose writer and first reader are connected: SQLAlchemy rolls back an engine's
    first connection once, when it first looks at the server (which also shows the count works)."""
    db = Database(url)
    await db.transact(lambda s: s.connection())
    await db.query(lambda s: s.connection())
    assert rollbacks == [1, 1]
    rollbacks.clear()
    return db


async def test_connections_given_back_clean_make_no_trip(sqlite_url: str, rollbacks: list[int]) -> None:
    db = await _connected(sqlite_url, rollbacks)
    try:
        for _ in range(3):
            assert await db.transact(lambda s: s.execute(text("SELECT count(*) FROM protocols")).scalar()) == 0
            assert await db.query(lambda s: s.execute(text("SELECT 1")).scalar()) == 1
        async with db.write() as session:
            await session.execute(text("SELECT 1"))
        async with db.read() as session:
            await session.execute(text("SELECT 1"))
    finally:
        await db.dispose()
    assert rollbacks == []


@pytest.mark.parametrize("pool", ["writer", "reader"])
async def test_a_connection_given_back_mid_transaction_is_rolled_back(sqlite_url: str, rollbacks: list[int],
                                                                      pool: str) -> None:
    db = await _connected(sqlite_url, rollbacks)
    try:
        engine = db.writer if pool == "writer" else db.reader
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            # Outside SQLAlchemy's view: as a raw BEGIN, or a COMMIT that failed, leaves it.
            await raw.driver_connection.execute("BEGIN IMMEDIATE")
            await raw.driver_connection.execute("CREATE TABLE left_open (x)")
        assert rollbacks == [1]
        # The write lock went with the rollback: the next writer gets it, and nothing was kept.
        kept = await db.transact(lambda s: s.execute(text("SELECT count(*) FROM sqlite_master WHERE name = 'left_open'")
                                                     ).scalar())
        assert kept == 0
    finally:
        await db.dispose()


async def test_lent_sessions_keep_sqlalchemys_functions_and_bear_an_open_statement(sqlite_url: str,
                                                                                 rollbacks: list[int]) -> None:
    """The lending engine no longer registers REGEXP and floor for every transaction: the async
    pool's connect did, on the same connection. Registering them again was refused while any
    statement of the connection was active; a statement left open no longer matters."""
    db = await _connected(sqlite_url, rollbacks)
    try:
        async with db.reader.connect() as connection:
            raw = await connection.get_raw_connection()
            left_open = await raw.driver_connection.execute("SELECT 1 UNION ALL SELECT 2")
            await left_open.fetchone()  # stepped once, not reset: an active statement
        assert db.reader.sync_engine.pool.checkedin() == 1  # the one reader: the next query gets it
        matched = await db.query(lambda s: s.execute(select(literal("protocol").regexp_match("^pro"))).scalar())
        floored = await db.query(lambda s: s.execute(select(func.floor(2.5))).scalar())
        await left_open.close()
    finally:
        await db.dispose()
    assert matched == 1 and floored == 2
