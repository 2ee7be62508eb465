"""Anonymizing a batch is a few set-based statements whatever its size: no SQL condition grows with
the number of contacts released (a LIKE per contact made the sweep over a million protocols slow)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select, text

from gateway.protocols.anonymize import anonymize
from gateway.protocols.ratelimit import contact_key
from gateway.store import rows
from gateway.store.database import Database
from gateway.store.models import Protocol, ProviderCallback, RateLimit
from gateway.store.sweep_models import RetentionAudit

AT = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
OPENED = AT - timedelta(days=900)


def _protocol(i: int, status: str = "resolved") -> Protocol:
    return Protocol(number=f"{800000000000 + i}", issued_by="gateway", status=status, subject="s", profile="br-sac",
                    consumer_locale="pt-BR", consumer_timezone="America/Sao_Paulo",
                    consumer_email=f"c{i}@example.com", consumer_phone=f"+55119{i:08d}", opened_at=OPENED,
                    received_at=OPENED, deadline_at=OPENED, resolved_at=OPENED, legal_hold=False, updated_at=OPENED)


async def test_a_batch_of_forty_has_no_condition_per_contact(database):
    old = [_protocol(i) for i in range(40)]
    live = _protocol(99, status="open")
    live.consumer_phone = old[0].consumer_phone  # still used by a live protocol: its keys stay
    await database.transact(lambda session: rows.insert_many(session, [*old, live]))
    async with database.write() as session:
        session.add_all([RateLimit(key=contact_key("resend", p.consumer_email), window_start=AT, hits=1) for p in old])
        session.add_all([RateLimit(key=contact_key("inbound", p.consumer_phone), window_start=AT, hits=1) for p in old])
        session.add_all([ProviderCallback(notification_id=None, provider_id=f"SM{i}", status="delivered",
                                          payload={"To": old[i].consumer_phone, "MessageSid": f"SM{i}"}, received_at=AT)
                         for i in (0, 1, 2)])
        session.add(ProviderCallback(notification_id=None, provider_id="SMx", status="delivered",
                                     payload={"To": "+5511900000099"}, received_at=AT))

    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    engine = database.writer.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        async with database.write() as session:
            done, counts, held = await anonymize(session, [p.id for p in old], at=AT, actor="test",
                                                 rules={p.id: "rule" for p in old}, sqlite=database.is_sqlite)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(done) == 40 and held == 0
    assert max(s.upper().count(" LIKE ") for s in statements) <= 1

    async with database.read() as session:
        keys = set((await session.scalars(select(RateLimit.key))).all())
        callbacks = {c.provider_id: c.payload for c in (await session.scalars(select(ProviderCallback))).all()}
        audit = (await session.scalars(select(RetentionAudit).order_by(RetentionAudit.protocol_id))).all()
    assert keys == {contact_key("inbound", old[0].consumer_phone)}  # the live protocol's phone
    assert counts["rate_limits"] == 79
    # Callbacks matched to no notification: cleared where they name a released phone.
    assert callbacks == {"SM0": {"To": old[0].consumer_phone, "MessageSid": "SM0"}, "SM1": {}, "SM2": {},
                         "SMx": {"To": "+5511900000099"}}
    assert [a.protocol_id for a in audit] == [p.id for p in old]
    assert all(a.action == "anonymized" and a.at == AT and a.rule == "rule" and a.detail["contacts_released"]
               for a in audit)


async def test_a_batch_that_fails_midway_changes_nothing(database, monkeypatch):
    """Each UPDATE of the batch runs `OR FAIL` on SQLite (no statement journal): that is safe only
    because an error ends the whole transaction, rolled back, and this holds it."""
    import gateway.protocols.anonymize as anonymize_module

    batch = [_protocol(i) for i in range(3)]
    await database.transact(lambda session: rows.insert_many(session, batch))
    reached: list[str] = []

    async def broken(session, released):  # runs after the protocols', events' and messages' UPDATEs
        reached.append("rate limits")
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(anonymize_module, "_rate_limit_keys", broken)
    with pytest.raises(RuntimeError):
        async with database.write() as session:
            await anonymize(session, [p.id for p in batch], at=AT, actor="test", rules={}, sqlite=database.is_sqlite)
    assert reached == ["rate limits"]
    async with database.read() as session:
        kept = (await session.execute(select(Protocol.status, Protocol.consumer_email, Protocol.consumer_phone)
                                      .order_by(Protocol.id))).all()
        audit = (await session.scalars(select(RetentionAudit))).all()
    assert kept == [("resolved", p.consumer_email, p.consumer_phone) for p in batch]
    assert audit == []


async def test_an_update_that_fails_halfway_on_sqlite_changes_nothing(sqlite_url):
    """On SQLite a statement `OR FAIL` keeps the rows it changed before failing: the rollback of the
    whole transaction is what undoes them. A trigger makes the protocols' UPDATE fail at its second
    row. (PostgreSQL undoes a failed statement itself; the test above covers both.)"""
    database = Database(sqlite_url)
    try:
        batch = [_protocol(i) for i in range(3)]
        await database.transact(lambda session: rows.insert_many(session, batch))
        second = sorted(p.id for p in batch)[1]
        with pytest.raises(Exception, match="stopped halfway"):
            async with database.write() as session:
                # TEMP: on the writer's connection only, and undone with its transaction.
                await session.execute(text(
                    f"CREATE TEMP TRIGGER halfway BEFORE UPDATE ON protocols WHEN old.id = {second} "
                    "BEGIN SELECT RAISE(FAIL, 'stopped halfway'); END"))
                await anonymize(session, [p.id for p in batch], at=AT, actor="test", rules={}, sqlite=True)
        async with database.read() as session:
            kept = (await session.execute(select(Protocol.status, Protocol.consumer_email)
                                          .order_by(Protocol.id))).all()
        triggers = await database.transact(lambda session: session.execute(
            text("SELECT name FROM sqlite_temp_master WHERE type = 'trigger'")).all())
    finally:
        await database.dispose()
    assert kept == [("resolved", p.consumer_email) for p in batch]
    assert triggers == []
