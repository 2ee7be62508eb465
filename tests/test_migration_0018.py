"""Migration 0018 (a notification's provider id indexed where it is set) upgrades a database at 0017
with queued and sent messages in it, on SQLite and PostgreSQL, and comes back down; afterwards the
index holds the sent messages alone, and a receipt's lookup by provider id still reads it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.test_migration_0005 import empty_db, upgrade_to  # noqa: F401 (a fixture)
from tests.test_migration_0006 import downgrade_to
from tests.test_migration_0012 import AT, protocol_row
from tests.test_migration_0015 import query_plan, with_contacts

NAME = "ix_notifications_provider_id"
notifications = sa.table("notifications", *(sa.column(c) for c in (
    "id", "protocol_id", "channel", "audience", "recipient", "template", "template_hash", "locale", "body_text",
    "status", "priority", "attempts", "next_attempt_at", "created_at", "provider_id", "duplicate_possible")))
# The receipt's lookup when its URL names no notification (gateway/delivery/receipts.py).
BY_SID = "SELECT id FROM notifications WHERE provider_id = :sid"


def condition(conn: Any) -> tuple[bool, str | None]:
    """Whether the index exists, and its condition as the database keeps it (None: every row)."""
    if conn.dialect.name == "sqlite":
        sql = conn.execute(sa.text("SELECT sql FROM sqlite_schema WHERE name = :n"), {"n": NAME}).scalar()
    else:
        sql = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": NAME}).scalar()
    return sql is not None, (sql.split(" WHERE ", 1)[1] if sql and " WHERE " in sql else None)


async def test_an_upgrade_from_0017_indexes_the_sent_messages_alone_and_comes_back_down(empty_db):  # noqa: F811
    db = empty_db
    await upgrade_to(db, "0017")
    async with db.writer.begin() as conn:
        await conn.execute(with_contacts.insert(), [protocol_row(1)])
        await conn.execute(notifications.insert(), [dict(
            id=i, protocol_id=1, channel="sms", audience="consumer", recipient="+5511987654321",
            template="protocol_opened", template_hash="h", locale="pt-BR", body_text="Protocolo", priority=0,
            status="sent" if i % 4 == 0 else "queued", attempts=1 if i % 4 == 0 else 0, next_attempt_at=AT,
            created_at=AT, provider_id=f"SM{i:032x}" if i % 4 == 0 else None, duplicate_possible=False)
            for i in range(1, 401)])
        assert await conn.run_sync(condition) == (True, None)
        if db.is_sqlite:
            await conn.execute(sa.text("ANALYZE"))
    await upgrade_to(db, "0018")
    async with db.writer.begin() as conn:
        exists, where = await conn.run_sync(condition)
        assert exists and where is not None and "provider_id IS NOT NULL" in where, where
        counted = (await conn.execute(sa.text("SELECT count(*), count(provider_id) FROM notifications"))).one()
        assert counted == (400, 100)
        found = (await conn.execute(sa.text(BY_SID), {"sid": f"SM{8:032x}"})).scalars().all()
        assert found == [8]
        if db.is_sqlite:
            plan = await query_plan(conn, BY_SID, {"sid": f"SM{8:032x}"})
            assert NAME in plan and "SCAN notifications" not in plan, plan
            (entries,) = (await conn.execute(sa.text(
                f"SELECT stat FROM sqlite_stat1 WHERE idx = '{NAME}'"))).one()
            assert entries.split()[0] == "100", entries  # the sent ones, as its statistics say
    await downgrade_to(db, "0017")
    async with db.writer.begin() as conn:
        assert await conn.run_sync(condition) == (True, None)
