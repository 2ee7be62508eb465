"""Who asked, and where the history went (issue 14, item 2; DESIGN "Keys bound to sources, and
addresses not on record").

- Every stored event records the name of the key that posted it; the caller cannot set it.
- A resend `to` an address not on record needs scope `protocols:write`: a key with
  `events:write` alone gets 403, as an event and over REST.
- When a resend goes to such an address, the consumer's contacts on record are told, with the
  address masked (template `history_sent_elsewhere`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.cli import main
from gateway.config.settings import PACKAGE_DIR
from gateway.rendering.numbers import grouped
from gateway.store.models import Event, Notification
from tests.helpers import FixedClock, admin_key, make_settings, opened_event

CE = "application/cloudevents+json"
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
ELSEWHERE = "mallory@attacker.example"


class Gateway:
    def __init__(self, runtime: Runtime, client: TestClient) -> None:
        self.runtime, self.client = runtime, client

    async def post(self, key: str, body, content_type: str = CE, path: str = "/v1/events", **headers: str):
        r = await self.client.post(path, data=json.dumps(body),
                                   headers={"Authorization": f"Bearer {key}", "Content-Type": content_type, **headers})
        return r.status, await r.json()

    async def open(self, key: str, event_id: str = "o1") -> str:
        status, body = await self.post(key, opened_event(event_id))
        assert status == 202, body
        return body["protocol"]["number"]

    async def resend_event(self, key: str, number: str, event_id: str = "rs1", **data):
        return await self.post(key, {"specversion": "1.0", "id": event_id, "source": "urn:test:crm",
                                     "type": "protocol.resend_requested", "data": {"number": number, **data}})

    async def notifications(self) -> list[Notification]:
        async with self.runtime.db.read() as session:
            return list((await session.scalars(select(Notification).order_by(Notification.id))).all())


@pytest.fixture
async def gw(tmp_path, db_url) -> AsyncIterator[Gateway]:
    runtime = build_runtime(make_settings(tmp_path, db_url, sweeps={"enabled": False}), clock=FixedClock(NOW))
    await prepare(runtime)
    async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
        yield Gateway(runtime, client)
    await runtime.aclose()


async def test_every_stored_event_records_the_key_that_posted_it_and_the_caller_cannot_set_it(gw):
    crm = await admin_key(gw.runtime, ["events:write", "protocols:write"], name="crm-acme")
    reader = await admin_key(gw.runtime, ["protocols:read"], name="auditor")
    forged = {**opened_event("o1"), "key": "someone-else"}  # an extension attribute is not the key
    status, body = await gw.post(crm, forged)
    assert status == 202, body
    number = body["protocol"]["number"]
    status, body = await gw.post(crm, opened_event("o2", key="someone-else"))
    assert status == 422 and body["errors"][0]["field"] == "data.key"
    status, _ = await gw.post(crm, {"channel": "email"}, "application/json", f"/v1/protocols/{number}/resend")
    assert status == 202

    doc = await (await gw.client.get(f"/v1/protocols/{number}", headers={"Authorization": f"Bearer {reader}"})).json()
    assert [(e["type"], e["key"]) for e in doc["events"]] == [
        ("protocol.opened", "crm-acme"), ("protocol.resend_requested", "crm-acme")]
    export = await (await gw.client.get(f"/v1/protocols/{number}/export",
                                        headers={"Authorization": f"Bearer {reader}"})).json()
    assert [e["key"] for e in export["record"]["events"]] == ["crm-acme", "crm-acme"]


async def test_an_events_write_key_cannot_send_to_an_address_not_on_record(gw):
    crm = await admin_key(gw.runtime, ["events:write"], name="crm")
    number = await gw.open(crm)
    before = len(await gw.notifications())

    status, body = await gw.resend_event(crm, number, "rs1", channel="email", to=ELSEWHERE, history=True)
    assert status == 403 and body["type"] == "/problems/forbidden" and "protocols:write" in body["detail"], body
    status, body = await gw.resend_event(crm, number, "rs2", channel="sms", to="+5521998877665", history=True)
    assert status == 403, body
    status, _ = await gw.post(crm, {"channel": "email", "to": ELSEWHERE, "history": True}, "application/json",
                              f"/v1/protocols/{number}/resend")
    assert status == 403
    assert len(await gw.notifications()) == before  # nothing queued, nothing recorded
    async with gw.runtime.db.read() as session:
        assert (await session.scalars(select(Event.type))).all() == ["protocol.opened"]

    # The consumer's own contacts, however written, need no more than events:write.
    status, body = await gw.resend_event(crm, number, "rs3", channel="email", to="Maria@Example.com", history=True)
    assert status == 202, body
    status, body = await gw.resend_event(crm, number, "rs4", channel="sms", history=True)
    assert status == 202, body
    assert all(n.template != "history_sent_elsewhere" for n in await gw.notifications())


async def test_the_contacts_on_record_are_told_where_the_history_went(gw):
    ops = await admin_key(gw.runtime, ["events:write", "protocols:write"], name="sac-console")
    number = await gw.open(ops)
    status, body = await gw.resend_event(ops, number, "rs1", channel="email", to=ELSEWHERE, history=True)
    assert status == 202, body

    queued = [n for n in await gw.notifications() if n.event_id == max(n.event_id for n in await gw.notifications())]
    history, *notices = queued
    assert (history.template, history.recipient) == ("protocol_history", ELSEWHERE)
    assert [(n.template, n.channel, n.recipient) for n in notices] == [
        ("history_sent_elsewhere", "email", "maria@example.com"),
        ("history_sent_elsewhere", "sms", "+5511987654321")]
    assert [n.reason for n in notices] == ["a resend went to an address not on record"] * 2  # the console shows why
    for notice in notices:
        assert "m***@attacker.example" in notice.body_text and ELSEWHERE not in notice.body_text
        assert (grouped(number) if notice.channel == "email" else number) in notice.body_text
    assert "o histórico completo do seu protocolo para o e-mail m***@attacker.example" in notices[0].body_text
    assert [n["id"] for n in body["notifications"]] == [history.id] + [n.id for n in notices]


def test_the_notice_template_passes_the_strict_check_in_every_locale():
    assert main(["templates", "check", "--strict", "--dir", str(PACKAGE_DIR / "templates"),
                 "history_sent_elsewhere"]) == 0
