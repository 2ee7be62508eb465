"""Evidence: a protocol's complete record with its digest; the record is append-only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import delete, select, update

from gateway.app import Runtime, prepare, web_app
from gateway.cli import main
from gateway.protocols.export import export_protocol, verify
from gateway.rendering.numbers import grouped
from gateway.protocols.schemas import OpenedData, UpdatedData
from gateway.protocols.service import IncomingEvent
from gateway.store.append_only import AppendOnlyViolation, allow_redaction
from gateway.store.models import Attempt, Event, Notification, ProviderCallback
from tests.helpers import admin_key, opened_event

T0 = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)


async def open_protocol(runtime: Runtime, event_id: str = "e1", **data) -> str:
    event = opened_event(event_id, **data)
    incoming = IncomingEvent(source=event["source"], id=event["id"], type=event["type"], time=T0,
                             data=OpenedData.model_validate(event["data"]))
    return (await runtime.service.handle(incoming, received_at=T0)).body["protocol"]["number"]


@pytest.fixture
async def number(runtime: Runtime) -> str:
    """A protocol whose email and SMS were sent, with a delivery receipt for the SMS."""
    await prepare(runtime)
    number = await open_protocol(runtime)
    await runtime.dispatcher.run_until_idle()
    async with runtime.db.write() as session:
        sms = await session.scalar(select(Notification).where(Notification.channel == "sms"))
        session.add(ProviderCallback(notification_id=sms.id, provider_id=sms.provider_id, status="delivered",
                                     payload={"MessageStatus": "delivered", "To": "+5511987654321"},
                                     received_at=T0 + timedelta(seconds=5)))
    return number


def recomputed(document: dict) -> str:
    """The README's recipe, word for word."""
    canonical = json.dumps(document["record"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def export(runtime: Runtime, number: str, at: datetime = T0) -> dict:
    return await export_protocol(runtime.db, number, now=at)


async def test_the_record_holds_everything_sent_and_said(runtime: Runtime, number: str) -> None:
    document = await export(runtime, number)
    assert document["format"] == "protocol-gateway.export/1" and document["exported_at"] == "2026-11-22T14:43:00Z"
    record = document["record"]
    assert record["protocol"]["number"] == number and record["protocol"]["consumer_email"] == "maria@example.com"
    assert record["protocol"]["opened_at"] == "2026-11-22T14:43:00Z"
    [event] = record["events"]
    assert event["type"] == "protocol.opened" and event["data"]["subject"] == "Cobrança indevida na fatura de outubro"
    by_channel = {n["channel"]: n for n in record["notifications"]}
    email, sms = by_channel["email"], by_channel["sms"]
    # the body shows the number grouped to be read aloud; the subject whole
    assert number in email["subject"] and grouped(number) in email["body_text"]
    assert number in re.sub(r"<[^>]+>", "", email["body_html"])
    assert email["recipient"] == "maria@example.com" and email["template"] == "protocol_opened"
    assert email["template_hash"].startswith("sha256:") and email["status"] == "sent"
    assert [a["outcome"] for a in email["delivery"]["attempts"]] == ["sent"]
    assert sms["recipient"] == "+5511987654321" and number in sms["body_text"]
    assert [c["status"] for c in sms["delivery"]["callbacks"]] == ["delivered"]
    assert sms["delivery"]["callbacks"][0]["payload"]["MessageStatus"] == "delivered"
    assert record["consumer_requests"] == [] and record["inbound_messages"] == []


async def test_the_digest_is_recomputable_and_stable(runtime: Runtime, number: str) -> None:
    first = await export(runtime, number)
    assert first["digest"]["algorithm"] == "sha256" and first["digest"]["value"] == recomputed(first)
    assert verify(first)
    later = await export(runtime, number, at=T0 + timedelta(days=30))
    assert later["digest"] == first["digest"] and later["exported_at"] != first["exported_at"]
    tampered = json.loads(json.dumps(first))
    tampered["record"]["notifications"][0]["body_text"] += " "
    assert not verify(tampered)


async def test_the_digest_changes_when_anything_in_the_record_changes(runtime: Runtime, number: str) -> None:
    seen = {(await export(runtime, number))["digest"]["value"]}

    async def changed() -> None:
        digest = (await export(runtime, number))["digest"]["value"]
        assert digest not in seen
        seen.add(digest)

    async with runtime.db.write() as session:  # a late receipt changes the status
        await session.execute(update(Notification).where(Notification.channel == "sms").values(
            status="delivered", delivered_at=T0 + timedelta(seconds=5)))
    await changed()
    async with runtime.db.write() as session:  # another callback
        session.add(ProviderCallback(notification_id=None, provider_id=None, status="undelivered", payload={},
                                     received_at=T0))
        first = await session.scalar(select(Notification).order_by(Notification.id))
        session.add(ProviderCallback(notification_id=first.id, provider_id=None, status="opened", payload={},
                                     received_at=T0 + timedelta(minutes=1)))
    await changed()
    async with runtime.db.write() as session:  # another attempt
        session.add(Attempt(notification_id=first.id, attempt=2, started_at=T0, finished_at=T0, outcome="requeued"))
    await changed()
    update_event = IncomingEvent(source="urn:test:crm", id="u1", type="protocol.updated", time=T0,
                                 data=UpdatedData(number=number, message="Encaminhado ao financeiro"))
    await runtime.service.handle(update_event, received_at=T0 + timedelta(hours=1))  # a new event (and messages)
    await changed()
    async with runtime.db.write() as session:  # anonymization, the one audited edit
        allow_redaction(session, "anonymization: test")
        await session.execute(update(Event).values(data={"subject": "[anonymized]"}))
    await changed()


async def test_events_and_sent_messages_cannot_be_edited_or_deleted(runtime: Runtime, number: str) -> None:
    with pytest.raises(AppendOnlyViolation, match="events: changing data"):
        async with runtime.db.write() as session:
            event = await session.scalar(select(Event))
            event.data = {**event.data, "subject": "something else"}
    with pytest.raises(AppendOnlyViolation, match="notifications: changing body_text"):
        async with runtime.db.write() as session:
            await session.execute(update(Notification).values(body_text="what we wish we had said"))
    with pytest.raises(AppendOnlyViolation, match="notifications: changing recipient"):
        async with runtime.db.write() as session:
            sent = await session.scalar(select(Notification).where(Notification.channel == "email"))
            sent.recipient = "other@example.com"
    with pytest.raises(AppendOnlyViolation, match="notification_attempts"):
        async with runtime.db.write() as session:
            await session.execute(update(Attempt).values(outcome="failed"))
    with pytest.raises(AppendOnlyViolation, match="events: deleting"):
        async with runtime.db.write() as session:
            await session.execute(delete(Event))
    document = await export(runtime, number)
    assert verify(document) and document["record"]["events"][0]["data"]["subject"].startswith("Cobrança")
    async with runtime.db.write() as session:  # the guard is back after a redaction's transaction
        allow_redaction(session, "anonymization: test")
        await session.execute(update(Notification).values(body_text="[anonymized]"))
    with pytest.raises(AppendOnlyViolation):
        async with runtime.db.write() as session:
            await session.execute(update(Notification).values(body_text="again"))


async def test_redaction_is_logged_with_its_reason(runtime: Runtime, number: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="gateway.store"):
        async with runtime.db.write() as session:
            allow_redaction(session, "anonymization: retention ended")
            await session.execute(update(Notification).values(recipient="[anonymized]"))
    [record] = [r for r in caplog.records if getattr(r, "action", None) == "record_redacted"]
    assert record.table == "notifications" and record.reason == "anonymization: retention ended"


@pytest.fixture
async def client(runtime: Runtime, number: str) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(web_app(runtime))) as c:
        yield c


async def test_export_over_http(client: TestClient, runtime: Runtime, number: str) -> None:
    reader = await admin_key(runtime, ["protocols:read"])
    response = await client.get(f"/v1/protocols/{number}/export", headers={"Authorization": f"Bearer {reader}"})
    assert response.status == 200
    document = await response.json()
    assert verify(document) and document["record"]["protocol"]["number"] == number
    assert response.headers["ETag"] == f'"sha256-{document["digest"]["value"]}"'
    missing = await client.get("/v1/protocols/99999999/export", headers={"Authorization": f"Bearer {reader}"})
    assert missing.status == 404 and missing.content_type == "application/problem+json"
    other = await admin_key(runtime, ["templates:read"])
    assert (await client.get(f"/v1/protocols/{number}/export",
                             headers={"Authorization": f"Bearer {other}"})).status == 403


async def test_export_and_verify_from_the_command_line(runtime: Runtime, number: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEWAY_DATABASE__URL", runtime.settings.database_url)
    out = tmp_path / "evidence.json"
    assert await _cli(["protocols", "export", number, "--output", str(out)]) == 0
    document = json.loads(out.read_text("utf-8"))
    assert capsys.readouterr().out.strip() == f"{out}: sha256 {document['digest']['value']}"
    assert await _cli(["protocols", "verify", str(out)]) == 0
    document["record"]["events"][0]["data"]["subject"] = "edited"
    out.write_text(json.dumps(document), "utf-8")
    assert await _cli(["protocols", "verify", str(out)]) == 1
    assert await _cli(["protocols", "export", "99999999"]) == 1


async def _cli(argv: list[str]) -> int:
    """The CLI runs its own event loop: give it a thread, as a separate process would have one."""
    return await asyncio.to_thread(main, argv)
