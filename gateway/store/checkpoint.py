"""The daemon's WAL checkpointer (SQLite): once a second, off the writer's path, and again
soon after while writes come fast.

See `WRITER_AUTOCHECKPOINT_PAGES` in store/database.py for why it exists. `checkpointing`
runs the same beside long work outside the daemon (a sweep run by hand): without it every
40,000 pages the commit that crosses the line copies them back itself (when that line was
10,000 pages, the anonymize sweep over a million protocols took 28 s by hand against 21 s
beside the checkpointer).

Once a second was too seldom for the anonymize sweep, which writes ~40,000 pages a second: the
WAL crossed the writer's line between two checkpoints, and the writer's COMMITs copied it back
themselves, on the sweep's path. After a checkpoint that found `BUSY_FRAMES` written since the
one before, the next comes after `SOON`: the copying stays on the other core (the sweep's
COMMITs 3.7 → 2.9 s over a million protocols). An idle daemon still checkpoints once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from gateway.store.database import Database

log = logging.getLogger("gateway.store")

EVERY = 1.0  # seconds: the WAL holds about this much of the writes between two checkpoints
SOON = 0.1  # seconds: the next checkpoint while writes come fast
BUSY_FRAMES = 1_000  # frames (4 MiB) written between two checkpoints: writes come fast


async def run_checkpoints(db: Database, stop: asyncio.Event, *, every: float = EVERY) -> None:
    wait, frames = every, 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
            return
        try:
            now = await db.checkpoint()
        except Exception as exc:  # the next one catches up; the writer's own checkpoint is the net
            log.warning("checkpoint failed", extra={"action": "checkpoint_failed", "error": type(exc).__name__})
            wait = every
            continue
        wait, frames = next_wait(frames, now, every), now


def next_wait(before: int, now: int, every: float) -> float:
    """Seconds to the next checkpoint, from the WAL's length in frames at the last two. A WAL
    shorter than before was started over (a complete checkpoint, then a write): all of it is new."""
    written = now - before if now >= before else now
    return min(SOON, every) if written >= BUSY_FRAMES else every


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
