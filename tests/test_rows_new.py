"""`rows.new(Model, **values)` (store/rows.py) builds what `Model(**values)` builds, without the
ORM's attribute events: the object reads the same, is written the same by `insert_one` and by a
session's flush (a fallback step is `session.add`ed), and an attribute set afterwards counts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.store import rows
from gateway.store.models import Notification, Protocol
from tests.test_migration_0012 import AT, protocol_row


def notification(**values):
    fields = dict(protocol_id=1, channel="sms", audience="consumer", recipient="+5511987654321",
                  template="protocol_opened", template_hash="sha256:x", locale="pt-BR", body_text="Protocolo 1",
                  segments=1, status="queued", attempts=0, next_attempt_at=AT, created_at=AT,
                  duplicate_possible=False)
    return {**fields, **values}


def test_it_reads_as_the_constructor_builds_it():
    ours, theirs = rows.new(Notification, **notification()), Notification(**notification())
    for column in Notification.__table__.columns:
        assert getattr(ours, column.key) == getattr(theirs, column.key), column.key
    assert sa.inspect(ours).transient and ours.id is None and ours.subject is None


def test_an_unknown_name_is_refused_as_the_constructor_refuses_it():
    with pytest.raises(TypeError, match="bodytext: not a column of Notification"):
        rows.new(Notification, **notification(), bodytext="typo")


async def _stored(database, number):
    async with database.read() as session:
        return (await session.execute(sa.select(Notification.recipient, Notification.body_text, Notification.reason)
                                      .where(Notification.protocol_id == number))).one()


async def test_written_by_insert_one_and_by_a_flush_with_a_later_change(database):
    async with database.writer.begin() as conn:
        await conn.execute(Protocol.__table__.insert(), [protocol_row(1), protocol_row(2)])
    inserted = rows.new(Notification, **notification(protocol_id=1))
    flushed = rows.new(Notification, **notification(protocol_id=2, recipient="maria@example.com", channel="email"))
    flushed.reason = "fallback: no receipt"  # set after it was built, before a session sees it

    def write(session):  # as the service writes: in the writer's transaction (on SQLite, straight to the driver)
        rows.insert_one(session, inserted)
        session.add(flushed)

    await database.transact(write)
    assert inserted.id is not None and flushed.id is not None and inserted.id != flushed.id
    assert await _stored(database, 1) == ("+5511987654321", "Protocolo 1", None)
    assert await _stored(database, 2) == ("maria@example.com", "Protocolo 1", "fallback: no receipt")


def test_a_validated_attribute_goes_through_its_hook():
    # Protocol keeps the digest the search and anonymization look emails up by (models.py @validates).
    values = protocol_row(1, consumer_email="JOAO@example.com")
    ours = rows.new(Protocol, **values)
    assert ours.consumer_email_digest == Protocol(**values).consumer_email_digest
    assert ours.consumer_email_digest is not None and ours.consumer_email == "JOAO@example.com"
