"""The key check keeps a row for a second: a revocation elsewhere is seen within it, here at once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from sqlalchemy import event

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


async def test_requests_that_find_the_row_stale_together_share_one_read(db_url):
    """Fifty requests arriving as the cached row expires read it once, not fifty times."""
    db = Database(db_url)
    reads: list[str] = []
    # Where db.query runs its statements: SQLite's lending engine, PostgreSQL's async engine.
    engine = db._sync_reader if db.is_sqlite else db.reader.sync_engine

    def count(_conn, _cursor, statement, *_args) -> None:
        if "api_keys" in statement:
            reads.append(statement)

    try:
        key = await keys.create_key(db, "crm", ["events:write"], now=NOW)
        event.listen(engine, "before_cursor_execute", count)
        answers = await asyncio.gather(*(keys.verify(db, key) for _ in range(50)))
        assert [a.name for a in answers] == ["crm"] * 50
        assert len(reads) == 1
        # A wrong secret shares the read too, and is still refused.
        keys._cache.pop(db, None)
        answers = await asyncio.gather(keys.verify(db, key), keys.verify(db, key[:-1] + "x"))
        assert answers[0] is not None and answers[1] is None and len(reads) == 2
    finally:
        event.remove(engine, "before_cursor_execute", count)
        await db.dispose()
