"""PostgreSQL's pool checks a connection at checkout only when it sat idle (store/pool_ping.py): one
returned a moment ago is lent as it is, one idle longer is checked, and one the server dropped while
idle is replaced before anything runs on it, with the pool's others. Once one was found dead, on the
Core's path or the driver's, the others returned before are checked too. On a real server, the
connections ended by it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from gateway.store import postgres_driver
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
    """A pool of two connections, checked as the gateway's are, against the test's clock."""
    engine = create_async_engine(db_url, pool_size=2, max_overflow=0)
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


async def both(engine: AsyncEngine) -> set[int]:
    """Both pooled connections at once (each in a transaction), then back to the pool: their servers."""
    async with engine.connect() as a, engine.connect() as b:
        return {int(await c.scalar(text("SELECT pg_backend_pid()"))) for c in (a, b)}


async def on_the_driver(engine: AsyncEngine) -> int:
    """A transaction whose statement goes straight to asyncpg, as the dispatcher's and the ingest's
    do (store/postgres_driver.py): a lost connection is invalidated there, alone."""
    async with AsyncSession(engine) as session:
        return await session.run_sync(
            lambda s: int(postgres_driver.connection(s).query("SELECT pg_backend_pid()", ())[0][0]))


async def end(db_url: str, *pids: int) -> None:
    """The server ends those sessions, as a restart does, and they are gone before this returns."""
    admin = await asyncpg.connect(_plain(db_url))
    try:
        for pid in pids:  # with a timeout (ms), the server answers once the session is gone (PostgreSQL 14+)
            assert await admin.fetchval("SELECT pg_terminate_backend($1, 10000)", pid), f"session {pid} still there"
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
    clock.now += 0.4  # connected 1.4 s ago, but back in the pool for 0.4: its return is what counts
    assert await backend(engine) == first
    assert len(pings) == 1


async def test_connections_the_server_dropped_while_idle_are_replaced_before_use(engine, clock, pings, db_url):
    """The first check that finds one dead renews the pool's others too, as pool_pre_ping did: one
    check for a restart, not one for each connection."""
    old = await both(engine)
    await end(db_url, *old)
    clock.now += 1
    new = await both(engine)  # no error: the check found them dead, new ones took their place
    assert not new & old and len(pings) == 1


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


async def test_after_a_failure_on_the_driver_the_others_returned_before_it_are_checked(
        engine, clock, pings, db_url):
    """The driver invalidates only the connection it lost (the Core's statements, the whole pool):
    the other one, returned within the window but before the failure, is checked all the same, so a
    restart fails one transaction, not one for each pooled connection."""
    old = await both(engine)
    await end(db_url, *old)
    clock.now += 0.1
    with pytest.raises(DBAPIError) as failed:
        await on_the_driver(engine)
    assert failed.value.connection_invalidated and pings == []
    assert await on_the_driver(engine) not in old  # the other was checked, found dead and replaced
    assert len(pings) == 1
    assert not await both(engine) & old
