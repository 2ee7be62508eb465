"""Migration 0016 (anonymization asks for an email by its digest: the raw address's index goes, the
digest's covers only the protocols with an email) upgrades a database at 0015 with rows and planner
statistics in it, on SQLite and PostgreSQL, and comes back down; afterwards the "is this contact
still used" query reads indexes, not the table, on a store where most protocols have no email."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from gateway.store.models import email_digest
from tests.test_migration_0005 import empty_db, upgrade_to  # noqa: F401 (a fixture)
from tests.test_migration_0006 import downgrade_to
from tests.test_migration_0012 import protocol_row
from tests.test_migration_0015 import query_plan, with_contacts

digested = sa.table("protocols", *(sa.column(c.name, c.type) for c in with_contacts.c),
                    sa.column("consumer_email_digest"))
# The query anonymization runs (gateway/protocols/anonymize.py, _released_contacts), as SQLite sees it.
STILL_USED = ("SELECT consumer_email, consumer_phone, consumer_whatsapp FROM protocols WHERE "
              "(consumer_phone IN (SELECT value FROM json_each(:phones)) "
              "OR consumer_whatsapp IN (SELECT value FROM json_each(:phones)) "
              "OR consumer_email_digest IN (SELECT value FROM json_each(:digests))) "
              "AND status != 'anonymized' AND id NOT IN (SELECT value FROM json_each(:ids))")
CONTACTS = {"phones": '["+5511987654321"]', "digests": f'["{email_digest("ana@example.com")}"]', "ids": "[1]"}


def email_indexes(conn: Any) -> dict[str, str | None]:
    """The protocols' indexes on the email or its digest, with their condition (None: every row)."""
    found = {}
    for index in sa.inspect(conn).get_indexes("protocols"):
        if index["name"] in ("ix_protocols_consumer_email", "ix_protocols_consumer_email_digest"):
            where = index.get("dialect_options", {}).get(f"{conn.dialect.name}_where")
            found[index["name"]] = str(where) if where is not None else None
    return found


async def test_an_upgrade_from_0015_indexes_the_digest_alone_and_comes_back_down(empty_db):  # noqa: F811
    db = empty_db
    await upgrade_to(db, "0015")
    async with db.writer.begin() as conn:
        # An installation that mostly sends SMS: one protocol in ten has an email.
        emails = {i: f"c{i}@example.com" if i % 10 == 0 else None for i in range(1, 201)}
        await conn.execute(digested.insert(), [  # every row names every column: the first sets them
            protocol_row(i, consumer_phone=f"+55119876{i:05d}", consumer_email=email,
                         consumer_email_digest=email_digest(email))
            for i, email in emails.items()])
        assert await conn.run_sync(email_indexes) == {"ix_protocols_consumer_email": None,
                                                      "ix_protocols_consumer_email_digest": None}
        if db.is_sqlite:  # statistics as ANALYZE leaves them: nine protocols in ten with no email
            await conn.execute(sa.text("ANALYZE"))
            plan = await query_plan(conn, STILL_USED, CONTACTS)
            assert "SCAN protocols" in plan, plan  # what the whole-column index made of it
    await upgrade_to(db, "0016")
    async with db.writer.begin() as conn:
        found = await conn.run_sync(email_indexes)
        assert list(found) == ["ix_protocols_consumer_email_digest"], found
        assert "consumer_email_digest IS NOT NULL" in found["ix_protocols_consumer_email_digest"]
        assert (await conn.execute(sa.text(
            "SELECT count(*), count(consumer_email_digest) FROM protocols"))).one() == (200, 20)
        if db.is_sqlite:
            plan = await query_plan(conn, STILL_USED, CONTACTS)
            assert "MULTI-INDEX OR" in plan and "SCAN protocols" not in plan, plan
            assert "ix_protocols_consumer_email_digest" in plan, plan
    await downgrade_to(db, "0015")
    async with db.writer.begin() as conn:
        assert await conn.run_sync(email_indexes) == {"ix_protocols_consumer_email": None,
                                                      "ix_protocols_consumer_email_digest": None}
