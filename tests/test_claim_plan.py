"""The dispatcher's claim uses the partial index of due rows on SQLite, not a scan of the table.

With the statuses as bound parameters SQLite cannot prove the query implies the index's
condition and scans and sorts every notification while holding the writer: 0.5 s a claim
at two million rows (found by `python -m bench.memory`). The claim on SQLite's writer goes
straight to the driver (delivery/outbox_sqlite.py); its statements are read as SQLite runs them.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from gateway.app import prepare
from gateway.delivery import outbox
from gateway.store import sqlite_driver

NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_the_claim_reads_the_due_index(runtime):
    await prepare(runtime)
    statements: list[str] = []

    def claim(session):
        raw = sqlite_driver.connection(session)
        raw.set_trace_callback(statements.append)  # the statements as SQLite runs them, values inlined
        try:
            return outbox.claim(session, now=NOW, limit=8, lease=60)
        finally:
            raw.set_trace_callback(None)

    await runtime.db.transact(claim)
    (due,) = [s for s in statements if "ORDER BY next_attempt_at" in s]
    with sqlite3.connect(runtime.db.url.split(":///", 1)[1]) as raw:
        plan = " | ".join(row[-1] for row in raw.execute("EXPLAIN QUERY PLAN " + due))
    assert "ix_notifications_due" in plan, plan
    assert "SCAN notifications" not in plan and "TEMP B-TREE" not in plan, plan
