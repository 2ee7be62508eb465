"""Room in SQLite's page cache on the writer, for a sweep whose batches rewrite scattered pages.

Anonymizing a protocol changes a page at a random place of each index of personal data (the
email's digest, the phone, the page link's hash) besides its row's: ~7 pages a protocol. The
writer's cache is SQLite's default, 2,000 KiB (500 pages of 4 KiB), so a batch of 500 protocols
(~3,400 pages) overflowed it: SQLite wrote dirty pages to the WAL before the COMMIT
(`sqlite3PcacheFetchStress` in a native profile: a sixth of the writer thread's samples), then read them
back, and wrote them again at the COMMIT. With room for the whole batch, each is written once.

The room is the writer connection's while the block runs, then given back (SQLite frees the
pages over the limit at once), so the daemon's memory outside a sweep is what it was. There is
one writer connection (store/database.py): every transaction of the block runs on it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from gateway.store.database import Database

KIB_PER_PROTOCOL = 32  # ~7 dirty pages of 4 KiB a protocol, and the index pages read to reach them
MAX_KIB = 256 * 1024


@dataclass
class _Room:
    """What the blocks open on one database asked for, and the cache the writer had before them:
    two anonymize schedules may overlap, and whichever ends first must not shrink the other's."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    asked: list[int] = field(default_factory=list)  # KiB, one entry a block open
    before: int = 0  # the writer's cache_size when the first of them began


_ROOMS: weakref.WeakKeyDictionary[Database, _Room] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def writer_cache_for(db: Database, protocols_a_batch: int) -> AsyncIterator[None]:
    """For the block, a writer cache of room for a batch of `protocols_a_batch` (SQLite; nothing on PostgreSQL)."""
    if not db.is_sqlite:
        yield
        return
    kib = min(max(protocols_a_batch, 1) * KIB_PER_PROTOCOL, MAX_KIB)
    room = _ROOMS.setdefault(db, _Room())
    async with room.lock:
        if not room.asked:
            room.before = await _pragma(db, "cache_size")
        room.asked.append(kib)
        await _size(db, room)
    try:
        yield
    finally:
        async with room.lock:
            room.asked.remove(kib)
            await _size(db, room)


async def _size(db: Database, room: _Room) -> None:
    """The largest room asked for by the blocks open, never less than the cache had before them."""
    before_kib = -room.before if room.before < 0 else room.before * await _pragma(db, "page_size") // 1024
    wanted = max(room.asked, default=0)
    await _pragma(db, "cache_size", -wanted if wanted > before_kib else room.before)


async def _pragma(db: Database, name: str, value: int | None = None) -> int:
    """Read (or set) an integer pragma of the writer connection."""
    (row,) = await db.outside_transaction([f"PRAGMA {name}" if value is None else f"PRAGMA {name}={int(value)}"])
    return int(row[0]) if row is not None else 0
