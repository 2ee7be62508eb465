"""Migration 0006 (issue 17) upgrades a database at 0005 with rows in it, on SQLite and
PostgreSQL, and comes back down: the provider columns start empty (those sends named no
provider), the opt-out table starts empty."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import command

from gateway.store.database import Database
from gateway.store.migrate import alembic_config
from gateway.store.types import UTCDateTime
from tests.test_migration_0005 import empty_db, protocols, upgrade_to  # noqa: F401 (a fixture)

AT = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
notifications = sa.table("notifications", *(sa.column(c) for c in (
    "id", "protocol_id", "channel", "recipient", "template", "template_hash", "locale", "body_text", "status")),
    sa.column("next_attempt_at", UTCDateTime()), sa.column("created_at", UTCDateTime()))
attempts = sa.table("notification_attempts", *(sa.column(c) for c in ("id", "notification_id", "attempt", "outcome")),
                    sa.column("started_at", UTCDateTime()), sa.column("finished_at", UTCDateTime()))


async def downgrade_to(db: Database, revision: str) -> None:
    async with db.writer.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(alembic_config(c), revision))


async def test_an_upgrade_from_0005_keeps_every_row_and_names_no_provider_for_old_sends(empty_db):  # noqa: F811
    db = empty_db
    await upgrade_to(db, "0005")
    async with db.writer.begin() as conn:
        await conn.execute(protocols.insert(), [dict(
            id=1, number="2026112400000019", issued_by="gateway", status="open", subject="Cobrança",
            profile="br-sac", consumer_locale="pt-BR", consumer_timezone="America/Sao_Paulo", opened_at=AT,
            received_at=AT, updated_at=AT)])
        await conn.execute(notifications.insert(), [dict(
            id=1, protocol_id=1, channel="email", recipient="maria@example.com", template="protocol_opened",
            template_hash="sha256:x", locale="pt-BR", body_text="...", status="sent", next_attempt_at=AT,
            created_at=AT)])
        await conn.execute(attempts.insert(), [dict(id=1, notification_id=1, attempt=1, outcome="sent",
                                                    started_at=AT, finished_at=AT)])
    await upgrade_to(db, "0006")
    async with db.writer.begin() as conn:
        assert (await conn.execute(sa.text("SELECT provider, recipient FROM notifications"))).all() == [
            (None, "maria@example.com")]
        assert (await conn.execute(sa.text("SELECT provider, outcome FROM notification_attempts"))).all() == [
            (None, "sent")]
        assert (await conn.execute(sa.text("SELECT count(*) FROM email_opt_outs"))).scalar() == 0
    await downgrade_to(db, "0005")
    async with db.writer.begin() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM notifications"))).scalar() == 1
        tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    assert "email_opt_outs" not in tables
