"""The daemon's WAL checkpointer (SQLite): once a second, off the writer's path, and again
soon after while writes come fast.

See `WRITER_AUTOCHECKPOINT_PAGES` in store/database.py for why it exists. `checkpointing`
runs the same beside long work outside the daemon (a sweep run by hand): without it every
40,000 pages the commit that crosses the line copies them back itself (when that line was
10,000 pages, the anonymize sweep over a million protocols took 28 s by hand against 21 s
beside the checkpointer).

Once a second was too seldom for the anonymize sweep, which writes ~40,000 pages a second: the
WAL crossed the writer's line between two checkpoints, and the writer's COMMITs copied it back
themselves, on the sweep's path. While writes reach the WAL at `BUSY_RATE` or faster, the next
checkpoint comes after `SOON`: the copying stays on the other core (the sweep's COMMITs
3.7 → 2.9 s over a million protocols). An idle daemon still checkpoints once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from gateway.store.database import Database, WalState

log = logging.getLogger("gateway.store")

EVERY = 1.0  # seconds: the WAL holds about this much of the writes between two checkpoints
SOON = 0.1  # seconds: the next checkpoint while writes come fast
BUSY_RATE = 10_000  # frames (40 MiB) a second reaching the WAL: a quarter of the writer's line a second


async def run_checkpoints(db: Database, stop: asyncio.Event, *, every: float = EVERY) -> None:
    wait, last = every, None
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
            return
        try:
            now = await db.checkpoint()
        except Exception as exc:  # the next one catches up; the writer's own checkpoint is the net
            log.warning("checkpoint failed", extra={"action": "checkpoint_failed", "error": type(exc).__name__})
            wait, last = every, None
            continue
        wait, last = next_wait(last, now, waited=wait, every=every), now


def next_wait(before: WalState | None, now: WalState, *, waited: float, every: float) -> float:
    """Seconds to the next checkpoint: `SOON` while the frames written between the last two
    checkpoints, `waited` seconds apart, came at `BUSY_RATE` or faster; else `every`."""
    written = written_between(before, now)
    return min(SOON, every) if written and written >= BUSY_RATE * waited else every


def written_between(before: WalState | None, now: WalState) -> int:
    """Frames written to the WAL between two checkpoints, from what each found."""
    if before is None or now.frames < before.frames:
        return now.frames  # the first, or the WAL was started over: all of it is new
    if now.frames == before.frames:
        return 0
    if before.copied >= before.frames:
        # The last one copied it all back, so the next write started the WAL over (unless a
        # reader's snapshot kept it from doing so: then this counts too much, and the next
        # checkpoint comes a little early).
        return now.frames
    return now.frames - before.frames


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
