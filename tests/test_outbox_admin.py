"""Dead letters: list, retry, requeue, through the library, the API and the command line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from gateway.app import Runtime, prepare, web_app
from gateway.cli import main
from gateway.delivery import admin as outbox_admin
from gateway.errors import Conflict, NotFound
from gateway.protocols.schemas import OpenedData
from gateway.protocols.service import IncomingEvent
from gateway.store.models import Attempt, Notification, ProviderCallback
from tests.helpers import admin_key, opened_event

T0 = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)
NOW = T0 + timedelta(days=2)

# What each notification (by its place in the outbox) has come to.
STATES = ["dead", "failed", "delivered", "sent", "sending", "unknown", "undelivered", "undelivered", "cancelled", "dead"]


@pytest.fixture
async def ids(runtime: Runtime) -> dict[str, list[int]]:
    """Ten notifications in every state; the second `undelivered` has a `delivered` receipt on
    record (a receipt that contradicts a later one), the last `dead` died a day before the first."""
    await prepare(runtime)
    for i in range(5):
        event = opened_event(f"e{i}", consumer={"email": f"pessoa{i}@example.com", "phone": f"+551198765432{i}"})
        await runtime.service.handle(IncomingEvent(source="urn:test:crm", id=f"e{i}", type="protocol.opened", time=T0,
                                                   data=OpenedData.model_validate(event["data"])), received_at=T0)
    out: dict[str, list[int]] = {}
    async with runtime.db.write() as session:
        rows = (await session.scalars(select(Notification).order_by(Notification.id))).all()
        assert len(rows) == len(STATES)
        for row, status in zip(rows, STATES):
            out.setdefault(status, []).append(row.id)
            delivered = T0 + timedelta(minutes=1) if status == "delivered" else None
            await session.execute(update(Notification).where(Notification.id == row.id).values(
                status=status, attempts=3, delivered_at=delivered, last_error=f"{status} error",
                next_attempt_at=T0 + timedelta(hours=1)))
            session.add(Attempt(notification_id=row.id, attempt=3, started_at=T0, outcome=status,
                                finished_at=T0 + timedelta(hours=1) - (timedelta(days=1) if row.id == rows[-1].id
                                                                       else timedelta())))
        session.add(ProviderCallback(notification_id=out["undelivered"][1], status="delivered", payload={},
                                     received_at=T0 + timedelta(minutes=2)))
    return out


async def items(runtime: Runtime, statuses: str | None = None, **kw) -> list[outbox_admin.OutboxItem]:
    async with runtime.db.read() as session:
        return await outbox_admin.list_notifications(session, statuses=outbox_admin.parse_statuses(statuses), **kw)


async def test_list_shows_what_needs_attention_newest_first_with_masked_recipients(runtime: Runtime, ids) -> None:
    listed = await items(runtime)
    assert [i.status for i in listed] == ["dead", "undelivered", "undelivered", "unknown", "failed", "dead"]
    assert [i.id for i in listed] == sorted((i.id for i in listed), reverse=True)
    assert all("***@example.com" in i.recipient or "****" in i.recipient for i in listed)
    assert listed[0].protocol is not None and listed[0].last_error == "dead error"
    assert [i.status for i in await items(runtime, "pending")] == ["unknown", "sending"]
    page = await items(runtime, "all", limit=3)
    assert len(page) == 3 and [i.id for i in await items(runtime, "all", limit=3, before=page[-1].id)] == [
        page[-1].id - 1, page[-1].id - 2, page[-1].id - 3]
    one = await items(runtime, "all", protocol=listed[0].protocol)
    assert len(one) == 2 and {i.protocol for i in one} == {listed[0].protocol}
    with pytest.raises(ValueError, match="unknown status 'lost'"):
        outbox_admin.parse_statuses("dead,lost")


async def test_retry_queues_a_dead_notification_and_keeps_its_history(runtime: Runtime, ids) -> None:
    dead = ids["dead"][0]
    async with runtime.db.write() as session:
        item = await outbox_admin.retry(session, dead, now=NOW, reason="SMTP password fixed")
    assert (item.status, item.attempts, item.next_attempt_at, item.last_error) == ("queued", 3, NOW, "dead error")
    async with runtime.db.read() as session:
        attempts = (await session.scalars(select(Attempt).where(Attempt.notification_id == dead)
                                          .order_by(Attempt.id))).all()
    assert [a.outcome for a in attempts] == ["dead", "requeued"]
    assert attempts[-1].error == "requeued (was dead): SMTP password fixed" and attempts[-1].finished_at == NOW
    runtime.dispatcher.clock = lambda: NOW
    await runtime.dispatcher.run_until_idle()  # and it goes
    async with runtime.db.read() as session:
        sent = await session.get(Notification, dead)
    assert (sent.status, sent.attempts) == ("sent", 4)


@pytest.mark.parametrize("state", ["delivered", "sent", "sending", "cancelled"])
async def test_retry_refuses_what_reached_the_consumer_or_is_in_flight(runtime: Runtime, ids, state: str) -> None:
    with pytest.raises(Conflict, match=f"is {state}"):
        async with runtime.db.write() as session:
            await outbox_admin.retry(session, ids[state][0], now=NOW, reason="x")


async def test_retry_never_resends_a_message_with_a_delivered_receipt(runtime: Runtime, ids) -> None:
    with pytest.raises(Conflict, match="has been delivered"):
        async with runtime.db.write() as session:
            await outbox_admin.retry(session, ids["undelivered"][1], now=NOW, reason="x")
    with pytest.raises(NotFound):
        async with runtime.db.write() as session:
            await outbox_admin.retry(session, 999_999, now=NOW, reason="x")


async def test_requeue_by_status_and_time_of_death(runtime: Runtime, ids) -> None:
    async with runtime.db.write() as session:
        planned = await outbox_admin.requeue(session, statuses=("dead",), now=NOW, reason="r", dry_run=True)
    assert planned == ids["dead"]
    async with runtime.db.read() as session:  # a dry run changes nothing
        assert {n.status for n in (await session.scalars(select(Notification).where(
            Notification.id.in_(planned)))).all()} == {"dead"}
    async with runtime.db.write() as session:  # only the one that died in the last day
        done = await outbox_admin.requeue(session, statuses=("dead",), now=NOW, reason="outage over",
                                          since=T0 + timedelta(minutes=30))
    assert done == [ids["dead"][0]]
    async with runtime.db.write() as session:  # undelivered: never the one with a delivered receipt
        done = await outbox_admin.requeue(session, statuses=("undelivered", "failed", "unknown"), now=NOW, reason="r")
    assert done == sorted([ids["undelivered"][0], ids["failed"][0], ids["unknown"][0]])
    with pytest.raises(ValueError, match="cannot requeue sent"):
        async with runtime.db.write() as session:
            await outbox_admin.requeue(session, statuses=("sent",), now=NOW, reason="r")


async def test_parse_since() -> None:
    assert outbox_admin.parse_since("2h", now=NOW) == NOW - timedelta(hours=2)
    assert outbox_admin.parse_since("2026-11-22T10:00:00-03:00", now=NOW) == datetime(2026, 11, 22, 13, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="offset"):
        outbox_admin.parse_since("2026-11-22T10:00:00", now=NOW)


@pytest.fixture
async def client(runtime: Runtime, ids) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(web_app(runtime))) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


async def test_the_api(client: TestClient, runtime: Runtime, ids) -> None:
    ops = bearer(await admin_key(runtime, ["outbox:admin"]))
    response = await client.get("/v1/outbox?status=dead&limit=1", headers=ops)
    body = await response.json()
    assert response.status == 200 and [i["id"] for i in body["items"]] == [ids["dead"][1]]
    assert body["next"] == f"/v1/outbox?status=dead&limit=1&before={ids['dead'][1]}"
    assert [i["id"] for i in (await (await client.get(body["next"], headers=ops)).json())["items"]] == [ids["dead"][0]]
    assert (await client.get("/v1/outbox?status=lost", headers=ops)).status == 422
    assert (await client.get("/v1/outbox?limit=0", headers=ops)).status == 422

    retried = await client.post(f"/v1/outbox/{ids['failed'][0]}/retry", headers=ops,
                                data=json.dumps({"reason": "address corrected upstream"}))
    assert retried.status == 200 and (await retried.json())["status"] == "queued"
    refused = await client.post(f"/v1/outbox/{ids['delivered'][0]}/retry", headers=ops)
    assert refused.status == 409 and refused.content_type == "application/problem+json"
    assert (await client.post("/v1/outbox/999999/retry", headers=ops)).status == 404
    assert (await client.post("/v1/outbox/abc/retry", headers=ops)).status == 404

    dry = await client.post("/v1/outbox/requeue", headers=ops, data=json.dumps({"status": "dead", "dry_run": True}))
    assert await dry.json() == {"requeued": 0, "ids": ids["dead"], "dry_run": True}
    requeued = await client.post("/v1/outbox/requeue", headers=ops, data=json.dumps(
        {"status": ["dead"], "since": (T0 + timedelta(minutes=30)).isoformat(), "reason": "outage over"}))
    assert await requeued.json() == {"requeued": 1, "ids": [ids["dead"][0]], "dry_run": False}
    async with runtime.db.read() as session:
        note = await session.scalar(select(Attempt.error).where(Attempt.notification_id == ids["dead"][0],
                                                                Attempt.outcome == "requeued"))
    assert note.startswith("requeued (was dead): by API key 'test-") and note.endswith(": outage over")
    # An empty status list (or one naming nothing) would requeue everything that needs attention.
    for bad in ({"status": "sent"}, {}, {"status": "dead", "limit": 0}, {"status": "dead", "colour": 1},
                {"status": []}, {"status": ""}, {"status": " , "}, {"status": ["dead", ""]}):
        assert (await client.post("/v1/outbox/requeue", headers=ops, data=json.dumps(bad))).status == 422, bad

    admin = bearer(await admin_key(runtime, ["admin"]))
    assert (await client.get("/v1/outbox", headers=admin)).status == 200
    reader = bearer(await admin_key(runtime, ["protocols:read"]))
    assert (await client.get("/v1/outbox", headers=reader)).status == 403
    assert (await client.post("/v1/outbox/requeue", headers=reader, data="{}")).status == 403


async def test_the_command_line(runtime: Runtime, ids, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEWAY_DATABASE__URL", runtime.settings.database_url)

    async def cli(*argv: str) -> int:
        return await asyncio.to_thread(main, list(argv))

    assert await cli("outbox", "list", "--status", "dead", "--format", "json") == 0
    assert [i["id"] for i in json.loads(capsys.readouterr().out)] == ids["dead"][::-1]
    assert await cli("outbox", "list") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["ID", "STATUS", "CHANNEL"] and len(table) == 7
    assert await cli("outbox", "retry", str(ids["dead"][0]), "--reason", "fixed") == 0
    assert capsys.readouterr().out.startswith(f"notification {ids['dead'][0]} queued again")
    assert await cli("outbox", "retry", str(ids["delivered"][0])) == 1
    assert "is delivered" in capsys.readouterr().err
    assert await cli("outbox", "requeue", "--status", "dead,failed", "--dry-run") == 0
    assert capsys.readouterr().out.strip() == f"would queue again: 2 notifications ({ids['failed'][0]}, {ids['dead'][1]})"
    assert await cli("outbox", "requeue", "--status", "dead", "--since", "2026-11-22T15:00:00Z") == 0
    assert capsys.readouterr().out.strip() == "queued again: 0 notifications"
    assert await cli("outbox", "requeue", "--status", "sent") == 2
    assert await cli("outbox", "requeue", "--status", "dead", "--since", "yesterday") == 2
