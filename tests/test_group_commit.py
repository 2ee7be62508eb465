"""Group commit: concurrent events share transactions, fail alone, and are never acknowledged early."""

from __future__ import annotations

import asyncio
import contextvars
import json
import signal
from datetime import datetime, timezone

import aiohttp
import asyncpg
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from gateway.api.cloudevents import to_incoming
from gateway.app import prepare
from gateway.delivery import outbox
from gateway.errors import Conflict, InvalidFields
from gateway.store import drivers, postgres_driver
from gateway.store.database import Database
from gateway.store.group_commit import GroupCommit
from gateway.store.models import Event, Notification, Protocol
from tests.fakes.smtp_sink import SMTPSink
from tests.fault_helpers import smtp_env
from tests.helpers import free_port, opened_event
from tests.test_e2e import start_daemon

NOW = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)


async def count(runtime, model) -> int:
    async with runtime.db.read() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_concurrent_events_share_commits_and_each_gets_its_own_answer(runtime):
    await prepare(runtime)
    commits = runtime.service.commits
    events = [to_incoming(opened_event(f"c-{i}", notify=["email"])) for i in range(60)]
    outcomes = await asyncio.gather(*(runtime.service.handle(e, received_at=NOW) for e in events))
    numbers = [o.body["protocol"]["number"] for o in outcomes]
    assert len(set(numbers)) == 60 and not any(o.duplicate for o in outcomes)
    # The first ran alone (nobody was waiting); the others queued behind it and shared.
    assert commits.members == 60 and commits.transactions < 60
    assert await count(runtime, Protocol) == 60 and await count(runtime, Notification) == 60
    async with runtime.db.read() as session:
        stored = dict((await session.execute(select(Event.event_id, Event.answer))).all())
    # Each stored answer is its own event's, with its own notification ids.
    for event, outcome in zip(events, outcomes):
        assert stored[event.id]["protocol"]["number"] == outcome.body["protocol"]["number"]
        assert stored[event.id]["notifications"] == outcome.body["notifications"]


async def test_a_failing_member_is_rolled_back_alone(runtime):
    await prepare(runtime)
    good = [to_incoming(opened_event(f"good-{i}", notify=["email"])) for i in range(10)]
    # Valid as CloudEvents, refused inside the transaction: no contact for the chosen channel.
    bad = to_incoming(opened_event("bad", notify=["sms"], consumer={"name": "Ana", "email": "ana@example.com"}))
    taken = to_incoming(opened_event("taken", number="202600000001", notify=[]))
    clash = to_incoming(opened_event("clash", number="202600000001", notify=[]))
    results = await asyncio.gather(
        *(runtime.service.handle(e, received_at=NOW) for e in [*good[:5], bad, taken, clash, *good[5:]]),
        return_exceptions=True,
    )
    assert isinstance(results[5], InvalidFields)
    assert not isinstance(results[6], Exception)
    assert isinstance(results[7], Conflict)
    assert [r.duplicate for i, r in enumerate(results) if i not in (5, 6, 7)] == [False] * 10
    assert await count(runtime, Protocol) == 11 and await count(runtime, Event) == 11
    assert await count(runtime, Notification) == 10


async def test_a_batch_without_failures_takes_no_savepoints(runtime):
    """Savepoints cost two statements a member (two round trips on PostgreSQL): only a batch in which
    a member failed runs again with them."""
    await prepare(runtime)
    engine = runtime.db._sync_writer if runtime.db.is_sqlite else runtime.db.writer.sync_engine
    executed: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        executed.append(statement.split()[0].upper())

    sa_event.listen(engine, "before_cursor_execute", seen)
    try:
        events = [to_incoming(opened_event(f"s-{i}", notify=["email"])) for i in range(20)]
        outcomes = await asyncio.gather(*(runtime.service.handle(e, received_at=NOW) for e in events))
    finally:
        sa_event.remove(engine, "before_cursor_execute", seen)
    assert runtime.service.commits.transactions < 20 and not any(o.duplicate for o in outcomes)
    assert "SAVEPOINT" not in executed and await count(runtime, Protocol) == 20


async def test_repeats_inside_one_batch_answer_as_duplicates(runtime):
    await prepare(runtime)
    event = to_incoming(opened_event("same", notify=[]))
    outcomes = await asyncio.gather(*(runtime.service.handle(event, received_at=NOW) for _ in range(20)))
    assert sorted(o.duplicate for o in outcomes) == [False] + [True] * 19
    assert len({o.body["protocol"]["number"] for o in outcomes}) == 1
    assert await count(runtime, Protocol) == 1


async def test_a_member_failing_at_the_database_on_the_second_run_is_rolled_back_alone(runtime):
    """The statements go straight to the driver (store/drivers.py), past the session: each member of
    the second run still gets its savepoint, so the one that fails takes only its own rows with it
    (on PostgreSQL the error had aborted the transaction, and the COMMIT rolled every member back)."""
    await prepare(runtime)
    await runtime.db.transact(lambda session: session.execute(text("CREATE TABLE scratch (v TEXT NOT NULL UNIQUE)")))

    def member(*values: str):
        def fn(session):
            driver = drivers.under(session)
            for value in values:
                driver.execute("INSERT INTO scratch (v) VALUES (?)", (value,))
            return values[0]
        return fn

    commits = GroupCommit(runtime.db, in_flight=1)  # one transaction for all six
    batch = [member("v1"), member("v2"), member("v3"), member("own row", "v1"), member("v5"), member("v6")]
    results = await asyncio.gather(*(commits.run(fn) for fn in batch), return_exceptions=True)
    assert isinstance(results[3], IntegrityError)
    assert [r for i, r in enumerate(results) if i != 3] == ["v1", "v2", "v3", "v5", "v6"]
    assert commits.transactions == 1
    async with runtime.db.read() as session:
        stored = set((await session.scalars(text("SELECT v FROM scratch"))).all())
    assert stored == {"v1", "v2", "v3", "v5", "v6"}


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_a_failed_commit_acknowledges_nobody(runtime):
    """The commit itself fails (a deferred foreign key, checked only at COMMIT): every member fails."""
    await prepare(runtime)
    commits = GroupCommit(runtime.db)

    def insert_protocol(number: str):
        def fn(session):
            session.execute(text(
                "INSERT INTO counters (name, value) VALUES (:n, 0)"), {"n": number})
            return number
        return fn

    def break_the_commit(session):
        session.execute(text("PRAGMA defer_foreign_keys = ON"))
        session.execute(text(
            "INSERT INTO notification_attempts (notification_id, attempt, started_at, finished_at, outcome) "
            "VALUES (999999, 1, '2026-11-22 00:00:00', '2026-11-22 00:00:00', 'sent')"))

    first = asyncio.ensure_future(commits.run(insert_protocol("alone")))
    await asyncio.sleep(0)  # the first starts its transaction alone; the next three queue and share one
    rest = [commits.run(insert_protocol("a")), commits.run(break_the_commit), commits.run(insert_protocol("b"))]
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert results[0] == "alone"
    assert all(isinstance(r, Exception) and "FOREIGN KEY" in str(r) for r in results[1:])
    async with runtime.db.read() as session:
        names = set((await session.scalars(text("SELECT name FROM counters"))).all())
    assert "alone" in names and not {"a", "b"} & names


async def test_every_acknowledged_event_survives_a_sigkill(tmp_path, db_url):
    """A daemon under 100 concurrent clients is killed mid-stream: whatever got a 202 is stored."""
    async with SMTPSink() as sink:
        port = free_port()
        daemon = await start_daemon(tmp_path, port, env=smtp_env(
            db_url, sink, port, GATEWAY_AUTH__BOOTSTRAP_KEY_FILE="admin.key"))
        key = (tmp_path / "admin.key").read_text().strip()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"}
        acknowledged: dict[str, str] = {}
        kill_after = 300

        async def client(http: aiohttp.ClientSession, c: int) -> None:
            for i in range(1000):
                body = json.dumps(opened_event(f"k-{c}-{i}", notify=["email"]))
                try:
                    async with http.post(f"{daemon.url}/v1/events", data=body, headers=headers) as r:
                        if r.status != 202:
                            return
                        acknowledged[f"k-{c}-{i}"] = (await r.json())["protocol"]["number"]
                except aiohttp.ClientError:
                    return  # killed: this one was never acknowledged
                if len(acknowledged) >= kill_after and daemon.process.returncode is None:
                    daemon.process.send_signal(signal.SIGKILL)  # requests of other clients are mid-commit

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as http:
            await asyncio.gather(*(client(http, c) for c in range(100)))
        await daemon.process.wait()

    db = Database(db_url)
    try:
        async with db.read() as session:
            stored = dict((await session.execute(
                select(Event.event_id, Protocol.number).join(Protocol, Protocol.id == Event.protocol_id))).all())
            queued = await session.scalar(select(func.count()).select_from(Notification))
    finally:
        await db.dispose()
    assert len(acknowledged) >= kill_after
    missing = {e for e in acknowledged if e not in stored}
    assert not missing, f"{len(missing)} acknowledged events lost"
    assert all(stored[e] == n for e, n in acknowledged.items())
    assert queued == len(stored)  # each stored event has its notification: no half-written member


async def test_a_leader_does_not_carry_its_first_callers_context_into_the_batches(runtime):
    """A leader serves the batches after its first; what that caller had set (a look at the
    templates, say) must not reach them. On PostgreSQL the members run in the leader's context."""
    await prepare(runtime)
    marker: contextvars.ContextVar[str | None] = contextvars.ContextVar("marker", default=None)
    commits = GroupCommit(runtime.db, in_flight=1)
    marker.set("the first caller's")
    seen = await asyncio.gather(*(commits.run(lambda session: marker.get()) for _ in range(4)))
    assert seen == [None] * 4


async def test_waiting_members_are_cancelled_with_the_leader_not_left_hanging(runtime):
    await prepare(runtime)
    commits = GroupCommit(runtime.db, in_flight=1)
    first = asyncio.ensure_future(commits.run(lambda session: session.execute(text("SELECT 1")).scalar()))
    await asyncio.sleep(0)  # the leader starts the first transaction; the next ones wait behind it
    waiting = [asyncio.ensure_future(commits.run(lambda session: 1)) for _ in range(3)]
    await asyncio.sleep(0)
    for leader in list(commits._leaders):
        leader.cancel()  # as at shutdown
    results = await asyncio.wait_for(asyncio.gather(first, *waiting, return_exceptions=True), timeout=10)
    assert all(isinstance(r, asyncio.CancelledError) for r in results[1:])
    assert not commits._leaders


@pytest.mark.parametrize("engine_name", ["postgresql"])
async def test_one_notify_per_transaction_and_kept_when_a_member_fails(runtime, db_url, monkeypatch):
    """Events sharing a commit send one NOTIFY (a round trip each before); one noted by a member
    that failed went with its savepoint, so the next member sends its own."""
    await prepare(runtime)
    engine = runtime.db.writer.sync_engine
    notifies: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        if "pg_notify" in statement:
            notifies.append(statement)

    # Counted on both paths: the Core's, and straight to the driver (store/postgres_driver.py).
    straight = postgres_driver.PostgresDriver.execute

    def counted(driver, sql, params):
        seen(None, None, sql)
        return straight(driver, sql, params)

    monkeypatch.setattr(postgres_driver.PostgresDriver, "execute", counted)
    sa_event.listen(engine, "before_cursor_execute", seen)
    try:
        events = [to_incoming(opened_event(f"n-{i}", notify=["email"])) for i in range(20)]
        await asyncio.gather(*(runtime.service.handle(e, received_at=NOW) for e in events))
        assert len(notifies) == runtime.service.commits.transactions < 20
    finally:
        sa_event.remove(engine, "before_cursor_execute", seen)

    woken: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    await listener.add_listener("gateway_outbox", lambda *args: woken.put_nowait(args[2]))
    try:
        def notify_then_fail(session):
            outbox.notify(session)
            raise Conflict("refused after noting its NOTIFY")

        commits = GroupCommit(runtime.db, in_flight=1)  # both in one transaction
        results = await asyncio.gather(commits.run(notify_then_fail), commits.run(outbox.notify),
                                       return_exceptions=True)
        assert isinstance(results[0], Conflict) and results[1] is None and commits.transactions == 1
        assert await asyncio.wait_for(woken.get(), 5) == "gateway_outbox"
    finally:
        await listener.close()


@pytest.mark.parametrize("engine_name", ["postgresql"])
async def test_on_postgresql_a_transaction_waiting_on_the_server_does_not_hold_up_the_next(runtime, db_url):
    """PostgreSQL: shared transactions run side by side (an event's time there is round trips); one
    blocked on a lock held elsewhere does not keep the next from committing. SQLite keeps one."""
    await prepare(runtime)
    assert GroupCommit(runtime.db).in_flight > 1
    holder = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await holder.execute("SELECT pg_advisory_lock(2020)")
        commits = GroupCommit(runtime.db)
        blocked = asyncio.ensure_future(commits.run(
            lambda session: session.execute(text("SELECT pg_advisory_xact_lock(2020)")) and "blocked"))
        await asyncio.sleep(0)  # it starts alone and waits on the server for the lock
        assert await asyncio.wait_for(commits.run(lambda session: "next"), timeout=30) == "next"
        assert not blocked.done()
        await holder.execute("SELECT pg_advisory_unlock(2020)")
        assert await asyncio.wait_for(blocked, timeout=30) == "blocked"
    finally:
        await holder.close()
