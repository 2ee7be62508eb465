"""Migration 0005 upgrades a database at 0004 with rows in it, on SQLite and PostgreSQL.

It adds `events.key` and `api_keys.sources` (both empty for what was there: old events were
posted by an unknown key, old keys may use any source) and rewrites rate-limit keys that held a
contact as it was into the contact's SHA-256, carrying the open windows over with their hits.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import select

from gateway.api import keys
from gateway.protocols.ratelimit import contact_digest, contact_key
from gateway.store.database import Database
from gateway.store.migrate import alembic_config, migrate
from gateway.store.models import ApiKey, Event, RateLimit
from gateway.store.types import JSONDoc, UTCDateTime
from tests.conftest import PG_URL, _drop_pg, _plain, _with_database

AT = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
WINDOW = datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc)
LONG_EMAIL = "a" * 60 + "@" + "b" * 55 + "." + "c" * 50 + ".example.com"  # 179 characters: 0004's key just holds it

protocols = sa.table("protocols", *(sa.column(c) for c in (
    "id", "number", "issued_by", "status", "subject", "profile", "consumer_locale", "consumer_timezone")),
    *(sa.column(c, UTCDateTime()) for c in ("opened_at", "received_at", "updated_at")))
events = sa.table("events", *(sa.column(c) for c in ("id", "protocol_id", "source", "event_id", "type", "fingerprint")),
                  sa.column("occurred_at", UTCDateTime()), sa.column("received_at", UTCDateTime()),
                  sa.column("data", JSONDoc), sa.column("answer", JSONDoc))
api_keys = sa.table("api_keys", *(sa.column(c) for c in ("name", "key_id", "secret_hash", "scopes")),
                    sa.column("created_at", UTCDateTime()))
rate_limits = sa.table("rate_limits", sa.column("key"), sa.column("window_start", UTCDateTime()), sa.column("hits"))


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database with no schema at all: the migrations build it from nothing."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
        yield db
        await db.dispose()
        return
    request.getfixturevalue("pg_template")  # skips (or fails in CI) without PostgreSQL
    assert PG_URL
    name = f"gw_migration_{os.getpid()}"
    await _drop_pg(name)  # a run killed earlier may have left it
    conn = await asyncpg.connect(_plain(PG_URL))
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    db = Database(_with_database(PG_URL, name))
    yield db
    await db.dispose()
    await _drop_pg(name)


async def upgrade_to(db: Database, revision: str) -> None:
    async with db.writer.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(alembic_config(c), revision))


async def test_an_upgrade_from_0004_keeps_every_row_and_hashes_contacts_in_rate_limit_keys(empty_db):
    db = empty_db
    await upgrade_to(db, "0004")
    async with db.writer.begin() as conn:
        await conn.execute(protocols.insert(), [dict(
            id=1, number="2026112400000019", issued_by="gateway", status="open", subject="Cobrança",
            profile="br-sac", consumer_locale="pt-BR", consumer_timezone="America/Sao_Paulo", opened_at=AT,
            received_at=AT, updated_at=AT)])
        await conn.execute(events.insert(), [dict(
            id=1, protocol_id=1, source="urn:acme:crm", event_id="e1", type="protocol.opened", fingerprint="sha256:x",
            occurred_at=AT, received_at=AT, data={"subject": "Cobrança"}, answer={})])
        await conn.execute(api_keys.insert(), [dict(name="crm", key_id="0123456789abcdef", secret_hash="0" * 64,
                                                    scopes="events:write", created_at=AT)])
        await conn.execute(rate_limits.insert(), [
            dict(key="resend:contact:Maria@example.com", window_start=WINDOW, hits=2),
            dict(key="resend:contact:maria@example.com", window_start=WINDOW, hits=3),  # the same mailbox
            dict(key=f"resend:contact:{LONG_EMAIL}", window_start=WINDOW, hits=1),
            dict(key="inbound:+5511987654321", window_start=WINDOW, hits=4),
            dict(key="resend:protocol:1", window_start=WINDOW, hits=5),                  # names no contact
        ])

    before, _after = await migrate(db)  # to the head, whichever later revision that is
    assert before == "0004"

    async with db.read() as session:
        event = await session.get(Event, 1)
        assert (event.event_id, event.data, event.key_name) == ("e1", {"subject": "Cobrança"}, None)
        key = await session.scalar(select(ApiKey).where(ApiKey.name == "crm"))
        assert (key.scopes, key.sources) == ("events:write", None)
        limits = {r.key: r.hits for r in (await session.scalars(select(RateLimit))).all()}
    assert limits == {contact_key("resend", "maria@example.com"): 5, contact_key("resend", LONG_EMAIL): 1,
                      contact_key("inbound", "+5511987654321"): 4, "resend:protocol:1": 5}
    assert all(len(k) < 100 for k in limits)
    assert [k.name for k in await keys.list_keys(db)] == ["crm"]
    assert (await keys.list_keys(db))[0].sources is None


def test_the_migration_hashes_contacts_as_the_code_does():
    """The migration keeps a copy of the digest (a migration imports no business rule)."""
    path = Path(__file__).resolve().parent.parent / "gateway/store/migrations/versions/0005_keys_sources_event_key.py"
    namespace: dict = {}
    exec(compile(path.read_text("utf-8"), str(path), "exec"), namespace)  # noqa: S102 (our own file)
    for contact in ("maria@example.com", "Maria@Example.COM", "+5511987654321", "jösé@müller.example"):
        assert namespace["_digest"](contact) == contact_digest(contact)
