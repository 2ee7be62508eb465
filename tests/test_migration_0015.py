"""Migration 0015 (indexes on nearly-always-NULL columns cover only the rows with a value) upgrades
a database at 0014 with rows and planner statistics in it, on SQLite and PostgreSQL, and comes back
down; afterwards anonymization's "is this contact still used" query reads indexes, not the table."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.test_migration_0005 import empty_db, protocols, upgrade_to  # noqa: F401 (a fixture)
from tests.test_migration_0006 import downgrade_to
from tests.test_migration_0012 import protocol_row

PARTIAL = {"ix_protocols_consumer_whatsapp": ("protocols", "consumer_whatsapp"),
           "ix_protocols_parent_id": ("protocols", "parent_id"),
           "ix_notifications_fallback_of": ("notifications", "fallback_of")}
# The query anonymization ran at 0015 (gateway/protocols/anonymize.py, _released_contacts; since 0016
# it asks for emails by their digest), as SQLite sees it: each list of values is one JSON parameter
# (gateway/store/value_lists.py).
STILL_USED = ("SELECT consumer_email, consumer_phone, consumer_whatsapp FROM protocols WHERE "
              "(consumer_email IN (SELECT value FROM json_each(:emails)) "
              "OR consumer_phone IN (SELECT value FROM json_each(:phones)) "
              "OR consumer_whatsapp IN (SELECT value FROM json_each(:phones))) AND status != 'anonymized' "
              "AND id NOT IN (SELECT value FROM json_each(:ids))")
# The protocols as 0005's test knows them, and their contacts (a column a lightweight table does not
# name is left out of its INSERT without a word).
with_contacts = sa.table("protocols", *(sa.column(c.name, c.type) for c in protocols.c),
                         sa.column("consumer_email"), sa.column("consumer_phone"))
CONTACTS = {"emails": '["ana@example.com"]', "phones": '["+5511987654321"]', "ids": "[1]"}


async def query_plan(conn: Any, sql: str, params: dict[str, str]) -> str:
    """SQLite's plan for `sql`, its steps joined with " | "."""
    rows = (await conn.execute(sa.text("EXPLAIN QUERY PLAN " + sql), params)).all()
    return " | ".join(r[-1] for r in rows)


def partial_indexes(conn: Any) -> dict[str, str | None]:
    """Each index's condition, as the database keeps it (None: the whole column)."""
    found: dict[str, str | None] = {}
    for name, (table, _) in PARTIAL.items():
        if conn.dialect.name == "sqlite":
            sql = conn.execute(sa.text("SELECT sql FROM sqlite_schema WHERE name = :n"), {"n": name}).scalar()
            found[name] = sql.split(" WHERE ", 1)[1] if sql and " WHERE " in sql else None
        else:
            sql = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": name}).scalar()
            found[name] = sql.split(" WHERE ", 1)[1] if sql and " WHERE " in sql else None
    return found


async def test_an_upgrade_from_0014_indexes_only_the_rows_with_a_value_and_comes_back_down(empty_db):  # noqa: F811
    db = empty_db
    await upgrade_to(db, "0014")
    async with db.writer.begin() as conn:
        await conn.execute(with_contacts.insert(), [
            protocol_row(i, consumer_email=f"c{i}@example.com", consumer_phone=f"+55119876{i:05d}")
            for i in range(1, 201)])
        if db.is_sqlite:  # statistics as ANALYZE leaves them: every protocol with no WhatsApp of its own
            await conn.execute(sa.text("ANALYZE"))
            plan = await query_plan(conn, STILL_USED, CONTACTS)
            assert "SCAN protocols" in plan, plan  # what the whole-column index made of it
    await upgrade_to(db, "0015")
    async with db.writer.begin() as conn:
        found = await conn.run_sync(partial_indexes)
        assert all(found[name] and f"{column} IS NOT NULL" in found[name]
                   for name, (_, column) in PARTIAL.items()), found
        assert (await conn.execute(sa.text("SELECT count(DISTINCT consumer_email) FROM protocols"))).scalar() == 200
        if db.is_sqlite:
            plan = await query_plan(conn, STILL_USED, CONTACTS)
            assert "MULTI-INDEX OR" in plan and "SCAN protocols" not in plan, plan
            assert "ix_protocols_consumer_whatsapp" in plan, plan
    await downgrade_to(db, "0014")
    async with db.writer.begin() as conn:
        assert await conn.run_sync(partial_indexes) == dict.fromkeys(PARTIAL)
