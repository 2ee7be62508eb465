"""Whenever the consumer asks: resend and history, inbound SMS, receipts, fallback, limits,
outbound webhooks. Real HTTP into the gateway, the real Twilio SDK against the fake API,
Twilio's own RequestValidator for signatures; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.delivery.channels import webhook as signing
from gateway.store.models import ConsumerRequest, InboundMessage, Notification, OptOut
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import admin_key, free_port, make_settings, message_sid, notifications_where, opened_event

PUBLIC = "https://gw.example.com"
CE = "application/cloudevents+json"


def gateway_settings(tmp_path: Path, db_url: str, twilio: FakeTwilio, twilio_timeout: str = "15s", **sections: Any):
    return make_settings(
        tmp_path, db_url,
        sms={"transport": "twilio", "twilio": {"account_sid": twilio.account_sid, "auth_token": twilio.auth_token,
                                               "from": "+15005550006", "api_base_url": twilio.base_url,
                                               "timeout": twilio_timeout}},
        http={"public_url": PUBLIC},
        **sections,
    )


class Gateway:
    """One gateway process: its runtime and an HTTP client to it."""

    def __init__(self, runtime: Runtime, client: TestClient, key: str, twilio: FakeTwilio) -> None:
        self.runtime, self.client, self.key, self.twilio = runtime, client, key, twilio

    def headers(self, content_type: str = CE) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": content_type}

    async def event(self, body: dict) -> tuple[int, dict]:
        r = await self.client.post("/v1/events", data=json.dumps(body), headers=self.headers())
        return r.status, await r.json()

    async def open(self, event_id: str = "o1", **data: Any) -> str:
        status, body = await self.event(opened_event(event_id, **data))
        assert status == 202, body
        return body["protocol"]["number"]

    async def resend(self, number: str, **body: Any):
        return await self.client.post(f"/v1/protocols/{number}/resend", data=json.dumps(body),
                                      headers=self.headers("application/json"))

    async def twilio_post(self, path: str, form: dict[str, str], *, signature: str | None = None):
        form = {"AccountSid": self.twilio.account_sid, **form}  # as Twilio sends every webhook
        url = PUBLIC + path
        if signature is None:
            signature = RequestValidator(self.twilio.auth_token).compute_signature(url, form)
        return await self.client.post(path, data=form, headers={"X-Twilio-Signature": signature})

    async def sms_in(self, from_: str, body: str, sid: str) -> None:
        r = await self.twilio_post("/v1/webhooks/twilio/inbound", {"MessageSid": message_sid(sid), "From": from_,
                                                                    "To": "+15005550006", "Body": body})
        assert r.status == 200 and "<Response>" in await r.text()

    async def notifications(self, **where: Any) -> list[Notification]:
        return await notifications_where(self.runtime, **where)

    async def deliver(self) -> None:
        await self.runtime.dispatcher.run_until_idle()


async def _gateway(settings, twilio: FakeTwilio, key: str | None = None) -> tuple[Gateway, TestClient]:
    runtime = build_runtime(settings)
    await prepare(runtime)
    # The test drives delivery itself (deliver()), so no dispatcher runs in the background.
    client = TestClient(TestServer(web_app(runtime, run_dispatcher=False)))
    await client.start_server()
    return Gateway(runtime, client, key or await admin_key(runtime), twilio), client


@pytest.fixture
async def gw(tmp_path: Path, db_url: str, twilio: FakeTwilio) -> AsyncIterator[Gateway]:
    gateway, client = await _gateway(gateway_settings(tmp_path, db_url, twilio), twilio)
    yield gateway
    await client.close()


# Resend and history


async def test_changes_reach_the_consumer_by_the_channels_chosen_at_opening(gw):
    number = await gw.open(notify=["email"])
    for event_id, event_type, data in [
        ("u1", "protocol.updated", {"message": "Pedimos o estorno à área financeira."}),
        ("r1", "protocol.resolved", {"resolution": "Estornamos R$ 49,90 na próxima fatura."}),
        ("r2", "protocol.reopened", {"reason": "O estorno não apareceu."}),
    ]:
        status, body = await gw.event({"specversion": "1.0", "id": event_id, "source": "urn:test:crm",
                                       "type": event_type, "data": {"number": number, **data}})
        assert status == 202
        assert [n["channel"] for n in body["notifications"]] == ["email"]
    templates = [n.template for n in await gw.notifications()]
    assert templates == ["protocol_opened", "protocol_updated", "protocol_resolved", "protocol_reopened"]
    resolved = (await gw.notifications(template="protocol_resolved"))[0]
    assert "Estornamos R$ 49,90" in resolved.body_text and number in resolved.subject


async def test_history_by_email_lists_every_event_and_the_request_is_fulfilled_when_sent(gw):
    number = await gw.open()
    await gw.event({"specversion": "1.0", "id": "r1", "source": "urn:test:crm", "type": "protocol.resolved",
                    "data": {"number": number, "resolution": "Estornamos o valor cobrado."}})
    r = await gw.resend(number, channel="email", history=True, to="outro@example.com")
    assert r.status == 202
    (history,) = await gw.notifications(template="protocol_history")
    assert history.recipient == "outro@example.com"
    assert "Cobrança indevida" in history.body_text and "Estornamos o valor cobrado." in history.body_text
    async with gw.runtime.db.read() as session:
        (request,) = (await session.scalars(select(ConsumerRequest))).all()
    assert request.kind == "history" and request.address == "outro@example.com"
    # Decreto 11.034 art. 12 §2: within 5 calendar days, to the end of the 5th day in São Paulo.
    due = request.due_at.astimezone(ZoneInfo("America/Sao_Paulo"))
    requested = request.requested_at.astimezone(ZoneInfo("America/Sao_Paulo"))
    assert (due.date() - requested.date()).days == 5 and (due.hour, due.minute, due.second) == (23, 59, 59)
    assert request.fulfilled_at is None and request.notification_id == history.id
    await gw.deliver()
    async with gw.runtime.db.read() as session:
        request = await session.get(ConsumerRequest, request.id)
    assert request.fulfilled_at is not None
    # The address given for this message is on the protocol's record.
    doc = await (await gw.client.get(f"/v1/protocols/{number}", headers=gw.headers())).json()
    assert doc["events"][-1]["data"]["to"] == "outro@example.com"


async def test_a_bad_to_is_422_and_postal_mail_is_recorded_for_operations(gw):
    number = await gw.open()
    r = await gw.resend(number, channel="sms", to="+551133334444")  # a landline
    assert r.status == 422 and (await r.json())["errors"][0]["field"] == "to"
    r = await gw.resend(number, channel="mail", history=True)
    assert r.status == 202 and (await r.json())["notifications"] == []
    async with gw.runtime.db.read() as session:
        (request,) = (await session.scalars(select(ConsumerRequest))).all()
    assert request.channel == "mail" and request.fulfilled_at is None


# As sent: sms.transliterate is on by default, and "ç", "ã" are not GSM-7.
ATUALIZACAO = "Atualizacao"


async def _long_history(gw, number: str, updates: int) -> None:
    for i in range(updates):
        await gw.event({"specversion": "1.0", "id": f"u{i}", "source": "urn:test:crm", "type": "protocol.updated",
                        "data": {"number": number, "message": f"Atualização {i}: analisamos a fatura de outubro "
                                                              "e encaminhamos o caso ao setor financeiro."}})


async def test_a_long_history_asked_by_sms_goes_whole_by_sms_even_with_an_email_on_record(gw):
    number = await gw.open()
    await _long_history(gw, number, 8)
    await gw.resend(number, channel="sms", history=True)
    parts = await gw.notifications(template="protocol_history")
    assert len(parts) >= 2 and {p.channel for p in parts} == {"sms"}  # the channel the consumer chose
    cap = gw.runtime.settings.fallback.max_sms_segments
    assert all(number in p.body_text and p.segments <= cap for p in parts)
    text = "\n".join(p.body_text for p in parts)
    assert all(f"{ATUALIZACAO} {i}:" in text for i in range(8)) and "..." not in text


async def test_a_long_sms_history_without_email_is_split_between_entries(gw):
    number = await gw.open(consumer={"phone": "+5511987654321"})
    await _long_history(gw, number, 25)
    await gw.resend(number, channel="sms", history=True)
    parts = await gw.notifications(template="protocol_history")
    cap = gw.runtime.settings.fallback.max_sms_segments
    assert len(parts) >= 2 and all(p.channel == "sms" and p.segments <= cap for p in parts)
    text = "\n".join(p.body_text for p in parts)
    assert all(number in p.body_text for p in parts)  # every part says which protocol
    found = [i for i in range(25) if f"{ATUALIZACAO} {i}:" in text]
    assert found == list(range(25))  # every entry whole, in one part or another


async def test_resends_are_rate_limited_with_retry_after(gw):
    number = await gw.open()
    statuses = [(await gw.resend(number, channel="email")).status for _ in range(6)]
    assert statuses == [202] * 5 + [429]
    r = await gw.resend(number, channel="email")
    assert r.status == 429 and 0 < int(r.headers["Retry-After"]) <= 3600
    assert r.content_type == "application/problem+json"
    assert len(await gw.notifications(template="protocol_opened", channel="email")) == 1 + 5


async def test_rate_limits_hold_across_two_gateway_processes(tmp_path, db_url, twilio):
    settings = gateway_settings(tmp_path, db_url, twilio, limits={"resend_per_protocol": "3/1h"})
    first, c1 = await _gateway(settings, twilio)
    second, c2 = await _gateway(settings, twilio, key=first.key)  # same database, another runtime
    try:
        number = await first.open()
        statuses = []
        for gateway in (first, second, first, second):
            statuses.append((await gateway.resend(number, channel="email")).status)
        assert statuses == [202, 202, 202, 429]
    finally:
        await c1.close()
        await c2.close()


# Inbound SMS


async def test_a_phone_never_learns_another_phones_protocols(gw):
    mine = await gw.open("a", consumer={"phone": "+5511987654321", "email": "a@example.com"})
    theirs = await gw.open("b", subject="Segredo de outra pessoa", consumer={"phone": "+5521998877665"})
    await gw.sms_in("+5521998877665", f"HISTORICO {mine}", "SM1")
    await gw.sms_in("+5521998877665", "HISTORICO 20260101000000000", "SM2")  # does not exist
    await gw.sms_in("+5521998877665", "PROTOCOLO", "SM3")
    replies = await gw.notifications(recipient="+5521998877665", template="inbound_reply")
    assert len(replies) == 3
    foreign, unknown, listing = (r.body_text for r in replies)
    assert foreign == unknown  # nothing tells "someone else's" from "does not exist"
    assert mine not in foreign and "20260101000000000" not in unknown
    assert theirs in listing and mine not in listing and "Segredo de outra pessoa" in listing


async def test_the_owner_gets_the_history_of_their_protocol(gw):
    number = await gw.open()
    await gw.sms_in("+5511987654321", f"Histórico {number}", "SM9")
    (reply,) = await gw.notifications(template="protocol_history", channel="sms")
    assert number in reply.body_text and reply.recipient == "+5511987654321"


async def test_inbound_is_idempotent_rate_limited_and_stop_start_opt_out(tmp_path, db_url, twilio):
    gateway, client = await _gateway(gateway_settings(tmp_path, db_url, twilio,
                                                     limits={"inbound_per_phone": "2/1h"}), twilio)
    try:
        await gateway.open()
        await gateway.sms_in("+5511987654321", "PROTOCOLO", "SMa")
        await gateway.sms_in("+5511987654321", "PROTOCOLO", "SMa")  # Twilio retrying the same webhook
        await gateway.sms_in("+5511987654321", "PROTOCOLO", "SMb")
        await gateway.sms_in("+5511987654321", "PROTOCOLO", "SMc")  # over the limit: recorded, not answered
        assert len(await gateway.notifications(template="inbound_reply")) == 2
        await gateway.sms_in("+5511987654321", "PARAR", "SMd")
        async with gateway.runtime.db.read() as session:
            assert await session.get(OptOut, "+5511987654321") is not None
            assert await session.scalar(select(func.count()).select_from(InboundMessage)) == 4
        await gateway.sms_in("+5511987654321", "VOLTAR", "SMe")
        async with gateway.runtime.db.read() as session:
            assert await session.get(OptOut, "+5511987654321") is None
        assert len(await gateway.notifications(template="inbound_reply")) == 2  # STOP/START get no reply
    finally:
        await client.close()


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl"])
async def test_a_bad_or_missing_signature_is_403_and_nothing_happens(gw, signature):
    await gw.open()
    form = {"MessageSid": message_sid("x"), "From": "+5511987654321", "Body": "PROTOCOLO"}
    r = await gw.twilio_post("/v1/webhooks/twilio/inbound", form, signature=signature)
    assert r.status == 403 and r.content_type == "application/problem+json"
    r = await gw.twilio_post("/v1/webhooks/twilio/status?notification=1", {"MessageSid": message_sid("x"),
                                                                           "MessageStatus": "delivered"},
                             signature=signature)
    assert r.status == 403
    async with gw.runtime.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(InboundMessage)) == 0
    assert all(n.status == "queued" for n in await gw.notifications())


# Receipts and fallback


async def receipt(gw, notification_id: int, status: str, sid: str, code: str | None = None) -> None:
    form = {"MessageSid": sid, "MessageStatus": status}
    if code:
        form["ErrorCode"] = code
    r = await gw.twilio_post(f"/v1/webhooks/twilio/status?notification={notification_id}", form)
    assert r.status == 204


async def test_receipts_move_forward_only(gw):
    await gw.open(notify=["sms"])
    await gw.deliver()
    (sms,) = await gw.notifications(channel="sms")
    assert sms.status == "sent"
    await receipt(gw, sms.id, "delivered", sms.provider_id)
    await receipt(gw, sms.id, "sent", sms.provider_id)       # late and out of order
    await receipt(gw, sms.id, "undelivered", sms.provider_id, "30003")
    (sms,) = await gw.notifications(channel="sms")
    assert sms.status == "delivered" and sms.delivered_at is not None
    assert await gw.notifications(template="sms_fallback") == []


async def test_a_late_receipt_settles_an_unknown_outcome(tmp_path, db_url, twilio):
    gw, client = await _gateway(gateway_settings(tmp_path, db_url, twilio, twilio_timeout="200ms"), twilio)
    try:
        twilio.script(delay=5)
        await gw.open(notify=["sms"])
        await gw.deliver()
        (sms,) = await gw.notifications(channel="sms")
        assert sms.status == "unknown"
        await receipt(gw, sms.id, "delivered", message_sid("late"))
        (sms,) = await gw.notifications(channel="sms")
        assert sms.status == "delivered" and sms.provider_id == message_sid("late")
    finally:
        await client.close()


async def test_an_undelivered_sms_falls_back_to_email_once(gw):
    await gw.open(notify=["sms"])  # by SMS alone: the email did not carry it already
    await gw.deliver()
    (sms,) = await gw.notifications(channel="sms", template="protocol_opened")
    await receipt(gw, sms.id, "undelivered", sms.provider_id, "30006")
    await receipt(gw, sms.id, "failed", sms.provider_id, "30006")
    (fallback,) = await gw.notifications(template="sms_fallback")
    assert fallback.channel == "email" and fallback.recipient == "maria@example.com"
    assert fallback.fallback_of == sms.id and "undelivered (30006)" in fallback.reason
    assert sms.body_text in fallback.body_text  # the same content


async def test_stop_at_the_carrier_21610_falls_back_to_email(gw):
    gw.twilio.stopped_numbers.add("4321")
    await gw.open(notify=["sms"])  # by SMS alone: the email did not carry it already
    await gw.deliver()
    (sms,) = await gw.notifications(channel="sms", template="protocol_opened")
    assert sms.status == "failed" and sms.error_code == "21610"
    (fallback,) = await gw.notifications(template="sms_fallback")
    assert "21610" in fallback.reason


async def test_no_receipt_in_time_falls_back_to_email(gw):
    await gw.open(notify=["sms"])  # by SMS alone: the email did not carry it already
    await gw.deliver()
    (sms,) = await gw.notifications(channel="sms", template="protocol_opened")
    hooks = gw.runtime.hooks
    def sweep(at):
        return gw.runtime.db.transact(lambda session: hooks.chains.sweep(session, at=at))

    assert await sweep(sms.sent_at + timedelta(minutes=29)) == 0
    assert await sweep(sms.sent_at + timedelta(minutes=31)) == 1
    assert await sweep(sms.sent_at + timedelta(hours=2)) == 0
    (fallback,) = await gw.notifications(template="sms_fallback")
    assert "no delivery receipt within 30 min" in fallback.reason


# Outbound webhooks


async def test_statuses_are_posted_upstream_signed_and_retried(tmp_path, db_url, twilio):
    received: list[tuple[str, dict, str]] = []
    answers = [500]  # the first post fails: the outbox retries it

    async def upstream(request: web.Request) -> web.Response:
        body = await request.text()
        received.append((request.headers["Webhook-Signature"], json.loads(body), body))
        return web.Response(status=answers.pop(0) if answers else 204)

    app = web.Application()
    app.router.add_post("/hooks", upstream)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    settings = gateway_settings(tmp_path, db_url, twilio, webhooks={"url": f"http://127.0.0.1:{port}/hooks",
                                                                  "secret": "s3cret"})
    gateway, client = await _gateway(settings, twilio)
    try:
        await gateway.open(notify=["email"])
        await gateway.deliver()
        (hook,) = await gateway.notifications(channel="webhook")
        assert hook.status == "queued" and hook.error_code == "500"
        async with gateway.runtime.db.write() as session:  # due now, rather than in 5 s
            (await session.get(Notification, hook.id)).next_attempt_at = datetime.now(timezone.utc)
        await gateway.deliver()
        assert (await gateway.notifications(channel="webhook"))[0].status == "delivered"
        assert len(received) == 2
        signature, event, body = received[-1]
        assert signing.verify("s3cret", body, signature, now=datetime.now(timezone.utc).timestamp())
        assert not signing.verify("wrong", body, signature, now=datetime.now(timezone.utc).timestamp())
        assert event["type"] == "notification.sent" and event["data"]["notification"]["channel"] == "email"
        assert "maria" not in body  # no personal data leaves in a status event
    finally:
        await client.close()
        await runner.cleanup()
