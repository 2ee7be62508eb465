"""Outages: providers and the database going away for a while, then coming back.

The daemon runs as a user runs it (a subprocess on its own clock) against the real aiosmtpd
server and the fake Twilio API; the database outage cuts a TCP forwarder that stands
between the gateway and PostgreSQL. Waits poll the real servers with a bounded time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from gateway.app import build_runtime, prepare, web_app
from gateway.store.database import Database
from gateway.store.models import Attempt, Event, Notification, Protocol
from tests.fakes.smtp_sink import SMTPSink
from tests.fakes.twilio_api import FakeTwilio
from tests.fault_helpers import TCPProxy, message_ids, prefill, smtp_env, statuses
from tests.helpers import admin_key, free_port, make_settings, opened_event
from tests.test_e2e import Daemon, start_daemon, wait_for

CE = "application/cloudevents+json"


async def wait_db(predicate, db_url: str, timeout: float = 30.0) -> None:
    """Poll the database until `predicate(session)` is true, within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    db = Database(db_url)
    try:
        while True:
            async with db.read() as session:
                if await predicate(session):
                    return
            assert loop.time() < deadline, "condition not met in time"
            await asyncio.sleep(0.1)
    finally:
        await db.dispose()


async def read(db_url: str, query):
    db = Database(db_url)
    try:
        async with db.read() as session:
            return list((await session.scalars(query)).all())
    finally:
        await db.dispose()


async def metrics(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as http, http.get(f"{daemon.url}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def post_events(daemon: Daemon, key: str, events: list[dict]) -> list[dict]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents-batch+json"}
    async with aiohttp.ClientSession() as http, http.post(f"{daemon.url}/v1/events", data=json.dumps(events),
                                                          headers=headers) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["results"]


async def start(tmp_path: Path, env: dict[str, str]) -> tuple[Daemon, str]:
    port = int(env["GATEWAY_HTTP__PORT"])
    env = {**env, "GATEWAY_AUTH__BOOTSTRAP_KEY_FILE": "admin.key"}
    daemon = await start_daemon(tmp_path, port, env=env)
    return daemon, (tmp_path / "admin.key").read_text().strip()


# SMTP


async def test_smtp_down_for_a_while_then_back_delivers_everything_with_the_retries_on_record(
        tmp_path: Path, sqlite_url: str, sink: SMTPSink) -> None:
    count = 12
    await asyncio.to_thread(sink.stop)  # the outage: connections to the port are refused
    port = free_port()
    daemon, key = await start(tmp_path, smtp_env(sqlite_url, sink, port, GATEWAY_DISPATCH__RETRY_BASE="200ms",
                                                 GATEWAY_DISPATCH__RETRY_MAX="1s"))
    try:
        events = [opened_event(f"out-{i}", notify=["email"],
                               consumer={"name": "Maria", "email": f"c{i}@example.com"}) for i in range(count)]
        results = await post_events(daemon, key, events)
        assert all(r["duplicate"] is False for r in results)

        async def retried_twice(session) -> bool:
            least = await session.scalar(select(func.min(Notification.attempts)))
            return least is not None and least >= 2

        await wait_db(retried_twice, sqlite_url)  # every notification tried and refused at least twice
        assert sink.messages == []
        await asyncio.to_thread(sink.start)  # back on the same port
        await wait_for(lambda: len(sink.messages) >= count, timeout=30)
        await wait_db(lambda s: _all_sent(s, count), sqlite_url)
        seen = await metrics(daemon)
    finally:
        assert await daemon.stop() == 0

    ids = message_ids(sink)
    assert len(ids) == count and max(ids.values()) == 1
    rows = await read(sqlite_url, select(Notification))
    assert all(r.status == "sent" and r.attempts >= 3 and r.last_error is None for r in rows)
    attempts = await read(sqlite_url, select(Attempt).order_by(Attempt.notification_id, Attempt.attempt))
    by_row: dict[int, list[Attempt]] = {}
    for a in attempts:
        by_row.setdefault(a.notification_id, []).append(a)
    for row in rows:
        tries = by_row[row.id]
        assert [a.attempt for a in tries] == list(range(1, row.attempts + 1))
        assert [a.outcome for a in tries] == ["queued"] * (row.attempts - 1) + ["sent"]
        assert all("cannot open an SMTP session" in (a.error or "") for a in tries[:-1])
    refused = sum(len(t) - 1 for t in by_row.values())
    errors = sum(v for (name, labels), v in seen.items()
                 if name == "gateway_provider_errors_total" and ("channel", "email") in labels)
    assert errors == refused  # every refusal counted in /metrics
    retried = seen[("gateway_notifications_total",
                    (("channel", "email"), ("status", "queued"), ("template", "protocol_opened")))]
    assert retried == refused
    assert seen[("gateway_notifications_total",
                 (("channel", "email"), ("status", "sent"), ("template", "protocol_opened")))] == count
    assert sum(1 for line in daemon.log_lines() if line.get("action") == "outbox_retry") == refused


async def _all_sent(session, count: int) -> bool:
    sent = await session.scalar(select(func.count()).where(Notification.status == "sent"))
    return sent == count


# Twilio


def twilio_env(db_url: str, twilio: FakeTwilio, port: int, **extra: str) -> dict[str, str]:
    return {
        "GATEWAY_DATABASE__URL": db_url,
        "GATEWAY_HTTP__PORT": str(port),
        "GATEWAY_SMS__TRANSPORT": "twilio",
        "GATEWAY_SMS__TWILIO__ACCOUNT_SID": twilio.account_sid,
        "GATEWAY_SMS__TWILIO__AUTH_TOKEN": twilio.auth_token,
        "GATEWAY_SMS__TWILIO__FROM": "+15005550006",
        "GATEWAY_SMS__TWILIO__API_BASE_URL": twilio.base_url,
        "GATEWAY_DISPATCH__POLL_INTERVAL": "100ms",
        "GATEWAY_SWEEPS__ENABLED": "false",
        "GATEWAY_FALLBACK__ENABLED": "false",
        **extra,
    }


async def test_twilio_500s_then_429_with_retry_after_is_honoured_past_the_backoff_cap(
        tmp_path: Path, sqlite_url: str, twilio: FakeTwilio) -> None:
    retry_after = 1  # second; five times retry_max, so only Retry-After explains the wait
    for _ in range(2):
        twilio.script(status=500, code=20500)
    twilio.script(status=429, code=20429, retry_after=retry_after)
    port = free_port()
    daemon, key = await start(tmp_path, twilio_env(sqlite_url, twilio, port, GATEWAY_DISPATCH__RETRY_BASE="50ms",
                                                   GATEWAY_DISPATCH__RETRY_MAX="200ms"))
    try:
        (answer,) = await post_events(daemon, key, [opened_event("tw-1", notify=["sms"])])
        await wait_db(lambda s: _all_sent(s, 1), sqlite_url, timeout=30)
        seen = await metrics(daemon)
    finally:
        assert await daemon.stop() == 0

    assert len(twilio.messages) == 4  # one POST per try: no hidden SDK retries
    (row,) = await read(sqlite_url, select(Notification))
    assert row.id == answer["notifications"][0]["id"] and row.status == "sent" and row.attempts == 4
    tries = await read(sqlite_url, select(Attempt).order_by(Attempt.attempt))
    assert [(a.outcome, a.error_code) for a in tries] == [
        ("queued", "20500"), ("queued", "20500"), ("queued", "20429"), ("sent", None)]
    after_429 = tries[3].started_at - tries[2].finished_at
    assert after_429 >= timedelta(seconds=retry_after)  # not before Retry-After...
    assert tries[1].started_at - tries[0].finished_at < timedelta(seconds=retry_after)  # ...which only the 429 set
    assert seen[("gateway_provider_errors_total", (("channel", "sms"), ("code", "20500")))] == 2
    assert seen[("gateway_provider_errors_total", (("channel", "sms"), ("code", "20429")))] == 1


async def test_twilio_retry_after_is_written_as_next_attempt_at(tmp_path: Path, sqlite_url: str,
                                                               twilio: FakeTwilio) -> None:
    """The record itself says when the retry is due: at least the 429's time plus Retry-After."""
    twilio.script(status=429, code=20429, retry_after=3600)
    port = free_port()
    daemon, key = await start(tmp_path, twilio_env(sqlite_url, twilio, port, GATEWAY_DISPATCH__RETRY_BASE="1s",
                                                   GATEWAY_DISPATCH__RETRY_MAX="5s"))
    try:
        await post_events(daemon, key, [opened_event("tw-2", notify=["sms"])])

        async def refused(session) -> bool:
            return (await session.scalar(select(func.count()).select_from(Attempt))) == 1

        await wait_db(refused, sqlite_url)
    finally:
        assert await daemon.stop() == 0
    (row,) = await read(sqlite_url, select(Notification))
    (attempt,) = await read(sqlite_url, select(Attempt))
    assert row.status == "queued" and row.error_code == "20429"
    assert row.next_attempt_at >= attempt.finished_at + timedelta(seconds=3600)
    assert len(twilio.messages) == 1


async def test_twilio_timeout_is_unknown_then_sent_again_with_the_duplicate_noted(
        tmp_path: Path, sqlite_url: str, twilio: FakeTwilio) -> None:
    twilio.script(delay=3)  # Twilio got the POST (it is recorded) but answers after the gateway gave up
    port = free_port()
    daemon, key = await start(tmp_path, twilio_env(sqlite_url, twilio, port, GATEWAY_SMS__TWILIO__TIMEOUT="300ms",
                                                   GATEWAY_DISPATCH__UNKNOWN_RETRY_AFTER="1s"))
    try:
        await post_events(daemon, key, [opened_event("tw-3", notify=["sms"])])
        await wait_db(lambda s: _all_sent(s, 1), sqlite_url, timeout=30)
    finally:
        assert await daemon.stop() == 0
    assert len(twilio.messages) == 2  # the same SMS went twice, as the record now says
    (row,) = await read(sqlite_url, select(Notification))
    assert row.status == "sent" and row.attempts == 2 and row.duplicate_possible is True
    tries = await read(sqlite_url, select(Attempt).order_by(Attempt.attempt))
    assert [a.outcome for a in tries] == ["unknown", "sent"]
    assert "did not answer" in tries[0].error
    assert tries[1].started_at - tries[0].finished_at >= timedelta(seconds=1)  # unknown_retry_after, not at once
    unknown = [line for line in daemon.log_lines() if line.get("action") == "outbox_unknown"]
    assert len(unknown) == 1 and unknown[0]["notification"] == row.id


# The database


@pytest.mark.postgres
@pytest.mark.parametrize("engine_name", ["postgresql"])  # the database goes away behind a TCP proxy
async def test_database_down_api_answers_503_acknowledges_nothing_and_the_dispatcher_resumes(
        tmp_path: Path, db_url: str, sink: SMTPSink, caplog: pytest.LogCaptureFixture) -> None:
    proxy = TCPProxy.for_url(db_url)
    await proxy.start()
    settings = make_settings(
        tmp_path, proxy.url_through(db_url),
        email={"transport": "smtp", "from": "gw@example.com",
               "smtp": {"host": sink.host, "port": sink.port, "starttls": False}},
        sweeps={"enabled": False},
    )
    runtime = build_runtime(settings)
    await prepare(runtime)
    key = await admin_key(runtime)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": CE}
    caplog.set_level(logging.WARNING, logger="gateway")
    try:
        async with TestClient(TestServer(web_app(runtime))) as client:
            await proxy.cut()
            for body, content_type in ((opened_event("down-1"), CE),
                                       ([opened_event("down-2")], "application/cloudevents-batch+json")):
                r = await client.post("/v1/events", data=json.dumps(body),
                                      headers={**headers, "Content-Type": content_type})
                assert r.status == 503, await r.text()
                assert r.content_type == "application/problem+json"
                problem = await r.json()
                assert problem["type"] == "/problems/unavailable" and problem["status"] == 503
                assert r.headers.get("Retry-After")
            r = await client.get("/v1/protocols/20261122000000011", headers=headers)
            assert r.status == 503 and r.content_type == "application/problem+json"
            assert (await client.get("/readyz")).status == 503
            assert (await client.get("/metrics")).status == 200  # metrics stay up, the outbox gauges go stale
            assert (await client.get("/healthz")).status == 200

            # Work queued meanwhile by another process (straight to the database, around the cut)
            # waits: the dispatcher's turns fail, it keeps trying, nothing is lost.
            await prefill(db_url, 20)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not any(getattr(r, "action", None) == "outbox_turn_failed" for r in caplog.records):
                assert loop.time() < deadline, "the dispatcher never tried the database"
                await asyncio.sleep(0.05)
            assert sink.messages == []

            await proxy.restore()
            await wait_for(lambda: len(sink.messages) >= 20, timeout=30)
            # Nothing of what was refused was kept; the same events are welcome now.
            db = Database(db_url)
            try:
                async with db.read() as session:
                    assert await session.scalar(select(func.count()).select_from(Event)) == 0
                    assert await session.scalar(select(func.count()).select_from(Protocol)) == 0
            finally:
                await db.dispose()
            r = await client.post("/v1/events", data=json.dumps(opened_event("down-1")), headers=headers)
            assert r.status == 202, await r.text()
            assert (await client.get("/readyz")).status == 200
            await wait_db(lambda s: _all_sent(s, 22), db_url)  # the 20, and the event's email and SMS (a file)
    finally:
        await proxy.aclose()
    assert await statuses(db_url) == {"sent": 22}
    assert max(message_ids(sink).values()) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("engine_name", ["postgresql"])  # the database goes away behind a TCP proxy
async def test_database_cut_while_sends_are_in_flight_records_them_once_it_returns(
        tmp_path: Path, db_url: str, sink: SMTPSink, caplog: pytest.LogCaptureFixture) -> None:
    count = 40
    sink.data_delay = 0.05
    await prefill(db_url, count)
    proxy = TCPProxy.for_url(db_url)
    await proxy.start()
    settings = make_settings(
        tmp_path, proxy.url_through(db_url),
        email={"transport": "smtp", "from": "gw@example.com",
               "smtp": {"host": sink.host, "port": sink.port, "starttls": False}},
        sweeps={"enabled": False},
    )
    runtime = build_runtime(settings)
    try:
        async with TestClient(TestServer(web_app(runtime))):
            await wait_for(lambda: len(sink.messages) >= 5, timeout=30)
            caplog.set_level(logging.WARNING, logger="gateway")
            await proxy.cut()
            # Sends in flight finish against SMTP; their outcomes wait in memory for the database.
            await wait_for(lambda: any(getattr(r, "action", None) == "outbox_turn_failed" for r in caplog.records))
            during = len(sink.messages)
            assert during < count
            await proxy.restore()
            await wait_db(lambda s: _all_sent(s, count), db_url, timeout=60)
    finally:
        await proxy.aclose()
    ids = message_ids(sink)
    assert len(ids) == count and max(ids.values()) == 1  # nothing sent twice: the leases never expired


async def prepared(settings):  # type: ignore[no-untyped-def]
    """A migrated runtime and the headers of an admin key for posting events."""
    runtime = build_runtime(settings)
    await prepare(runtime)
    key = await admin_key(runtime)
    return runtime, {"Authorization": f"Bearer {key}", "Content-Type": CE}


def burst(prefix: str, count: int) -> list[dict]:
    return [opened_event(f"{prefix}-{i}", notify=["email"], consumer={"email": f"{prefix[0]}{i}@example.com"})
            for i in range(count)]


@pytest.mark.postgres
@pytest.mark.parametrize("engine_name", ["postgresql"])  # the database goes away behind a TCP proxy
async def test_database_cut_during_a_burst_gives_202_or_503_and_every_202_is_kept(
        tmp_path: Path, db_url: str, sink: SMTPSink) -> None:
    """Connections dropped mid-request: never a 500. A 202 is always on record; a 503 may come after
    the commit reached the server (the answer was lost), which the idempotent retry makes safe."""
    proxy = TCPProxy.for_url(db_url)
    await proxy.start()
    settings = make_settings(tmp_path, proxy.url_through(db_url),
                             email={"transport": "smtp", "from": "gw@example.com",
                                    "smtp": {"host": sink.host, "port": sink.port, "starttls": False}},
                             sweeps={"enabled": False},
                             # A dispatcher turn cut after its COMMIT reached the server claimed rows
                             # it never heard of: they wait out their lease (60 s by default) before
                             # another turn takes them. A short lease keeps that wait short here.
                             dispatch={"lease": "3s"})
    runtime, headers = await prepared(settings)
    count = 60
    events = burst("burst", count)
    try:
        async with TestClient(TestServer(web_app(runtime))) as client:
            accepted: list[int] = []
            some_in = asyncio.Event()

            async def post(event: dict) -> int:
                r = await client.post("/v1/events", data=json.dumps(event), headers=headers)
                await r.read()
                if r.status == 202:
                    accepted.append(1)
                    if len(accepted) >= 10:
                        some_in.set()
                return r.status

            limit = asyncio.Semaphore(8)

            async def limited(event: dict) -> int:
                async with limit:
                    return await post(event)

            tasks = [asyncio.create_task(limited(e)) for e in events]
            await asyncio.wait_for(some_in.wait(), timeout=30)
            await proxy.cut()  # under the requests still in flight
            first = await asyncio.gather(*tasks)
            assert set(first) <= {202, 503}, first
            await proxy.restore()
            again = [await post(e) if code == 503 else code for e, code in zip(events, first)]
            assert set(again) <= {200, 202}, again
            await wait_db(lambda s: _all_sent(s, count), db_url, timeout=60)
    finally:
        await proxy.aclose()
    print(f"\nburst: {first.count(202)} accepted before the cut, {first.count(503)} refused with 503")
    kept = await read(db_url, select(Event.event_id))
    assert sorted(kept) == sorted(e["id"] for e in events)  # each exactly once
    assert len(message_ids(sink)) == count and max(message_ids(sink).values()) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("engine_name", ["postgresql"])
async def test_postgres_restarting_under_load_gives_503_never_500_and_the_pool_recovers(
        tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """The server ending every session of the gateway's database again and again during a burst
    (pg_terminate_backend: SQLSTATE 57P01, what a restart or a failover does to open
    connections): each answer is a 202 or a 503 problem, nothing is lost, and without a
    restart of the gateway everything refused goes through once the server stops."""
    settings = make_settings(tmp_path, db_url, sweeps={"enabled": False})
    runtime, headers = await prepared(settings)
    count = 80
    events = burst("restart", count)
    admin = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    caplog.set_level(logging.ERROR, logger="gateway.api")
    try:
        async with TestClient(TestServer(web_app(runtime))) as client:
            answers: list[tuple[int, dict]] = []

            async def post(event: dict) -> tuple[int, dict]:
                r = await client.post("/v1/events", data=json.dumps(event), headers=headers)
                return r.status, await r.json()

            limit = asyncio.Semaphore(8)

            async def limited(event: dict) -> None:
                async with limit:
                    answers.append(await post(event))

            async def restarts() -> int:
                ended = 0
                while len(answers) < count:
                    ended += await admin.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()")
                    await asyncio.sleep(0.02)
                return ended

            restarting = asyncio.create_task(restarts())
            await asyncio.gather(*(limited(e) for e in events))
            ended = await restarting
            statuses = [status for status, _ in answers]
            assert set(statuses) <= {202, 503}, statuses
            assert ended > 0 and 503 in statuses  # the server did go away under the requests
            for status, body in answers:
                if status == 503:
                    assert body["type"] == "/problems/unavailable" and body["status"] == 503
            # No restart of the gateway: the pool finds its dead connections and replaces them.
            again = [await post(e) for e in events]
            assert {status for status, _ in again} <= {200, 202}, again
            assert (await client.get("/readyz")).status in (200, 503)  # the probe of a transport may lag; not a 500
            r = await client.get("/readyz")
            assert (await r.json())["checks"]["database"] == "ok"
    finally:
        await admin.close()
    assert not [r for r in caplog.records if getattr(r, "action", None) == "http_error"]  # no 500 logged
    kept = await read(db_url, select(Event.event_id))
    assert sorted(kept) == sorted(e["id"] for e in events)  # each exactly once


def _through_sqlalchemy(error: BaseException) -> BaseException:
    """`error` as SQLAlchemy hands it to the API: a DBAPIError whose cause is the driver's."""
    from sqlalchemy.exc import DBAPIError

    try:
        try:
            raise error
        except BaseException as cause:
            raise DBAPIError("SELECT 1", {}, cause) from cause
    except DBAPIError as wrapped:
        return wrapped


@pytest.mark.parametrize(("error", "unavailable"), [
    (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),  # 57P01
    (asyncpg.CrashShutdownError("terminating connection because of crash of another server process"), True),
    (asyncpg.CannotConnectNowError("the database system is starting up"), True),  # 57P03
    (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"), True),  # 08003
    (asyncpg.ConnectionFailureError("connection failure"), True),  # 08006
    (asyncpg.UniqueViolationError("duplicate key value"), False),  # the request's own conflict: not an outage
    (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), False),  # 57014, not 57P
])
def test_what_counts_as_the_database_being_away(error: BaseException, unavailable: bool) -> None:
    from gateway.store.outage import database_unavailable

    assert database_unavailable(_through_sqlalchemy(error)) is unavailable


def test_a_session_left_unusable_by_a_lost_connection_is_an_outage() -> None:
    from sqlalchemy.exc import PendingRollbackError

    from gateway.store.outage import database_unavailable

    assert database_unavailable(PendingRollbackError("This Session's transaction has been rolled back"))
    assert not database_unavailable(ValueError("a bug"))
