"""Item 4 of issue 19: the citations each profile writes into audit rows, and `cl`'s new name.

`cl` became `cl-sello-sernac` (Ley 19.496 art. 56 binds financial providers holding the SERNAC
seal). The old name keeps working everywhere a user may have written it (settings, events,
rows already stored) and says, once per use, what the new name is.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from alembic import command

from gateway.app import build_runtime, prepare, web_app
from gateway.config import ConfigError
from gateway.protocols.profiles import ALIASES, PROFILES, Profiles, get_profile
from gateway.store.migrate import alembic_config
from tests.helpers import FixedClock, admin_key, make_settings, opened_event
from tests.test_migration_0005 import empty_db, events, protocols, upgrade_to  # noqa: F401 (a fixture)

RECEIVED = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)


def test_the_citations_are_the_articles_that_set_each_clock():
    # Decreto 6.523/2008: art. 15 is the record and its number; the 72 hours are art. 16's.
    assert PROFILES["br-sac-2008"].history_law == "Decreto 6.523/2008 art. 16"
    assert PROFILES["br-sac-2008"].law == "Decreto 6.523/2008 art. 17"
    chile = PROFILES["cl-sello-sernac"]
    assert "cl" not in PROFILES and ALIASES == {"cl": "cl-sello-sernac"}
    assert chile.law == "Ley 19.496 art. 56 (financial providers holding the SERNAC seal)"


def test_the_old_name_finds_the_new_profile_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="gateway.protocols.profiles"):
        assert get_profile("cl") is PROFILES["cl-sello-sernac"]
    (record,) = [r for r in caplog.records if getattr(r, "action", None) == "profile_alias"]
    assert (record.profile, record.renamed_to) == ("cl", "cl-sello-sernac")
    assert "'cl-sello-sernac'" in record.getMessage()


def test_old_settings_keep_working_under_the_new_name(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="gateway.protocols.profiles"):
        settings = make_settings(tmp_path, "sqlite+aiosqlite:///x.db", gateway={"default_profile": "cl"},
                                 profiles={"cl": {"retention_years": 5}})
    assert any(getattr(r, "action", None) == "profile_alias" for r in caplog.records)
    profiles = Profiles.from_settings(settings)
    assert profiles.get("cl-sello-sernac").retention_years == 5
    assert profiles.for_opening(None, RECEIVED).name == "cl-sello-sernac"


def test_the_same_profile_under_both_names_and_unknown_defaults_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"profiles\.cl.*set twice.*keep \[profiles\.cl-sello-sernac\]"):
        make_settings(tmp_path, "sqlite+aiosqlite:///x.db",
                      profiles={"cl-sello-sernac": {"retention_years": 5}, "cl": {"retention_years": 6}})
    with pytest.raises(ConfigError, match=r"gateway\.default_profile: unknown profile 'mars'"):
        make_settings(tmp_path, "sqlite+aiosqlite:///x.db", gateway={"default_profile": "mars"})


async def test_an_event_naming_the_old_profile_opens_under_the_new_name(settings, caplog):
    runtime = build_runtime(settings, clock=FixedClock(RECEIVED))
    try:
        await prepare(runtime)
        key = await admin_key(runtime)
        async with TestClient(TestServer(web_app(runtime))) as client:
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"}
            body = opened_event(profile="cl", consumer={"email": "maria@example.com"})
            with caplog.at_level(logging.WARNING, logger="gateway.protocols.profiles"):
                response = await client.post("/v1/events", data=json.dumps(body), headers=headers)
            assert response.status == 202, await response.text()
            number = (await response.json())["protocol"]["number"]
            document = await (await client.get(f"/v1/protocols/{number}", headers=headers)).json()
    finally:
        await runtime.aclose()
    assert document["profile"] == "cl-sello-sernac"
    # Opened 2026-11-22 (a Sunday) in Santiago: 10 business days, Mon 23 Nov .. Fri 4 Dec.
    assert document["deadline_at"] == "2026-12-05T02:59:59Z"
    assert any(getattr(r, "action", None) == "profile_alias" for r in caplog.records)


async def test_rows_stored_under_the_old_name_are_renamed_by_the_migration(empty_db):
    """0008 renames the rows (the retention sweep selects by profile name); its downgrade undoes it."""
    db = empty_db
    await upgrade_to(db, "0005")
    async with db.writer.begin() as conn:
        await conn.execute(protocols.insert(), [dict(
            id=i, number=f"100000{i}", issued_by="gateway", status="open", subject="s", profile=profile,
            consumer_locale="es", consumer_timezone="America/Santiago", opened_at=RECEIVED, received_at=RECEIVED,
            updated_at=RECEIVED) for i, profile in ((1, "cl"), (2, "br-sac"))])
        # An event pointing at a protocol: a migration that copied `protocols` would fail on it.
        await conn.execute(events.insert(), [dict(
            id=1, protocol_id=1, source="urn:test", event_id="e1", type="protocol.opened", fingerprint="sha256:x",
            occurred_at=RECEIVED, received_at=RECEIVED, data={}, answer={})])
    await upgrade_to(db, "0008")
    async with db.writer.begin() as conn:
        rows = (await conn.execute(sa.select(protocols.c.number, protocols.c.profile).order_by("number"))).all()
        assert [tuple(r) for r in rows] == [("1000001", "cl-sello-sernac"), ("1000002", "br-sac")]
        await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0007"))
        rows = (await conn.execute(sa.select(protocols.c.profile).order_by("number"))).all()
        assert [r[0] for r in rows] == ["cl", "br-sac"]
        columns = await conn.run_sync(lambda c: {col["name"] for col in sa.inspect(c).get_columns("protocols")})
        assert "parent_id" not in columns and "retention_extension_years" not in columns
