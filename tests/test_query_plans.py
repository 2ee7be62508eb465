"""The indexes issue 18's goals rest on (migration 0012) are the ones the queries use, on SQLite and
PostgreSQL: plans, read with EXPLAIN from the statements search and the report actually execute on
a freshly migrated database. Plans, never timings (the figures are bench/search.py's). Likewise the
sweeps' walks by deadline and by last event, over the open protocols' partial indexes alone since
migration 0017 dropped the whole-column ones."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event, select

from gateway.config import Settings
from gateway.protocols import reports, search
from gateway.protocols.profiles import Profiles
from gateway.store.database import Database
from gateway.store.keyset import after
from gateway.store.models import Notification, Protocol
from gateway.sweeps import digest, reminders, retention

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


def _walks_the_open_index(db: Database, statement: str, plan: str, index: str, *, ordered: bool = True) -> None:
    # The statuses are in the SQL itself (sweep_models.is_open): a bound list hides the partial index.
    assert "IN ('open', 'reopened')" in statement, statement
    assert index in plan, (statement, plan)
    if ordered and db.is_sqlite:
        assert "TEMP B-TREE" not in plan, plan


async def test_the_deadline_reminders_walk_the_open_protocols_by_deadline(pg_no_seqscan: Database) -> None:
    for lo, cursor in [(None, None), (AT, (AT, 7))]:
        query = reminders.due_protocols("deadline_reminders", "-P1D", lo, AT, cursor, 500)
        [(statement, plan)] = await plans(pg_no_seqscan, lambda s, q=query: s.execute(q))
        _walks_the_open_index(pg_no_seqscan, statement, plan, "ix_protocols_open_deadline")


async def test_the_digest_counts_and_lists_the_open_protocols_by_deadline(pg_no_seqscan: Database) -> None:
    executed = await plans(pg_no_seqscan, lambda s: digest._protocols(
        s, 20, digest.is_open(), Protocol.deadline_at >= AT, Protocol.deadline_at < AT.replace(day=23)))
    executed += await plans(pg_no_seqscan,
                            lambda s: digest._protocols(s, 20, digest.is_open(), Protocol.deadline_at < AT))
    assert len(executed) == 4  # a count and a page, twice
    for statement, plan in executed:
        if "count(" in statement:  # counted from an index of the open ones alone (PostgreSQL may take either)
            _walks_the_open_index(pg_no_seqscan, statement, plan, "ix_protocols_open_", ordered=False)
        else:
            _walks_the_open_index(pg_no_seqscan, statement, plan, "ix_protocols_open_deadline")


async def test_retention_finds_the_abandoned_protocols_by_their_last_event(pg_no_seqscan: Database) -> None:
    """Retention's "abandoned" source: open protocols silent for `abandoned_after`, walked by the
    last event in pages, as retention._stream pages every source."""
    settings = Settings()
    ctx = SimpleNamespace(settings=settings, profiles=Profiles.from_settings(settings),
                          schedule=SimpleNamespace(name="retention"))
    for lo in (None, AT.replace(month=10)):
        sources = retention._sources(ctx, lo, AT, None)  # type: ignore[arg-type]
        quiet = [query for query, column in sources if column is Protocol.last_event_at]
        assert quiet, "no profile with a retention: nothing is abandoned"
        for query in quiet:
            page = (query.where(after((Protocol.last_event_at, Protocol.id), (AT.replace(year=2025), 3)))
                    .order_by(Protocol.last_event_at, Protocol.id).limit(1000))
            [(statement, plan)] = await plans(pg_no_seqscan, lambda s, q=page: s.execute(q))
            _walks_the_open_index(pg_no_seqscan, statement, plan, "ix_protocols_open_last_event")


async def test_a_receipt_finds_its_message_by_provider_id_through_the_partial_index(pg_no_seqscan: Database) -> None:
    """The index holds the sent messages only (migration 0018); `provider_id = ?` still reads it."""
    query = select(Notification.id).where(Notification.provider_id == "SM" + "0" * 32)
    [(_statement, plan)] = await plans(pg_no_seqscan, lambda s: s.execute(query))
    assert "ix_notifications_provider_id" in plan, plan
