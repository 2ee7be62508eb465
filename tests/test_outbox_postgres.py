"""On PostgreSQL the dispatcher's claim and record go straight to the driver, a statement each for
the claim, the outcomes, their attempt rows and the requests they fulfil (delivery/outbox_postgres.py):
they take and store exactly what the Core statements do, on a real server."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from sqlalchemy import event, text

from gateway.app import prepare
from gateway.delivery import outbox
from gateway.store import drivers
from tests.test_outbox_sqlite import LATER, NOW, _results, one_protocol, stored_alike, two_paths


@pytest.mark.parametrize("engine_name", ["postgresql"])
async def test_the_drivers_claim_and_record_take_and_store_what_the_core_statements_do(
        runtime, monkeypatch: pytest.MonkeyPatch):
    await prepare(runtime)

    ids = await runtime.db.transact(lambda session: two_paths(session, ("11", "12")))
    statements: list[str] = []
    event.listen(runtime.db.writer.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    async def park(path_ids: list[int], at) -> None:
        async with runtime.db.write() as session:
            await session.execute(text(f"UPDATE notifications SET next_attempt_at = :at "
                                       f"WHERE id IN ({', '.join(map(str, path_ids))})"), {"at": at})

    async def turn(only: list[int]) -> tuple[list[outbox.Claimed], list[str], int, int]:
        def claim(session):
            taken = outbox.claim(session, now=NOW, limit=len(only), lease=60)
            assert [c.id for c in taken] == only
            return taken
        statements.clear()
        claimed = await runtime.db.transact(claim)
        claiming = [s for s in statements if "inbound_messages" not in s]  # (WhatsApp's window: the Core's read)
        results = _results(claimed)
        statements.clear()
        owned = await runtime.db.transact(lambda session: outbox.record(session, results))
        return claimed, claiming, owned, len(statements)

    await park(ids["core"], NOW + timedelta(days=1))
    # The driver's statements, none of SQLAlchemy's; and the rows still ours counted, which the
    # Core's executemany cannot tell on asyncpg (-1 below).
    driver, claiming, owned, executed = await turn(ids["driver"])
    assert (claiming, owned, executed) == ([], 5, 0)
    await park(ids["core"], NOW - timedelta(seconds=1))
    with monkeypatch.context() as m:
        m.setattr(drivers, "under", lambda session: None)  # the Core statements, as before
        core, claiming, owned, executed = await turn(ids["core"])
        assert claiming and executed > 0 and owned == -1

    def fields(c: outbox.Claimed) -> dict:
        return {k: v for k, v in vars(c).items() if k not in ("id", "protocol_id")}

    assert [fields(c) for c in driver] == [fields(c) for c in core]
    assert driver[2].whatsapp_content == {"content_sid": "HX" + "a" * 32, "variables": {"1": "Ana"}}
    assert driver[3].give_up_from == NOW + timedelta(hours=1) and driver[0].give_up_from == NOW
    assert driver[4].duplicate_possible is True and driver[0].duplicate_possible is False
    assert driver[0].created_at == NOW and driver[0].created_at.tzinfo is timezone.utc
    assert driver[0].attempts == 1 and driver[0].lease_end == NOW + timedelta(seconds=60)

    notifications, attempts, requests = await runtime.db.query(lambda session: stored_alike(session, ids))
    assert [n["status"] for n in notifications] == ["sent", "delivered", "queued", "failed", "unknown"]
    assert notifications[0]["sent_at"] == LATER and notifications[0]["provider_id"] == "SM" + "0" * 32
    assert notifications[2]["next_attempt_at"] == LATER + timedelta(seconds=5) and notifications[2]["sent_at"] is None
    assert [a["outcome"] for a in attempts] == ["failed_over", "sent", "delivered", "queued", "failed", "unknown"]
    assert attempts[0]["provider"] == "backup" and attempts[0]["error_code"] == "421"
    assert requests[0]["fulfilled_at"] == LATER


@pytest.mark.parametrize("engine_name", ["postgresql"])
async def test_a_record_taken_over_by_another_worker_writes_nothing(runtime):
    """Fenced as the Core's: a row whose attempts moved on (another worker claimed it) is not ours."""
    await prepare(runtime)

    ids = await runtime.db.transact(lambda session: one_protocol(session, "100000000013"))
    claimed = await runtime.db.transact(lambda session: outbox.claim(session, now=NOW, limit=len(ids), lease=60))
    async with runtime.db.write() as session:  # another worker's claim of the first two since
        await session.execute(text(f"UPDATE notifications SET attempts = attempts + 1 "
                                   f"WHERE id IN ({ids[0]}, {ids[1]})"))
    owned = await runtime.db.transact(lambda session: outbox.record(session, _results(claimed)))
    assert owned == 3

    def statuses(session):
        return session.execute(text(f"SELECT status FROM notifications WHERE id IN ({', '.join(map(str, ids))}) "
                                    "ORDER BY id")).scalars().all()
    assert await runtime.db.query(statuses) == ["sending", "sending", "queued", "failed", "unknown"]
