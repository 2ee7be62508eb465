"""Migration 0012 (issue 18's SQLite goals) upgrades a database at 0011 with rows in it, on SQLite
and PostgreSQL, and comes back down; and a migrated database has the indexes the models declare."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from gateway.store import sweep_models  # noqa: F401 (declares indexes on protocols)
from gateway.store.models import Base
from tests.test_migration_0005 import empty_db, protocols, upgrade_to  # noqa: F401 (a fixture)
from tests.test_migration_0006 import downgrade_to, notifications

AT = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)


def protocol_row(i: int, **fields: Any) -> dict[str, Any]:
    """A protocol as a migration test inserts it (raw, below the models), numbered on AT's day."""
    return {"id": i, "number": f"{AT:%Y%m%d}{i:08d}", "issued_by": "gateway", "status": "open",
            "subject": "Cobrança", "profile": "br-sac", "consumer_locale": "pt-BR",
            "consumer_timezone": "America/Sao_Paulo", "opened_at": AT, "received_at": AT, "updated_at": AT, **fields}
NEW = {"protocols": "ix_protocols_open_opened", "notifications": "ix_notifications_protocol_channel_status"}


def indexes(conn: Any) -> dict[str, dict[str, tuple[str, ...]]]:
    inspector = sa.inspect(conn)
    return {table: {i["name"]: tuple(i["column_names"]) for i in inspector.get_indexes(table)} for table in NEW}


async def test_an_upgrade_from_0011_builds_the_indexes_keeps_every_row_and_comes_back_down(empty_db):  # noqa: F811
    db = empty_db
    await upgrade_to(db, "0011")
    async with db.writer.begin() as conn:
        await conn.execute(protocols.insert(), [protocol_row(i, status=status)
                                                for i, status in ((1, "open"), (2, "resolved"))])
        await conn.execute(notifications.insert(), [dict(
            id=i, protocol_id=i, channel="email", recipient="maria@example.com", template="protocol_opened",
            template_hash="sha256:x", locale="pt-BR", body_text="...", status="sent", next_attempt_at=AT,
            created_at=AT) for i in (1, 2)])
        if db.is_sqlite:  # planner statistics, as ANALYZE leaves them: the new indexes must get theirs
            await conn.execute(sa.text("ANALYZE"))
    await upgrade_to(db, "0012")
    async with db.writer.begin() as conn:
        found = await conn.run_sync(indexes)
        assert found["protocols"]["ix_protocols_open_opened"] == ("opened_at", "id", "deadline_at")
        assert found["notifications"]["ix_notifications_protocol_channel_status"] == ("protocol_id", "channel", "status")
        assert "ix_notifications_protocol_id" not in found["notifications"]
        assert (await conn.execute(sa.text("SELECT count(*) FROM notifications"))).scalar() == 2
        # The partial index holds the open protocol only (counted through it where the engine can say so).
        if db.is_sqlite:
            analyzed = (await conn.execute(sa.text("SELECT idx FROM sqlite_stat1"))).scalars().all()
            assert set(NEW.values()) <= set(analyzed)
            assert (await conn.execute(sa.text(
                "SELECT count(*) FROM protocols INDEXED BY ix_protocols_open_opened "
                "WHERE status IN ('open', 'reopened')"))).scalar() == 1
    await downgrade_to(db, "0011")
    async with db.writer.begin() as conn:
        found = await conn.run_sync(indexes)
    assert set(NEW.values()).isdisjoint(found["protocols"] | found["notifications"])
    assert found["notifications"]["ix_notifications_protocol_id"] == ("protocol_id",)


async def test_a_migrated_database_has_the_indexes_the_models_declare(empty_db):  # noqa: F811
    await upgrade_to(empty_db, "head")
    async with empty_db.writer.begin() as conn:
        migrated = await conn.run_sync(indexes)
    declared = {t: {i.name: tuple(c.name for c in i.columns) for i in Base.metadata.tables[t].indexes} for t in NEW}
    assert {t: {n: c for n, c in migrated[t].items() if n.startswith("ix_")} for t in NEW} == declared
