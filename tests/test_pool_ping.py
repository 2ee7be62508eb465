"""PostgreSQL's pool checks a connection at checkout only when it sat idle (store/pool_ping.py): one
returned a moment ago is lent as it is, one idle longer is checked, and one the server dropped while
idle is replaced before anything runs on it. On a real server, the connections ended by it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.store.pool_ping import ping_when_idle
from tests.conftest import _plain

pytestmark = pytest.mark.parametrize("engine_name", ["postgresql"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def engine(db_url: str, clock: Clock) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, bypass=0.5, clock=clock)
    yield engine
    await engine.dispose()


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The checks made (each the adapter's real ping)."""
    made: list[int] = []
    real = AsyncAdapt_asyncpg_connection.ping

    def counted(self):
        made.append(1)
        return real(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted)
    return made


async def backend(engine: AsyncEngine) -> int:
    """One transaction on a pooled connection: the server process serving it."""
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")))


async def end(db_url: str, pid: int) -> None:
    """The server ends that session, as a restart does, and it is gone before this returns."""
    admin = await asyncpg.connect(_plain(db_url))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(500):
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                return
        raise AssertionError(f"session {pid} still there")
    finally:
        await admin.close()


async def test_a_connection_returned_a_moment_ago_is_lent_unchecked_and_one_idle_longer_is_checked(
        engine, clock, pings):
    first = await backend(engine)  # just connected: nothing to check
    clock.now += 0.4
    assert await backend(engine) == first
    assert pings == []
    clock.now += 0.6  # idle past the window since it came back
    assert await backend(engine) == first
    assert len(pings) == 1


async def test_a_connection_the_server_dropped_while_idle_is_replaced_before_use(engine, clock, pings, db_url):
    first = await backend(engine)
    await end(db_url, first)
    clock.now += 1
    second = await backend(engine)  # no error: the check found it dead, a new one took its place
    assert second != first and len(pings) == 1


async def test_one_dropped_within_the_window_fails_its_transaction_and_the_next_gets_a_new_one(
        engine, clock, db_url):
    """What the window gives up, as a connection dropped mid-transaction always did."""
    first = await backend(engine)
    await end(db_url, first)
    clock.now += 0.1
    with pytest.raises(DBAPIError) as failed:
        await backend(engine)
    assert failed.value.connection_invalidated
    assert await backend(engine) != first
