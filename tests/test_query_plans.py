"""The indexes issue 18's goals rest on (migration 0012) are the ones the queries use, on SQLite and
PostgreSQL: plans, read with EXPLAIN from the statements search and the report actually execute on
a freshly migrated database. Plans, never timings (the figures are bench/search.py's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import event

from gateway.protocols import reports, search
from gateway.store.database import Database

AT = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
ZONE = "America/Sao_Paulo"


@pytest.fixture
async def pg_no_seqscan(database: Database) -> AsyncIterator[Database]:
    """On PostgreSQL an empty table is cheapest to scan whole: the planner is asked to avoid that,
    so the plan shows which index it would take on a large one."""
    if not database.is_sqlite:
        @event.listens_for(database.reader.sync_engine, "connect")
        def _no_seqscan(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SET enable_seqscan = off")
            cursor.close()
    yield database


async def plans(db: Database, run: Callable[[Any], Awaitable[Any]]) -> list[tuple[str, str]]:
    """(statement, its plan as one string) for each statement `run(session)` executes."""
    executed: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            executed.append((statement, parameters))

    event.listen(db.reader.sync_engine, "before_cursor_execute", record)
    try:
        async with db.read() as session:
            await run(session)
    finally:
        event.remove(db.reader.sync_engine, "before_cursor_execute", record)
    out = []
    async with db.reader.connect() as conn:
        for statement, parameters in executed:
            explain = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
            rows = (await conn.exec_driver_sql(explain + statement, parameters)).all()
            out.append((statement, "\n".join(str(row[-1]) for row in rows)))
    return out


async def test_overdue_search_walks_the_open_protocols_index_without_sorting(pg_no_seqscan: Database) -> None:
    filters = search.parse_filters({"overdue": "true"}, zone=ZONE, regions=["BR"])
    [(statement, plan)] = await plans(pg_no_seqscan, lambda s: search.search(s, filters, now=AT))
    # The statuses are in the SQL itself: a bound list would hide the partial index from SQLite.
    assert "IN ('open', 'reopened')" in statement
    assert "ix_protocols_open_opened" in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan


@pytest.mark.parametrize("query", [{"status": "open"}, {"status": "resolved"}, {"status": "open", "category": "x"},
                                   {"overdue": "true", "category": "x"}, {"overdue": "true", "opened_from": "2026-11-01"}])
async def test_other_searches_on_status_still_walk_an_index_in_order(pg_no_seqscan: Database, query) -> None:
    filters = search.parse_filters(query, zone=ZONE, regions=["BR"])
    [(_statement, plan)] = await plans(pg_no_seqscan, lambda s: search.search(s, filters, now=AT))
    assert "ix_protocols_" in plan, plan
    if pg_no_seqscan.is_sqlite:
        assert "TEMP B-TREE" not in plan, plan


async def test_the_report_counts_notifications_from_the_covering_index(pg_no_seqscan: Database) -> None:
    period = reports.parse_period({"from": "2025-11-23", "to": "2026-11-22", "group_by": "channel"}, zone=ZONE, now=AT)
    executed = await plans(pg_no_seqscan, lambda s: reports.compliance(s, period, at=AT))
    [plan] = [plan for statement, plan in executed if "notifications" in statement]
    if pg_no_seqscan.is_sqlite:
        assert "USING COVERING INDEX ix_notifications_protocol_channel_status" in plan, plan
    else:
        assert "Index Only Scan using ix_notifications_protocol_channel_status" in plan, plan


@pytest.mark.parametrize("group_by", ["category", "profile", "channel"])
async def test_the_report_reads_the_protocols_of_the_period_from_an_index_alone(pg_no_seqscan: Database,
                                                                                group_by: str) -> None:
    """The protocols' counts and the notifications' join find the period's protocols and every column
    they count in one index (migration 0014): on SQLite, no protocol row is read. (The requests' join
    may start from the requests, which are few: the planner's choice.)"""
    period = reports.parse_period({"from": "2025-11-23", "to": "2026-11-22", "group_by": group_by}, zone=ZONE, now=AT)
    executed = await plans(pg_no_seqscan, lambda s: reports.compliance(s, period, at=AT))
    assert len(executed) == 3
    for statement, plan in [(st, pl) for st, pl in executed if "consumer_requests" not in st]:
        if pg_no_seqscan.is_sqlite:
            assert "USING COVERING INDEX ix_protocols_" in plan, (statement, plan)
        else:
            assert "ix_protocols_report" in plan or "ix_protocols_category_report" in plan, (statement, plan)
