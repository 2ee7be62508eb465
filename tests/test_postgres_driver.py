"""On PostgreSQL an event's own statements go straight to the asyncpg adapter, store exactly what
SQLAlchemy would, and fail as SQLAlchemy would (store/postgres_driver.py)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.api.cloudevents import to_incoming
from gateway.app import prepare
from gateway.store import postgres_driver, rows
from gateway.store.models import Event, Notification, Protocol
from tests.helpers import handle_event, opened_event, statements_through_the_core
from tests.test_sqlite_driver import NOW, _protocol

ON_POSTGRES = pytest.mark.parametrize("engine_name", ["postgresql"])


@ON_POSTGRES
async def test_a_row_written_through_the_driver_is_what_sqlalchemy_writes(runtime):
    await prepare(runtime)

    def write(session):
        fast, core = _protocol("100000000001"), _protocol("100000000002")
        rows.insert_one(session, fast)  # PostgreSQL: the adapter's cursor
        core.id = session.execute(rows._insert(Protocol, False), rows._values(core)).scalar_one()  # Core
        return fast.id, core.id

    fast_id, core_id = await runtime.db.transact(write)

    def stored(session):
        def one(row_id):
            found = session.execute(text("SELECT * FROM protocols WHERE id = :id"), {"id": row_id}).mappings().one()
            return {k: v for k, v in found.items() if k not in ("id", "number")}

        def typed(row_id):  # jsonb holds a document, not a JSON string: what the search's operators read
            return session.execute(text("SELECT jsonb_typeof(metadata), metadata -> 'crm' ->> 'id' FROM protocols "
                                        "WHERE id = :id"), {"id": row_id}).one()

        return one(fast_id), one(core_id), typed(fast_id), typed(core_id), session.get(Protocol, fast_id)

    fast, core, fast_types, core_types, back = await runtime.db.query(stored)
    assert fast == core and fast_types == core_types == ("object", "7")
    assert back.opened_at == NOW and back.extra == {"crm": {"id": 7, "ok": True}} and back.legal_hold is True
    assert back.notify == ""  # a scalar default, written by the INSERT as the Core writes it


@ON_POSTGRES
async def test_an_events_own_statements_bypass_sqlalchemys_execution_on_postgresql(runtime):
    """The idempotency check, the number, the protocol, the event, its notifications and the answer
    go to the adapter: nothing through SQLAlchemy's execution."""
    await prepare(runtime)
    with statements_through_the_core(runtime.db.writer.sync_engine) as executed:
        outcome = await runtime.service.handle(to_incoming(opened_event("e-1")), received_at=NOW)
        repeat = await runtime.service.handle(to_incoming(opened_event("e-1")), received_at=NOW)
    assert len(outcome.body["notifications"]) == 2
    assert repeat.duplicate and repeat.body["protocol"] == outcome.body["protocol"]
    assert repeat.body["notifications"] == outcome.body["notifications"]  # the answer, read back from its JSONB
    assert executed == [], executed
    with statements_through_the_core(runtime.db.writer.sync_engine) as executed:
        alone = await runtime.service.handle(to_incoming(opened_event("e-2", notify=["email"])), received_at=NOW)
    assert len(alone.body["notifications"]) == 1 and executed == [], executed

    async with runtime.db.read() as session:
        stored = (await session.scalars(select(Notification).order_by(Notification.id))).all()
        answer = await session.scalar(select(Event.answer).where(Event.event_id == "e-1"))
    assert [n.id for n in stored] == [n["id"] for n in outcome.body["notifications"] + alone.body["notifications"]]
    assert all(n.status == "queued" and n.created_at == NOW for n in stored)
    assert answer == {k: v for k, v in outcome.body.items() if k != "duplicate"}


@ON_POSTGRES
async def test_a_failing_statement_raises_sqlalchemys_error_without_the_personal_data(runtime):
    """What the repeat handling reads (IntegrityError and its constraint) and what logs show."""
    await prepare(runtime)
    taken = _protocol("100000000009")
    await runtime.db.transact(lambda session: rows.insert_one(session, taken))
    again = _protocol("100000000009")
    again.consumer_email = "ana.secreta@example.com"
    with pytest.raises(IntegrityError) as caught:
        await runtime.db.transact(lambda session: rows.insert_one(session, again))
    assert "number" in str(caught.value.orig)
    assert "ana.secreta" not in str(caught.value)


@pytest.mark.parametrize("engine_name", ["sqlite"])
async def test_sqlite_has_no_asyncpg_adapter(runtime):
    """On SQLite the writer has its own driver path (store/sqlite_driver.py)."""
    await prepare(runtime)
    assert await runtime.db.transact(lambda session: postgres_driver.connection(session)) is None


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
async def test_json_none_and_an_integer_boolean_are_written_as_the_core_writes_them(runtime):
    """SQLAlchemy's JSON type writes None as the JSON `null` (not SQL NULL) and its Boolean takes 1:
    both drivers do the same, so that what a row holds does not depend on the path that wrote it."""
    await prepare(runtime)

    def write(session):
        fast, core = _protocol("100000000011"), _protocol("100000000012")
        for protocol in (fast, core):
            protocol.extra, protocol.legal_hold = None, 1
        rows.insert_one(session, fast)  # the driver
        core.id = session.execute(rows._insert(Protocol, False), rows._values(core)).scalar_one()
        return fast.id, core.id

    ids = await runtime.db.transact(write)

    def stored(session):
        return [session.execute(text("SELECT metadata IS NULL, legal_hold FROM protocols WHERE id = :id"),
                                {"id": i}).one() for i in ids]

    fast, core = await runtime.db.query(stored)
    assert tuple(fast) == tuple(core) == (False, True)


def _notification(protocol_id: int, n: int, **values) -> Notification:
    # Each row its own values (its recipient, a WhatsApp document or none), so that a row matched
    # with another's id would show; the columns left to their defaults too.
    return rows.new(Notification, protocol_id=protocol_id, channel="whatsapp" if n % 2 else "email",
                    recipient=f"r{n}@example.com", template="t", template_hash="h", locale="pt-BR",
                    subject=f"s{n}", body_text=f"b{n}", status="queued", next_attempt_at=NOW, created_at=NOW,
                    whatsapp_content={"n": n} if n % 2 else None, **values)


@ON_POSTGRES
async def test_several_rows_are_one_statement_their_ids_in_order_and_stored_as_the_core_stores_them(runtime):
    await prepare(runtime)
    protocol = _protocol("100000000021")
    await runtime.db.transact(lambda session: rows.insert_one(session, protocol))

    def write(session, first):
        made = [_notification(protocol.id, first + n) for n in range(5)]
        rows.insert_many(session, made)
        core = [_notification(protocol.id, first + n) for n in range(5)]
        core_ids = session.execute(rows._insert(Notification, True), [rows._values(n) for n in core]).scalars().all()
        return [n.id for n in made], core_ids

    with statements_through_the_core(runtime.db.writer.sync_engine) as executed:
        three = [_notification(protocol.id, n) for n in range(3)]
        await runtime.db.transact(lambda session: rows.insert_many(session, three))
    assert executed == [], executed  # one statement to the adapter

    # Several writers at once draw from the one sequence: each statement's ids still follow its rows.
    written = await asyncio.gather(*(runtime.db.transact(lambda s, first=first: write(s, first))
                                     for first in range(0, 400, 10)))

    def stored(session):
        found = session.execute(text("SELECT * FROM notifications ORDER BY id")).mappings().all()
        return {row["id"]: {k: v for k, v in row.items() if k != "id"} for row in found}

    by_id = await runtime.db.query(stored)
    for first, (fast_ids, core_ids) in zip(range(0, 400, 10), written):
        assert fast_ids == sorted(fast_ids)
        assert [by_id[i]["recipient"] for i in fast_ids] == [f"r{first + n}@example.com" for n in range(5)]
        assert [by_id[i] for i in fast_ids] == [by_id[i] for i in core_ids]
        assert by_id[fast_ids[1]]["whatsapp_content"] == {"n": first + 1}


@ON_POSTGRES
async def test_a_failing_multi_row_insert_raises_sqlalchemys_error(runtime):
    await prepare(runtime)
    made = [_notification(999_999, n) for n in range(3)]  # no such protocol
    with pytest.raises(IntegrityError) as caught:
        await runtime.db.transact(lambda session: rows.insert_many(session, made))
    assert "protocol" in str(caught.value.orig) and "r1@example.com" not in str(caught.value)


@ON_POSTGRES
async def test_more_rows_than_one_statement_takes_go_in_several_their_ids_in_order(runtime, monkeypatch):
    """PostgreSQL's protocol counts a statement's parameters in 16 bits: 2,500 notifications (a
    reminder sweep's batch) go as three statements of at most a thousand rows."""
    await prepare(runtime)
    protocol = _protocol("100000000031")
    await runtime.db.transact(lambda session: rows.insert_one(session, protocol))
    made = [_notification(protocol.id, n, attempts=0) for n in range(0, 5000, 2)]  # one shape: e-mails
    sent = _trips(monkeypatch)
    await runtime.db.transact(lambda session: rows.insert_many(session, made))
    assert sent == ["INSERT INTO"] * 3, sent
    ids = [n.id for n in made]
    stored = await runtime.db.query(lambda session: dict(session.execute(
        text("SELECT id, recipient FROM notifications")).all()))
    assert ids == sorted(ids) and [stored[i] for i in ids] == [f"r{n}@example.com" for n in range(0, 5000, 2)]


@ON_POSTGRES
async def test_a_value_too_long_is_refused_not_cut_short(runtime):
    """A placeholder in a VALUES list is cast to its column's type, but a string's without its length:
    a cast to VARCHAR(320) would cut a longer recipient silently, where one row's INSERT refuses it."""
    await prepare(runtime)
    protocol = _protocol("100000000041")
    await runtime.db.transact(lambda session: rows.insert_one(session, protocol))
    long = "r" * 400 + "@example.com"

    def several(session):
        made = [_notification(protocol.id, 0), _notification(protocol.id, 2)]
        made[1].recipient = long
        rows.insert_many(session, made)

    def with_its_event(session):
        note = _notification(protocol.id, 0)
        note.recipient = long
        event = rows.new(Event, protocol_id=protocol.id, source="s", event_id="long", type="protocol.updated",
                         occurred_at=NOW, received_at=NOW, data={}, fingerprint="f", key_name="k",
                         answer={"notifications": [{"id": None}]})
        assert rows.insert_event(session, event, [note])

    for write in (several, with_its_event):
        with pytest.raises(DBAPIError) as caught:
            await runtime.db.transact(write)
        assert "too long" in str(caught.value.orig) and long not in str(caught.value)
    assert await runtime.db.query(lambda session: session.scalar(text("SELECT count(*) FROM notifications"))) == 0


def test_question_marks_become_numbered_placeholders():
    assert postgres_driver._numbered("UPDATE events SET answer = ? WHERE id = ?") == \
        "UPDATE events SET answer = $1 WHERE id = $2"
    assert postgres_driver._numbered("SELECT nextval('protocol_number_seq')") == "SELECT nextval('protocol_number_seq')"
    with pytest.raises(ValueError, match="string literal"):  # a '?' there would be taken for a placeholder
        postgres_driver._numbered("SELECT ? WHERE note = 'why?'")


def _trips(monkeypatch) -> list[str]:
    """The first words of each statement sent to the adapter: a round trip each."""
    sent: list[str] = []
    run = postgres_driver.PostgresDriver._run

    def counted(driver, sql, params):
        sent.append(" ".join(sql.split()[:2]).upper())
        return run(driver, sql, params)

    monkeypatch.setattr(postgres_driver.PostgresDriver, "_run", counted)
    return sent


@ON_POSTGRES
async def test_an_event_its_notifications_and_its_answer_are_one_statement(runtime, monkeypatch):
    """The same-event check, the number, the protocol, then one statement for the event, its two
    notifications (they name it) and its answer (it names them), and the NOTIFY: five round trips."""
    await prepare(runtime)
    sent = _trips(monkeypatch)
    with statements_through_the_core(runtime.db.writer.sync_engine) as executed:
        outcome = await runtime.service.handle(to_incoming(opened_event(
            "e-one", notify=["email", "sms"])), received_at=NOW)
    assert executed == [] and sent == ["SELECT FINGERPRINT,", "SELECT NEXTVAL('PROTOCOL_NUMBER_SEQ')",
                                       "INSERT INTO", "WITH EVENT_ID", "SELECT PG_NOTIFY('GATEWAY_OUTBOX',"], sent

    def stored(session):
        event = session.execute(select(Event.id, Event.answer).where(Event.event_id == "e-one")).one()
        notes = session.execute(select(Notification.id, Notification.channel, Notification.event_id,
                                       Notification.protocol_id).order_by(Notification.id)).all()
        return event, notes

    (event_id, answer), notes = await runtime.db.query(stored)
    assert answer == {k: v for k, v in outcome.body.items() if k != "duplicate"}
    assert [(n["id"], n["channel"]) for n in answer["notifications"]] == [(n.id, n.channel) for n in notes]
    assert [n.channel for n in notes] == ["email", "sms"]
    assert all(n.event_id == event_id for n in notes) and len({n.protocol_id for n in notes}) == 1

    repeat = await runtime.service.handle(to_incoming(opened_event(
        "e-one", notify=["email", "sms"])), received_at=NOW)
    assert repeat.duplicate and repeat.body["notifications"] == outcome.body["notifications"]


@ON_POSTGRES
async def test_an_event_without_notifications_is_one_insert_with_its_answer(runtime, monkeypatch):
    await prepare(runtime)
    opened = await handle_event(runtime, "e-open", "protocol.opened", received_at=NOW, subject="Fatura",
                                channel="phone", notify=[], consumer={"name": "Ana"})
    sent = _trips(monkeypatch)
    updated = await handle_event(runtime, "e-upd", "protocol.updated", received_at=NOW,
                                 number=opened["protocol"]["number"], message="Estamos analisando.")
    assert updated["notifications"] == [] and "UPDATE EVENTS" not in sent and sent.count("INSERT INTO") == 1, sent
    assert not any("PG_NOTIFY" in trip for trip in sent), sent  # nothing queued: no dispatcher to wake
    answer = await runtime.db.query(
        lambda session: session.scalar(select(Event.answer).where(Event.event_id == "e-upd")))
    assert answer == {k: v for k, v in updated.items() if k != "duplicate"}


@ON_POSTGRES
async def test_an_event_with_more_notifications_than_one_statement_takes_is_written_in_steps(runtime, monkeypatch):
    await prepare(runtime)
    monkeypatch.setattr(postgres_driver, "_ROWS_AT_MOST", 1)  # as 2,000 notifications would be against 32,767
    sent = _trips(monkeypatch)
    outcome = await runtime.service.handle(to_incoming(opened_event("e-steps", notify=["email", "sms"])),
                                           received_at=NOW)
    assert "WITH EVENT_ID" not in sent and "UPDATE EVENTS" in sent, sent  # the event, each notification, the answer
    notes = await runtime.db.query(lambda session: session.execute(
        select(Notification.id, Notification.channel).order_by(Notification.id)).all())
    assert [(n["id"], n["channel"]) for n in outcome.body["notifications"]] == [tuple(n) for n in notes]


@ON_POSTGRES
async def test_notifications_of_several_shapes_share_the_statement_with_what_they_leave_out_null(runtime, monkeypatch):
    """A WhatsApp notification holds its approved template's content and an email none: still one
    statement, the email's column SQL NULL as when the Core leaves it out (not the JSON `null`)."""
    await prepare(runtime)
    sent = _trips(monkeypatch)
    outcome = await runtime.service.handle(to_incoming(opened_event(
        "e-wa", notify=["email", "whatsapp"], consumer={"name": "Maria", "email": "maria@example.com",
                                                        "whatsapp": "+5511987654321"})), received_at=NOW)
    assert "WITH EVENT_ID" in sent and "UPDATE EVENTS" not in sent, sent

    def stored(session):
        return session.execute(text("SELECT id, channel, whatsapp_content IS NULL, whatsapp_content "
                                    "FROM notifications ORDER BY id")).all()

    (email_id, email, email_null, _), (wa_id, wa, wa_null, content) = await runtime.db.query(stored)
    assert [(n["id"], n["channel"]) for n in outcome.body["notifications"]] == [(email_id, email), (wa_id, wa)]
    assert (email, email_null, wa, wa_null) == ("email", True, "whatsapp", False) and isinstance(content, dict)


def test_rows_are_made_one_shape_only_where_a_column_left_out_would_be_null():
    table = Notification.__table__
    with_content = {"channel": "whatsapp", "whatsapp_content": {"n": 1}, "recipient": "a"}
    without = {"channel": "email", "recipient": "b"}
    made = postgres_driver._one_shape(table, [with_content, without])
    assert [list(row) for row in made] == [list(made[0])] * 2
    assert made[1]["whatsapp_content"] is postgres_driver._LEFT_OUT
    assert postgres_driver._json(made[1]["whatsapp_content"]) is None and postgres_driver._json(None) == "null"
    # `attempts` has a default (0): left out it is 0, not NULL, so such rows cannot share a shape.
    assert postgres_driver._one_shape(table, [{**without, "attempts": 2}, without]) is None
