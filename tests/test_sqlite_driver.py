"""On SQLite an event's own statements go straight to the driver, and store exactly what SQLAlchemy would."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from gateway.api.cloudevents import to_incoming
from gateway.app import prepare
from gateway.delivery import outbox
from gateway.store import rows
from gateway.store.models import Notification, Protocol
from tests.helpers import opened_event, statements_through_the_core

NOW = datetime(2026, 11, 22, 14, 43, 7, 123456, tzinfo=timezone.utc)
ZONE = timezone(timedelta(hours=-3))


def _protocol(number: str) -> Protocol:
    # Aware datetimes in another zone, a JSON document, a boolean, a column left to its default.
    return Protocol(number=number, issued_by="gateway", status="open", subject="Cobrança — ç", profile="br-sac",
                    consumer_locale="pt-BR", consumer_timezone="America/Sao_Paulo", extra={"crm": {"id": 7, "ok": True}},
                    opened_at=NOW.astimezone(ZONE), received_at=NOW, deadline_at=NOW + timedelta(days=7),
                    legal_hold=True, updated_at=NOW)


def _notification(protocol_id: int) -> Notification:
    return Notification(protocol_id=protocol_id, channel="email", recipient="ana@example.com", template="t",
                        template_hash="h", locale="pt-BR", subject="s", body_text="b", status="queued",
                        next_attempt_at=NOW, created_at=NOW)


@pytest.mark.parametrize("engine_name", ["sqlite"])
async def test_rows_written_through_the_driver_are_byte_for_byte_what_sqlalchemy_writes(runtime):
    await prepare(runtime)

    def write(session):
        fast, core = _protocol("100000000001"), _protocol("100000000002")
        rows.insert_one(session, fast)  # SQLite: the driver
        core.id = session.execute(rows._insert(Protocol, False), rows._values(core)).scalar_one()  # Core
        fast_n = [_notification(fast.id), _notification(fast.id)]
        rows.insert_many(session, fast_n)
        core_n = session.execute(rows._insert(Notification, True),
                                 [rows._values(n) for n in [_notification(core.id)] * 2]).scalars().all()
        return fast.id, core.id, [n.id for n in fast_n], core_n

    fast_id, core_id, fast_ids, core_ids = await runtime.db.transact(write)
    assert fast_ids == sorted(fast_ids) and len(set(fast_ids)) == 2

    def stored(session):
        def one(table, row_id):
            found = session.execute(text(f"SELECT * FROM {table} WHERE id = :id"), {"id": row_id}).mappings().one()
            return {k: v for k, v in found.items() if k not in ("id", "number", "protocol_id")}

        def typed(table, row_id):  # SQLite's storage classes, which decide comparisons in SQL
            names = [c[1] for c in session.execute(text(f"PRAGMA table_info({table})")).all()]
            return session.execute(text(f"SELECT {', '.join(f'typeof({n})' for n in names)} FROM {table} "
                                        "WHERE id = :id"), {"id": row_id}).one()

        return ((one("protocols", fast_id), one("protocols", core_id)),
                (typed("protocols", fast_id), typed("protocols", core_id)),
                [one("notifications", i) for i in (*fast_ids, *core_ids)],
                session.get(Protocol, fast_id))

    (fast, core), (fast_types, core_types), notifications, back = await runtime.db.query(stored)
    assert fast == core and fast_types == core_types
    assert all(n == notifications[0] for n in notifications)
    assert notifications[0]["audience"] == "consumer" and notifications[0]["attempts"] == 0  # the defaults
    assert back.opened_at == NOW and back.extra == {"crm": {"id": 7, "ok": True}} and back.legal_hold is True
    assert back.notify == ""  # a scalar default


@pytest.mark.parametrize("engine_name", ["sqlite"])
async def test_an_events_own_statements_bypass_sqlalchemys_execution_on_sqlite(runtime):
    """The idempotency check, the number, the protocol, the event, its notifications and its answer:
    none of them goes through SQLAlchemy's execution (profiled: a third of an event's CPU)."""
    await prepare(runtime)
    # The engine the writer's transactions run on (store/database.py).
    with statements_through_the_core(runtime.db._sync_writer) as executed:
        outcome = await runtime.service.handle(to_incoming(opened_event("e-1")), received_at=NOW)
        repeat = await runtime.service.handle(to_incoming(opened_event("e-1")), received_at=NOW)
    assert len(outcome.body["notifications"]) == 2 and repeat.duplicate and repeat.body["protocol"] == outcome.body[
        "protocol"]
    assert not {"INSERT", "UPDATE", "SELECT"} & {statement.split()[0] for statement in executed}, executed

    async with runtime.db.read() as session:
        stored = (await session.scalars(select(Notification).order_by(Notification.id))).all()
    assert [n.id for n in stored] == [n["id"] for n in outcome.body["notifications"]]
    assert all(n.status == "queued" and n.created_at == NOW for n in stored)


@pytest.mark.parametrize("engine_name", ["sqlite"])
async def test_an_async_session_on_sqlite_keeps_sqlalchemys_path(runtime):
    """Under `AsyncSession.run_sync` the driver is aiosqlite's, whose calls are coroutines: the
    rows go through SQLAlchemy there (the inbound SMS reply and the sweeps enqueue this way)."""
    await prepare(runtime)
    protocol = _protocol("100000000003")
    await runtime.db.transact(lambda session: rows.insert_one(session, protocol))
    queued = [_notification(protocol.id), _notification(protocol.id)]
    async with runtime.db.write() as session:
        await session.run_sync(outbox.enqueue, queued)
    async with runtime.db.read() as session:
        stored = (await session.scalars(select(Notification.id).where(Notification.protocol_id == protocol.id))).all()
    assert sorted(stored) == [n.id for n in queued]
