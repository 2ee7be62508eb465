"""Migration 0014 (the compliance report's covering indexes) upgrades a database at 0013 with rows
in it, on SQLite and PostgreSQL, and comes back down."""

from __future__ import annotations

import sqlalchemy as sa

from tests.test_migration_0005 import empty_db, protocols, upgrade_to  # noqa: F401 (a fixture)
from tests.test_migration_0006 import downgrade_to
from tests.test_migration_0012 import indexes, protocol_row

COUNTED = ("status", "deadline_at", "resolved_at")


async def test_an_upgrade_from_0013_widens_the_report_indexes_keeps_every_row_and_comes_back_down(empty_db):  # noqa: F811
    db = empty_db
    await upgrade_to(db, "0013")
    async with db.writer.begin() as conn:
        await conn.execute(protocols.insert(), [protocol_row(i, category=category)
                                                for i, category in ((1, "billing"), (2, None))])
        if db.is_sqlite:  # planner statistics, as ANALYZE leaves them: the new indexes must get theirs
            await conn.execute(sa.text("ANALYZE"))
    await upgrade_to(db, "0014")
    async with db.writer.begin() as conn:
        found = (await conn.run_sync(indexes))["protocols"]
        assert found["ix_protocols_report"] == ("opened_at", "id", "category", "profile", "channel", *COUNTED)
        assert found["ix_protocols_category_report"] == ("category", "opened_at", "id", "profile", "channel", *COUNTED)
        assert "ix_protocols_opened" not in found and "ix_protocols_category_opened" not in found
        assert (await conn.execute(sa.text("SELECT count(*) FROM protocols"))).scalar() == 2
        if db.is_sqlite:
            analyzed = (await conn.execute(sa.text("SELECT idx FROM sqlite_stat1"))).scalars().all()
            assert {"ix_protocols_report", "ix_protocols_category_report"} <= set(analyzed)
    await downgrade_to(db, "0013")
    async with db.writer.begin() as conn:
        found = (await conn.run_sync(indexes))["protocols"]
    assert found["ix_protocols_opened"] == ("opened_at", "id")
    assert found["ix_protocols_category_opened"] == ("category", "opened_at", "id")
    assert "ix_protocols_report" not in found and "ix_protocols_category_report" not in found
