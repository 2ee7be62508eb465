"""SQLite's WAL is copied back by the daemon's checkpointer, not inside a commit, and stays small."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.api.cloudevents import to_incoming
from gateway.app import prepare
from gateway.store.checkpoint import BUSY_RATE, SOON, checkpointing, next_wait
from gateway.store.database import LentConnection, WalState
from gateway.store.vacuum import erase_sqlite
from tests.helpers import opened_event

NOW = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_checkpoints_keep_the_wal_from_growing(runtime):
    await prepare(runtime)
    wal = Path(runtime.db.url.split(":///", 1)[1] + "-wal")

    async def write(start: int) -> None:
        for i in range(start, start + 100):
            await runtime.service.handle(to_incoming(opened_event(f"w-{i}", notify=["email"])), received_at=NOW)

    await write(0)
    grown = wal.stat().st_size  # the writer no longer checkpoints every 1,000 pages on its own
    for round_ in range(1, 4):
        await runtime.db.checkpoint()
        await write(round_ * 100)  # after a complete checkpoint the next writes start the WAL over
    # Bounded, not equal: later rounds write into deeper B-trees (a 10 % margin failed once on a
    # loaded machine at 1.10x); unbounded growth is over 1.5x, checked below.
    assert wal.stat().st_size <= grown * 1.3

    # Without checkpoints the same writes keep growing it.
    await write(400)
    await write(500)
    assert wal.stat().st_size > grown * 1.5


async def test_checkpointing_runs_the_checkpointer_for_the_length_of_its_block(database):
    """Long work outside the daemon (`schedules run`) runs the daemon's checkpointer beside it."""
    calls: list[int] = []
    called = asyncio.Event()
    real = database.checkpoint

    async def counted() -> WalState:
        calls.append(1)
        called.set()
        return await real()

    database.checkpoint = counted
    async with checkpointing(database, every=0):
        if database.is_sqlite:
            await asyncio.wait_for(called.wait(), timeout=10)  # a bound on a failure, not a wait for time
    ran = len(calls)
    await asyncio.sleep(0)
    assert len(calls) == ran  # stopped with the block
    assert (ran > 0) == database.is_sqlite  # PostgreSQL checkpoints by itself
    assert not any(t.get_name() == "checkpoints" for t in asyncio.all_tasks())


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_emptying_the_wal_after_anonymizing_waits_for_a_checkpoint_under_way(runtime):
    """SQLite answers a checkpoint started during another with "busy" at once: the WAL that must
    be emptied (old personal data in it) would stay full whenever the checkpointer was at work."""
    await prepare(runtime)
    wal = Path(runtime.db.url.split(":///", 1)[1] + "-wal")
    for i in range(20):
        await runtime.service.handle(to_incoming(opened_event(f"e-{i}", notify=["email"])), received_at=NOW)
    assert wal.stat().st_size > 0
    async with runtime.db.checkpoint_lock:  # the checkpointer's turn
        emptying = asyncio.create_task(erase_sqlite(runtime.db, vacuum=False))
        await asyncio.sleep(0)  # the task runs up to where it first waits: for its turn
        assert "acquire" in awaiting(emptying), awaiting(emptying)
        routine = asyncio.create_task(runtime.db.checkpoint())  # and the checkpointer's next one
        await asyncio.sleep(0)
        assert "acquire" in awaiting(routine), awaiting(routine)
        assert wal.stat().st_size > 0
    await routine
    assert await emptying is True
    assert wal.stat().st_size == 0


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_a_wal_a_reader_keeps_from_emptying_is_reported(runtime, caplog):
    """Another process reading an old snapshot keeps the WAL's frames: erase_sqlite says so (False,
    and a warning), rather than claiming the old values are gone."""
    await prepare(runtime)
    path = runtime.db.url.split(":///", 1)[1]
    await runtime.service.handle(to_incoming(opened_event("before", notify=["email"])), received_at=NOW)
    other = sqlite3.connect(path)  # another process's reader, in the middle of a read
    try:
        other.execute("BEGIN")
        other.execute("SELECT count(*) FROM protocols").fetchone()
        await runtime.service.handle(to_incoming(opened_event("after", notify=["email"])), received_at=NOW)
        # The writer would wait 30 s for the reader: a tenth of a second says the same here.
        await runtime.db.outside_transaction(["PRAGMA busy_timeout=100"])
        with caplog.at_level(logging.WARNING, logger="gateway.store.vacuum"):
            assert await erase_sqlite(runtime.db, vacuum=False) is False
        assert [r.action for r in caplog.records if r.name == "gateway.store.vacuum"] == ["retention_wal_not_emptied"]
    finally:
        other.close()
    assert await erase_sqlite(runtime.db, vacuum=False) is True  # the reader gone, it empties
    assert Path(path + "-wal").stat().st_size == 0


def awaiting(task: asyncio.Task) -> list[str]:
    """The coroutines `task` is suspended in, outermost first."""
    names, step = [], task.get_coro()
    while step is not None:
        code = getattr(step, "cr_code", None)
        if code is not None:
            names.append(code.co_name)
        step = getattr(step, "cr_await", None)
    return names


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_a_checkpoint_leaves_no_statement_active_on_its_connection(database, monkeypatch):
    """The checkpoint's cursor is closed at once. Left open, its statement stayed active on the
    pooled reader until the connection's next job (aiosqlite's thread keeps the last result),
    and the next transaction lent that connection, registering SQLAlchemy's functions again,
    failed ("Error creating function"): a 503."""
    # Registering a function again is refused while any statement of the connection is active:
    # the probe, as the lending engine did before it stopped registering them for every transaction.
    monkeypatch.setattr(LentConnection, "create_function",
                        lambda self, *args, **kwargs: self._connection.create_function(*args, **kwargs))
    for _ in range(3):
        await database.checkpoint()
        assert database.reader.sync_engine.pool.checkedin() == 1  # one reader: the query below gets it
        assert await database.query(lambda session: session.execute(text("SELECT 1")).scalar()) == 1


def test_the_next_checkpoint_comes_soon_while_writes_come_fast():
    every = 1.0

    def after(before, now, waited=1.0):
        return next_wait(None if before is None else WalState(*before), WalState(*now), waited=waited, every=every)

    assert after(None, (BUSY_RATE, 0)) == SOON  # the first: all of the WAL is new
    assert after((5_000, 2_000), (5_000 + BUSY_RATE, 2_000)) == SOON  # a busy second: again soon
    assert after((5_000, 2_000), (5_000 + BUSY_RATE - 1, 2_000)) == every  # a quiet one: a second
    assert after((5_000, 5_000), (5_000, 5_000)) == every  # nothing written: the WAL as it was
    assert after((40_000, 40_000), (BUSY_RATE, 0)) == SOON  # started over, then as much written
    assert after((40_000, 40_000), (10, 0)) == every
    # Copied back whole, then started over and written past its old length: all of it is new.
    assert after((BUSY_RATE, BUSY_RATE), (BUSY_RATE + 100, BUSY_RATE + 100)) == SOON
    # At SOON's pace the rate is what counts, not the frames: a tenth as many in a tenth of the time.
    assert after((5_000, 2_000), (5_000 + BUSY_RATE // 10, 2_000), waited=SOON) == SOON
    assert after((5_000, 2_000), (5_000 + BUSY_RATE // 10 - 1, 2_000), waited=SOON) == every
    assert next_wait(None, WalState(BUSY_RATE, 0), waited=0.0, every=0.0) == 0.0  # never later than asked


async def test_a_checkpoint_says_how_long_the_wal_is(database):
    """What the checkpointer paces itself by: frames in the WAL, 0 on PostgreSQL (no WAL of ours)."""
    await database.checkpoint()
    async with database.write() as session:
        await session.execute(text("CREATE TABLE filler (x TEXT)"))
        await session.execute(text("INSERT INTO filler VALUES (:x)"), [{"x": "x" * 3000} for _ in range(50)])
    found = await database.checkpoint()
    if database.is_sqlite:
        assert found.frames >= 50 and found.copied == found.frames  # a page a row at least, all copied
        assert await database.checkpoint() == found  # not started over until a write
    else:
        assert found == (0, 0)
