"""The key check keeps a row for a second: a revocation elsewhere is seen within it, here at once."""

from __future__ import annotations

from datetime import datetime, timezone

from gateway.api import keys
from gateway.store.database import Database

NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)


async def test_revoked_elsewhere_is_refused_once_the_cached_row_is_older_than_a_second(db_url, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(keys.time, "monotonic", lambda: clock[0])
    here, elsewhere = Database(db_url), Database(db_url)  # two processes' views of one database
    try:
        key = await keys.create_key(here, "crm", ["events:write"], now=NOW)
        assert (await keys.verify(here, key)).name == "crm"
        await keys.revoke(elsewhere, "crm", now=NOW)
        clock[0] += keys.CACHE_SECONDS / 2
        assert await keys.verify(here, key) is not None  # the row read half a second ago
        clock[0] += keys.CACHE_SECONDS
        assert await keys.verify(here, key) is None
        assert await keys.verify(here, key[:-1] + "x") is None  # a wrong secret never passes, cached or not
    finally:
        await here.dispose()
        await elsewhere.dispose()


async def test_revoked_in_this_process_is_refused_at_once(db_url):
    db = Database(db_url)
    try:
        key = await keys.create_key(db, "crm", ["events:write"], now=NOW)
        assert await keys.verify(db, key) is not None
        await keys.revoke(db, "crm", now=NOW)
        assert await keys.verify(db, key) is None
    finally:
        await db.dispose()
