"""When each API key was last used (`api_keys.last_used_at`), written at most once a minute per key.

A write on every request would put one more transaction on SQLite's single writer for each
event ingested; the keys page only needs to tell a key in use from a forgotten one, so the time
is kept to `GRANULARITY`. The last value written is remembered per Database (as the key cache
is), and the key row read by `keys.verify` (at most a second old) says what another process
wrote, so N processes write at most N times a minute per key. "Now" is the runtime's clock.
"""

from __future__ import annotations

import logging
import weakref
from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.exc import SQLAlchemyError

from gateway.api.keys import CACHE_ENTRIES, KeyInfo
from gateway.store.database import Database
from gateway.store.models import ApiKey

log = logging.getLogger("gateway.api")

GRANULARITY = 60.0  # seconds: a key's last use is written again only this long after the last write
# Per Database: key name -> the last use this process wrote (or is writing).
_written: weakref.WeakKeyDictionary[Database, dict[str, datetime]] = weakref.WeakKeyDictionary()


def due(key: KeyInfo, written: datetime | None, now: datetime) -> bool:
    """Whether a use at `now` must be written: nothing recent is on record, here or in the row."""
    known = [t for t in (key.last_used_at, written) if t is not None]
    return not known or (now - max(known)).total_seconds() >= GRANULARITY


async def note_use(db: Database, key: KeyInfo, now: datetime) -> None:
    written = _written.setdefault(db, {})
    if not due(key, written.get(key.name), now):
        return
    if len(written) >= CACHE_ENTRIES:
        written.clear()
    # Claimed before the write is awaited: requests arriving meanwhile must not write it too.
    written[key.name] = now
    try:
        async with db.write() as session:
            # Never backwards: another process (or a clock behind ours) may have written a later use.
            await session.execute(update(ApiKey).where(
                ApiKey.name == key.name, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now))
                .values(last_used_at=now))
    except SQLAlchemyError as exc:
        # The request itself must not fail for its bookkeeping; the next use after a minute tries again.
        written.pop(key.name, None)
        log.warning("key use not recorded", extra={"action": "key_use_not_recorded", "key": key.name,
                                                   "error": type(exc).__name__})
