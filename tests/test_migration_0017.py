"""Migration 0017 (the deadline and the last event indexed over the open protocols only) upgrades a
database at 0016 with rows and planner statistics in it, on SQLite and PostgreSQL, and comes back
down; afterwards the deadline reminders' walk, as the sweep writes it, reads the open protocols'
index on a store where most protocols are resolved, and sorts nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from tests.test_migration_0005 import empty_db, upgrade_to  # noqa: F401 (a fixture)
from tests.test_migration_0006 import downgrade_to
from tests.test_migration_0012 import AT, protocol_row
from tests.test_migration_0015 import query_plan, with_contacts

DROPPED = {"ix_protocols_deadline_at": ("deadline_at",), "ix_protocols_last_event_at": ("last_event_at",)}
KEPT = {"ix_protocols_open_deadline": ("deadline_at", "id"), "ix_protocols_open_last_event": ("last_event_at", "id")}
dated = sa.table("protocols", *(sa.column(c.name, c.type) for c in with_contacts.c),
                 sa.column("deadline_at"), sa.column("last_event_at"), sa.column("resolved_at"))
# The walk of gateway/sweeps/reminders.py (due_protocols), as SQLite sees it at 0017: the statuses
# written out, the mark's subquery left out (it changes nothing of the protocols' side).
REMINDERS = ("SELECT id, number, deadline_at FROM protocols WHERE status IN ('open', 'reopened') "
             "AND deadline_at <= :hi AND deadline_at > :lo ORDER BY deadline_at, id LIMIT 500")


def deadline_indexes(conn: Any) -> dict[str, tuple[str, ...]]:
    return {i["name"]: tuple(i["column_names"]) for i in sa.inspect(conn).get_indexes("protocols")
            if i["name"] in (*DROPPED, *KEPT)}


async def test_an_upgrade_from_0016_drops_the_whole_column_indexes_and_comes_back_down(empty_db):  # noqa: F811
    db = empty_db
    await upgrade_to(db, "0016")
    async with db.writer.begin() as conn:
        # Years of records: nine in ten resolved, the open ones due over the next days.
        await conn.execute(dated.insert(), [
            protocol_row(i, status="open" if i % 10 == 0 else "resolved", deadline_at=AT + timedelta(hours=i),
                         last_event_at=AT - timedelta(days=i), resolved_at=None if i % 10 == 0 else AT)
            for i in range(1, 301)])
        assert await conn.run_sync(deadline_indexes) == {**DROPPED, **KEPT}
        if db.is_sqlite:
            await conn.execute(sa.text("ANALYZE"))
    await upgrade_to(db, "0017")
    async with db.writer.begin() as conn:
        assert await conn.run_sync(deadline_indexes) == KEPT
        assert (await conn.execute(sa.text(
            "SELECT count(*), count(deadline_at), count(last_event_at) FROM protocols"))).one() == (300, 300, 300)
        if db.is_sqlite:
            month = {"lo": AT.isoformat(" "), "hi": (AT + timedelta(days=30)).isoformat(" ")}
            plan = await query_plan(conn, REMINDERS, month)
            assert "ix_protocols_open_deadline" in plan and "TEMP B-TREE" not in plan, plan
            # DROP INDEX took the dropped indexes' statistics with it: none is left to mislead the planner.
            stats = (await conn.execute(sa.text("SELECT idx FROM sqlite_stat1 WHERE tbl = 'protocols'"))
                     ).scalars().all()
            assert not set(stats) & set(DROPPED) and "ix_protocols_open_deadline" in stats, stats
    await downgrade_to(db, "0016")
    async with db.writer.begin() as conn:
        assert await conn.run_sync(deadline_indexes) == {**DROPPED, **KEPT}
