"""The sweeps and the search page through protocols in (column, id) order with keyset conditions
(`gateway/store/keyset.py`, `after`): each page must be a range of the column's index read
in order, not every row left in the range sorted again, and together the pages must give every
row once, ties on the column included."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from gateway.protocols.search import Filters, statement
from gateway.store.models import Protocol
from gateway.store.keyset import after
from tests.test_migration_0012 import AT, protocol_row

ROWS = 300
# Several protocols share each retention_until, so a page boundary falls inside a tie.
UNTIL = [AT - timedelta(days=400) + timedelta(hours=i // 3) for i in range(ROWS)]


async def _fill(database) -> None:
    table = Protocol.__table__
    async with database.writer.begin() as conn:
        await conn.execute(table.insert(), [
            protocol_row(i + 1, status="resolved", resolved_at=u - timedelta(days=730), retention_until=u,
                         legal_hold=False, notify="email")
            for i, u in enumerate(UNTIL)])
        if database.is_sqlite:  # planner statistics, as a database in use has them
            await conn.execute(sa.text("ANALYZE"))


def _page(cursor):
    return (sa.select(Protocol.id, Protocol.retention_until)
            .where(Protocol.status == "resolved", Protocol.retention_until <= AT,
                   after((Protocol.retention_until, Protocol.id), cursor))
            .order_by(Protocol.retention_until, Protocol.id).limit(50))


async def test_keyset_pages_give_every_row_once_in_order(database):
    await _fill(database)
    seen, cursor = [], None
    async with database.read() as session:
        while True:
            rows = (await session.execute(_page(cursor))).all()
            if not rows:
                break
            seen += [r.id for r in rows]
            cursor = (rows[-1].retention_until, rows[-1].id)
    assert seen == list(range(1, ROWS + 1))


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_a_page_after_a_cursor_reads_the_index_in_order(database):
    """With the cursor as bound parameters, `column > v OR (column = v AND id > i)` made SQLite
    plan a MULTI-INDEX OR and sort what was left of the range for every page: 140 ms a page
    over a million protocols, the anonymize sweep quadratic in its length."""
    await _fill(database)
    async with database.read() as session:
        stmt = _page((UNTIL[100], 101))
        compiled = stmt.compile(session.bind)
        raw = await session.connection()
        plan = " | ".join(r[-1] for r in (await raw.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled), tuple(compiled.params[k] for k in compiled.positiontup))).all())
    assert "ix_protocols_retention_until" in plan, plan
    assert "TEMP B-TREE" not in plan and "MULTI-INDEX OR" not in plan, plan


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_a_search_page_after_a_cursor_reads_the_index_in_order(database):
    """The search (API, console, CLI) pages newest first: the same condition, descending. The
    OR form scanned the whole report index for every page after the first (300 ms over a
    million protocols)."""
    await _fill(database)
    stmt = statement(Filters(after=(AT, 150)), now=AT)
    async with database.read() as session:
        compiled = stmt.compile(session.bind)
        raw = await session.connection()
        plan = " | ".join(r[-1] for r in (await raw.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled), tuple(compiled.params[k] for k in compiled.positiontup))).all())
    assert "SEARCH protocols" in plan and "(opened_at<?)" in plan, plan
    assert "TEMP B-TREE" not in plan and "SCAN" not in plan, plan
