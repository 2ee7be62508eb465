"""The dispatcher's claim uses the partial index of due rows on SQLite, not a scan of the table.

With the statuses as bound parameters SQLite cannot prove the query implies the index's
condition and scans and sorts every notification while holding the writer: 0.5 s a claim
at two million rows (found by `python -m bench.memory`).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest
from sqlalchemy import event

from gateway.app import prepare
from gateway.delivery import outbox

NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_the_claim_reads_the_due_index(runtime):
    await prepare(runtime)
    seen: list[tuple[str, tuple]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("UPDATE NOTIFICATIONS SET STATUS"):
            seen.append((statement, parameters))

    engine = runtime.db._sync_writer
    event.listen(engine, "before_cursor_execute", capture)
    try:
        await runtime.db.transact(lambda session: outbox.claim(session, now=NOW, limit=8, lease=60))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    (statement, parameters), = seen
    with sqlite3.connect(runtime.db.url.split(":///", 1)[1]) as raw:
        plan = " | ".join(row[-1] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters))
    assert "ix_notifications_due" in plan, plan
    assert "SCAN notifications" not in plan and "TEMP B-TREE" not in plan, plan
