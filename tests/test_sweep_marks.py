"""Sweep marks are claimed as one statement's parameters: each batch neither builds nor compiles a
statement of its own (profiled: two thirds of the retention notice over a million protocols)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import event, select

from gateway.store import rows
from gateway.store.models import Protocol
from gateway.store.sweep_models import SweepMark
from gateway.sweeps.context import claim_marks

AT = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def _mark(protocol_id: int, slot: str = "30d") -> dict:
    return {"schedule": "retention-notice", "kind": "retention_notice", "protocol_id": protocol_id, "slot": slot,
            "target_at": AT + timedelta(days=30), "outcome": "sent", "marked_at": AT, "notifications": 1,
            "detail": None}


async def _protocols(database, n: int) -> list[int]:
    made = [Protocol(number=f"{900000000000 + i}", issued_by="gateway", status="resolved", subject="s",
                     profile="br-sac", consumer_locale="pt-BR", consumer_timezone="America/Sao_Paulo", opened_at=AT,
                     received_at=AT, deadline_at=AT, legal_hold=False, updated_at=AT) for i in range(n)]
    await database.transact(lambda session: rows.insert_many(session, made))
    return [p.id for p in made]


async def test_marks_go_as_parameters_and_only_the_new_ones_are_won(database):
    ids = await _protocols(database, 30)
    statements: list[tuple[object, int]] = []

    def seen(_conn, clause, multiparams, _params, _options) -> None:
        if getattr(clause, "table", None) is not None and clause.table.name == "sweep_marks":
            statements.append((clause, len(multiparams)))

    engine = database.writer.sync_engine
    event.listen(engine, "before_execute", seen)
    try:
        async with database.write() as session:
            first = await claim_marks(session, [_mark(i) for i in ids[:20]])
        async with database.write() as session:  # ten already taken, ten new
            second = await claim_marks(session, [_mark(i) for i in ids[10:]])
    finally:
        event.remove(engine, "before_execute", seen)
    assert first == set(ids[:20]) and second == set(ids[20:])
    # One statement, the same one, each time; the rows are its parameters.
    assert [n for _, n in statements] == [20, 20] and statements[0][0] is statements[1][0]
    async with database.read() as session:
        stored = (await session.scalars(select(SweepMark).order_by(SweepMark.protocol_id))).all()
    assert [m.protocol_id for m in stored] == ids
    assert all(m.target_at == AT + timedelta(days=30) and m.detail is None and m.notifications == 1 for m in stored)
