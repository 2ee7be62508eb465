"""WhatsApp: approved templates outside the 24-hour window and free text inside it, receipts up to
`read`, inbound WhatsApp answered by WhatsApp, consent, and fallback chains across channels.

Real HTTP into the gateway, the real Twilio SDK against the local fake of Twilio's API (its
WhatsApp half: `whatsapp:` addresses, Content templates, 63xxx errors), Twilio's own
RequestValidator for the webhooks' signatures; SQLite and PostgreSQL. Time is the test's clock.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.config import PACKAGE_DIR
from gateway.rendering.whatsapp import approval_text
from gateway.store.models import InboundMessage, WhatsAppConsent
from tests.fakes.twilio_api import FakeTwilio, Posted
from tests.helpers import FixedClock, admin_key, make_settings, message_sid, notifications_where, opened_event

PUBLIC = "https://gw.example.com"
OURS = "whatsapp:+15005550006"
SID = "HX" + "0123456789abcdef" * 2
NOW = datetime(2026, 11, 22, 15, 0, tzinfo=timezone.utc)
CONSUMER = "+5511987654321"
CE = "application/cloudevents+json"


def templates_with_sid(tmp_path: Path) -> Path:
    """The shipped templates, with a Content SID for protocol_opened in pt-BR (as a company adds its own)."""
    folder = tmp_path / "templates"
    shutil.copytree(PACKAGE_DIR / "templates", folder)
    with open(folder / "protocol_opened" / "template.toml", "a", encoding="utf-8") as f:
        f.write(f'\n[whatsapp.content_sid]\npt-BR = "{SID}"\n')
    return folder


class WA:
    def __init__(self, runtime: Runtime, client: TestClient, key: str, twilio: FakeTwilio, clock: FixedClock) -> None:
        self.runtime, self.client, self.key, self.twilio, self.clock = runtime, client, key, twilio, clock

    async def event(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = await self.client.post("/v1/events", data=json.dumps(body),
                                   headers={"Authorization": f"Bearer {self.key}", "Content-Type": CE})
        return r.status, await r.json()

    async def open(self, event_id: str = "o1", **data: Any) -> str:
        data.setdefault("consumer", {"name": "Maria Silva", "phone": CONSUMER, "whatsapp": CONSUMER})
        data.setdefault("notify", ["whatsapp"])
        status, body = await self.event(opened_event(event_id, **data))
        assert status == 202, body
        return body["protocol"]["number"]

    async def update(self, number: str, event_id: str, message: str) -> None:
        status, body = await self.event({"specversion": "1.0", "id": event_id, "source": "urn:test:crm",
                                         "type": "protocol.updated", "data": {"number": number, "message": message}})
        assert status == 202, body

    async def twilio_post(self, path_qs: str, form: dict[str, str]) -> int:
        form = {"AccountSid": self.twilio.account_sid, **form}
        signature = RequestValidator(self.twilio.auth_token).compute_signature(PUBLIC + path_qs, form)
        r = await self.client.post(path_qs, data=form, headers={"X-Twilio-Signature": signature})
        return r.status

    async def whatsapp_in(self, body: str, label: str, from_: str = CONSUMER) -> None:
        status = await self.twilio_post("/v1/webhooks/twilio/inbound", {
            "MessageSid": message_sid(label), "From": f"whatsapp:{from_}", "To": OURS, "Body": body})
        assert status == 200
        self.twilio.sessions.add(from_)

    async def receipt(self, posted: Posted, status: str, code: int | None = None) -> None:
        callback = posted.form["StatusCallback"]
        assert callback.startswith(PUBLIC)
        assert await self.twilio_post(callback[len(PUBLIC):], self.twilio.receipt(posted, status, code)) == 204

    async def deliver(self) -> None:
        await self.runtime.dispatcher.run_until_idle()

    async def notifications(self, **where: Any) -> list[Any]:
        return await notifications_where(self.runtime, **where)

    def posts(self, channel: str) -> list[Posted]:
        return [p for p in self.twilio.messages if p.form.get("To", "").startswith("whatsapp:") == (channel == "whatsapp")]


def wa_settings(tmp_path: Path, db_url: str, twilio: FakeTwilio, **sections: Any):
    account = {"account_sid": twilio.account_sid, "auth_token": twilio.auth_token, "api_base_url": twilio.base_url}
    return make_settings(
        tmp_path, db_url,
        sms={"transport": "twilio", "twilio": {**account, "from": "+15005550006"}},
        whatsapp={"transport": "twilio", "twilio": {"from": OURS}},  # the account is SMS's
        http={"public_url": PUBLIC},
        templates={"dir": str(templates_with_sid(tmp_path))},
        **sections,
    )


async def _start(settings, twilio: FakeTwilio) -> tuple[WA, TestClient]:
    clock = FixedClock(NOW)
    runtime = build_runtime(settings, clock=clock)
    await prepare(runtime)
    client = TestClient(TestServer(web_app(runtime, run_dispatcher=False)))
    await client.start_server()
    return WA(runtime, client, await admin_key(runtime), twilio, clock), client


@pytest.fixture
async def wa(tmp_path: Path, db_url: str, twilio: FakeTwilio) -> AsyncIterator[WA]:
    gateway, client = await _start(wa_settings(tmp_path, db_url, twilio), twilio)
    yield gateway
    await client.close()


def approve(wa: WA, notification: Any) -> None:
    """Register at the fake the approved body of protocol_opened (what operations submit to Meta)."""
    wa.twilio.content_templates[SID] = approval_text(notification.body_text,
                                                     notification.whatsapp_content["variables"])


# Sending


async def test_outside_the_window_the_opening_goes_as_the_approved_template_and_reads_as_recorded(wa):
    number = await wa.open()
    [message] = await wa.notifications(channel="whatsapp")
    assert message.whatsapp_content["content_sid"] == SID
    variables = message.whatsapp_content["variables"]
    assert number in variables.values()
    approve(wa, message)
    await wa.deliver()
    [posted] = wa.posts("whatsapp")
    assert posted.form["To"] == f"whatsapp:{CONSUMER}" and posted.form["From"] == OURS
    assert posted.form["ContentSid"] == SID and "Body" not in posted.form
    assert json.loads(posted.form["ContentVariables"]) == variables
    assert posted.form["StatusCallback"] == f"{PUBLIC}/v1/webhooks/twilio/status?notification={message.id}"
    # What the consumer reads (the approved body, filled) is what the record holds.
    [sent] = await wa.notifications(channel="whatsapp")
    assert sent.status == "sent" and sent.provider_id == posted.sid
    filled = wa.twilio.content_templates[SID]
    for key, value in variables.items():
        filled = filled.replace(f"{{{{{key}}}}}", value)
    assert filled == sent.body_text


async def test_receipts_go_forward_to_read_and_never_back(wa):
    await wa.open()
    approve(wa, (await wa.notifications(channel="whatsapp"))[0])
    await wa.deliver()
    [posted] = wa.posts("whatsapp")
    await wa.receipt(posted, "delivered")
    [n] = await wa.notifications(channel="whatsapp")
    assert n.status == "delivered" and n.delivered_at == NOW
    wa.clock.advance(timedelta(minutes=3))
    await wa.receipt(posted, "read")
    await wa.receipt(posted, "delivered")  # late and out of order: changes nothing
    await wa.receipt(posted, "sent")
    [n] = await wa.notifications(channel="whatsapp")
    assert n.status == "read" and n.delivered_at == NOW


async def test_a_read_receipt_before_its_delivered_one_counts_as_both(wa):
    await wa.open()
    approve(wa, (await wa.notifications(channel="whatsapp"))[0])
    await wa.deliver()
    await wa.receipt(wa.posts("whatsapp")[0], "read")
    [n] = await wa.notifications(channel="whatsapp")
    assert n.status == "read" and n.delivered_at == NOW


async def test_inbound_whatsapp_is_answered_by_whatsapp_as_free_text_and_opens_the_window(wa):
    number = await wa.open()
    approve(wa, (await wa.notifications(channel="whatsapp"))[0])
    await wa.deliver()
    wa.clock.advance(timedelta(hours=1))
    await wa.whatsapp_in(f"historico {number}", "in-1")
    async with wa.runtime.db.read() as session:
        [inbound] = (await session.scalars(select(InboundMessage))).all()
    assert inbound.channel == "whatsapp" and inbound.from_phone == CONSUMER
    await wa.deliver()
    reply = wa.posts("whatsapp")[-1]
    assert reply.form["To"] == f"whatsapp:{CONSUMER}" and "ContentSid" not in reply.form
    assert number in reply.form["Body"]
    assert wa.twilio.outcome(reply) == ("read", None)  # in the window: Twilio delivers free text
    assert wa.posts("sms") == []  # answered by the channel it came by, not by SMS

    # Within 24 hours of the consumer's message an update goes as free text too...
    wa.clock.advance(timedelta(hours=23))
    await wa.update(number, "u1", "Pedimos o estorno à área financeira.")
    await wa.deliver()
    assert "Pedimos o estorno" in wa.posts("whatsapp")[-1].form["Body"]
    # ...and after them it cannot: protocol_updated has no approved template here, so it fails
    # before any call and its chain goes on by SMS.
    wa.clock.advance(timedelta(hours=1, seconds=1))
    calls = len(wa.twilio.messages)
    await wa.update(number, "u2", "O estorno foi feito.")
    await wa.deliver()
    [late] = [n for n in await wa.notifications(channel="whatsapp", template="protocol_updated") if n.status == "failed"]
    assert late.error_code == "no_template"
    [sms] = await wa.notifications(channel="sms", template="protocol_updated")
    assert sms.fallback_of == late.id and sms.reason == "fallback: whatsapp failed (no_template)"
    assert [p.form["To"] for p in wa.twilio.messages[calls:]] == [CONSUMER]  # the SMS only


async def test_not_a_whatsapp_number_moves_down_the_chain_to_sms_then_email(wa):
    wa.twilio.not_whatsapp.add("7654321")
    number = await wa.open(consumer={"phone": CONSUMER, "whatsapp": CONSUMER, "email": "maria@example.com"},
                  notify=["whatsapp"])
    approve(wa, (await wa.notifications(channel="whatsapp"))[0])
    await wa.deliver()
    [posted] = wa.posts("whatsapp")
    assert wa.twilio.outcome(posted) == ("failed", 63003)
    await wa.receipt(posted, "failed", 63003)
    [whatsapp] = await wa.notifications(channel="whatsapp")
    assert whatsapp.status == "failed" and whatsapp.error_code == "63003"
    [sms] = await wa.notifications(channel="sms")
    assert sms.fallback_of == whatsapp.id and sms.reason == "fallback: whatsapp failed (63003)"
    await wa.deliver()
    [sms_post] = wa.posts("sms")
    await wa.receipt(sms_post, "undelivered", 30006)
    [email] = await wa.notifications(channel="email")
    assert email.fallback_of == sms.id and email.template == "sms_fallback"
    assert "por SMS" in email.body_text and sms.body_text in email.body_text
    # Every step, with its reason, in the export.
    headers = {"Authorization": f"Bearer {wa.key}"}
    export = await (await wa.client.get(f"/v1/protocols/{number}/export", headers=headers)).json()
    steps = [(n["channel"], n["status"], n["fallback_of"], n["reason"]) for n in export["record"]["notifications"]]
    assert steps == [("whatsapp", "failed", None, None),
                     ("sms", "undelivered", whatsapp.id, "fallback: whatsapp failed (63003)"),
                     ("email", "queued", sms.id, "fallback: sms undelivered (30006)")]


async def test_a_configured_chain_goes_from_whatsapp_to_email_with_the_whatsapp_text(tmp_path, db_url, twilio):
    settings = wa_settings(tmp_path, db_url, twilio, fallback={"chains": {"protocol_opened": ["whatsapp", "email"]}})
    wa, client = await _start(settings, twilio)
    try:
        await wa.open(consumer={"phone": CONSUMER, "email": "maria@example.com"}, notify=["whatsapp"])
        [whatsapp] = await wa.notifications(channel="whatsapp")
        assert whatsapp.recipient == CONSUMER  # no consumer.whatsapp: the phone
        approve(wa, whatsapp)
        await wa.deliver()
        await wa.receipt(wa.posts("whatsapp")[0], "undelivered", 63024)
        assert await wa.notifications(channel="sms") == []  # not in this template's chain
        [email] = await wa.notifications(channel="email")
        assert email.fallback_of == whatsapp.id and email.reason == "fallback: whatsapp undelivered (63024)"
        assert "por WhatsApp" in email.body_text
        assert "*" not in email.body_text  # WhatsApp's *bold* is not shown as stars in an email
    finally:
        await client.close()


async def test_no_delivery_receipt_in_time_and_not_read_in_time_each_take_the_next_step(tmp_path, db_url, twilio):
    settings = wa_settings(tmp_path, db_url, twilio, fallback={"no_receipt_after": "30m", "not_read_after": "2h"})
    wa, client = await _start(settings, twilio)
    try:
        await wa.open("o1")
        await wa.open("o2", consumer={"phone": "+5511912345678", "whatsapp": "+5511912345678"})
        approve(wa, (await wa.notifications(channel="whatsapp"))[0])
        await wa.deliver()
        first, second = wa.posts("whatsapp")
        await wa.receipt(second, "delivered")
        sweep = wa.runtime.hooks.chains.sweep
        wa.clock.advance(timedelta(minutes=29))
        assert await wa.runtime.db.transact(lambda s: sweep(s, at=wa.clock.now)) == 0
        wa.clock.advance(timedelta(minutes=2))
        assert await wa.runtime.db.transact(lambda s: sweep(s, at=wa.clock.now)) == 1
        [sms] = await wa.notifications(channel="sms")
        assert sms.reason == "fallback: no delivery receipt within 30 min" and sms.recipient == CONSUMER
        wa.clock.advance(timedelta(hours=2))
        assert await wa.runtime.db.transact(lambda s: sweep(s, at=wa.clock.now)) == 1
        sms_2 = (await wa.notifications(channel="sms"))[1]
        assert sms_2.reason == "fallback: whatsapp not read within 120 min" and sms_2.recipient == "+5511912345678"
        assert await wa.runtime.db.transact(lambda s: sweep(s, at=wa.clock.now)) == 0  # once each
    finally:
        await client.close()


# Consent


async def test_consent_is_recorded_and_stop_on_whatsapp_stops_proactive_whatsapp_until_start(tmp_path, db_url, twilio):
    settings = wa_settings(tmp_path, db_url, twilio, fallback={"chains": {"default": ["sms", "whatsapp"]}})
    wa, client = await _start(settings, twilio)
    try:
        given = "2026-11-20T10:00:00Z"
        await wa.open("o1", consumer={"phone": CONSUMER, "whatsapp": CONSUMER,
                                      "whatsapp_opt_in": {"at": given, "via": "app signup form"}},
                      notify=["sms"])
        async with wa.runtime.db.read() as session:
            consent = await session.get(WhatsAppConsent, CONSUMER)
        assert consent.opted_in_at == datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
        assert consent.opted_in_via == "app signup form" and consent.opted_out_at is None

        await wa.whatsapp_in("PARAR", "stop-1")
        assert wa.posts("whatsapp") == []  # a STOP is recorded, not answered
        async with wa.runtime.db.read() as session:
            consent = await session.get(WhatsAppConsent, CONSUMER)
        assert consent.opted_out_at == NOW and consent.opted_out_keyword == "PARAR"
        # The SMS is undelivered; the chain's next step would be WhatsApp, which the consumer stopped.
        await wa.deliver()
        await wa.receipt(wa.posts("sms")[0], "undelivered", 30006)
        assert await wa.notifications(channel="whatsapp") == []

        await wa.whatsapp_in("START", "start-1")
        async with wa.runtime.db.read() as session:
            consent = await session.get(WhatsAppConsent, CONSUMER)
        assert consent.opted_out_at is None and consent.opted_in_via == "whatsapp: START"
    finally:
        await client.close()


# Input and settings


async def test_notify_by_whatsapp_needs_a_whatsapp_number_or_a_phone(wa):
    status, body = await wa.event(opened_event("bad", consumer={"email": "maria@example.com"}, notify=["whatsapp"]))
    assert status == 422
    assert {"field": "data.consumer.whatsapp", "message": "required to notify by whatsapp"} in body["errors"]
    status, body = await wa.event(opened_event("bad2", consumer={"whatsapp": "not a phone"}, notify=["whatsapp"]))
    assert status == 422 and body["errors"][0]["field"] == "data.consumer.whatsapp"


async def test_a_whatsapp_number_alone_means_whatsapp_by_default_and_the_phone_alone_does_not(wa):
    await wa.open("o1", consumer={"whatsapp": "+5511912345678"}, notify=None)
    await wa.open("o2", consumer={"phone": CONSUMER}, notify=None)
    assert [(n.channel, n.recipient) for n in await wa.notifications()] == [
        ("whatsapp", "+5511912345678"), ("sms", CONSUMER)]


async def test_the_file_transport_writes_each_message_with_how_it_would_go(tmp_path, db_url):
    runtime = build_runtime(make_settings(tmp_path, db_url), clock=FixedClock(NOW))
    await prepare(runtime)
    try:
        from gateway.protocols.schemas import EVENT_DATA
        from gateway.protocols.service import IncomingEvent

        data = opened_event("f1", consumer={"whatsapp": CONSUMER}, notify=["whatsapp"])["data"]
        await runtime.service.handle(IncomingEvent(source="urn:test:crm", id="f1", type="protocol.opened", time=None,
                                                   data=EVENT_DATA["protocol.opened"].model_validate(data)),
                                     received_at=NOW)
        await runtime.dispatcher.run_until_idle()
        path = tmp_path / "whatsapp.jsonl"
        [line] = [json.loads(x) for x in path.read_text("utf-8").splitlines()]
        [n] = await notifications_where(runtime, channel="whatsapp")
        assert line["to"] == CONSUMER and line["body"] == n.body_text and n.status == "sent"
        # The shipped templates carry no Content SID (each company registers its own): the file says
        # the message would need one outside the window.
        assert line["kind"] == "text" and line["outside_window"] is True
        assert os.stat(path).st_mode & 0o777 == 0o600
    finally:
        await runtime.aclose()


async def test_several_whatsapp_senders_fail_over_in_order_with_the_sender_on_record(tmp_path, db_url, twilio):
    """Issue 17's provider lists for WhatsApp: a sender whose account refuses moves the send to the next."""
    settings = wa_settings(tmp_path, db_url, twilio)
    settings = settings.model_copy(update={"whatsapp": settings.whatsapp.model_validate({
        "transport": "twilio", "twilio": [
            {"name": "broken", "from": OURS, "auth_token": "a-revoked-token"},  # Twilio answers 401
            {"name": "backup", "from": "whatsapp:+15005550007"},
        ]})})
    wa, client = await _start(settings, twilio)
    try:
        await wa.open()
        approve(wa, (await wa.notifications(channel="whatsapp"))[0])
        await wa.deliver()
        refused, sent = wa.posts("whatsapp")
        assert refused.answer.status == 401 and sent.form["From"] == "whatsapp:+15005550007"
        [n] = await wa.notifications(channel="whatsapp")
        assert n.status == "sent" and n.provider == "backup"
        states = (await (await wa.client.get("/readyz")).json())["providers"]["whatsapp"]
        assert set(states) == {"broken", "backup"}
    finally:
        await client.close()


async def test_an_inbound_whatsapp_message_to_a_number_not_ours_is_refused(wa):
    status = await wa.twilio_post("/v1/webhooks/twilio/inbound", {
        "MessageSid": message_sid("elsewhere"), "From": f"whatsapp:{CONSUMER}", "To": "whatsapp:+15005550099",
        "Body": "PROTOCOLO"})
    assert status == 403
    # An SMS to the WhatsApp number is not ours either: each channel's own sender.
    status = await wa.twilio_post("/v1/webhooks/twilio/inbound", {
        "MessageSid": message_sid("sms-to-wa"), "From": CONSUMER, "To": "+15005550099", "Body": "PROTOCOLO"})
    assert status == 403
    async with wa.runtime.db.read() as session:
        assert (await session.scalars(select(InboundMessage))).all() == []
