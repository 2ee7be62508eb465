"""The daemon's WAL checkpointer (SQLite): once a second, off the writer's path.

See `WRITER_AUTOCHECKPOINT_PAGES` in store/database.py for why it exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

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
