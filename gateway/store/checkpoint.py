"""The daemon's WAL checkpointer (SQLite): once a second, off the writer's path.

See `WRITER_AUTOCHECKPOINT_PAGES` in store/database.py for why it exists. `checkpointing`
runs the same beside long work outside the daemon (a sweep run by hand): without it every
40,000 pages the commit that crosses the line copies them back itself (when that line was
10,000 pages, the anonymize sweep over a million protocols took 28 s by hand against 21 s
beside the checkpointer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from gateway.store.database import Database

log = logging.getLogger("gateway.store")

EVERY = 1.0  # seconds: the WAL holds about this much of the writes between two checkpoints


async def run_checkpoints(db: Database, stop: asyncio.Event, *, every: float = EVERY) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
            return
        try:
            await db.checkpoint()
        except Exception as exc:  # the next one catches up; the writer's own checkpoint is the net
            log.warning("checkpoint failed", extra={"action": "checkpoint_failed", "error": type(exc).__name__})


@contextlib.asynccontextmanager
async def checkpointing(db: Database, *, every: float = EVERY) -> AsyncIterator[None]:
    """The checkpointer for the length of the block (SQLite; nothing on PostgreSQL)."""
    if not db.is_sqlite:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(run_checkpoints(db, stop, every=every), name="checkpoints")
    try:
        yield
    finally:
        stop.set()
        await task
