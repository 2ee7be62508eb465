"""POST /v1/events and GET /v1/protocols on real SQLite and PostgreSQL, through real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.config import Settings
from gateway.protocols.numbering import damm_valid
from tests.helpers import FixedClock, admin_key, opened_event

CE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


# The gateway in this module receives every event at 01:30 UTC on 2026-11-23: still the 22nd
# in São Paulo (gateway.timezone), so the number's date part shows which day it counts in.
RECEIVED = datetime(2026, 11, 23, 1, 30, tzinfo=timezone.utc)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = build_runtime(settings, clock=FixedClock(RECEIVED))
    yield rt
    await rt.aclose()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[TestClient]:
    await prepare(runtime)
    async with TestClient(TestServer(web_app(runtime))) as c:
        yield c


@pytest.fixture
async def key(runtime: Runtime) -> str:
    return await admin_key(runtime)


def auth(key: str, content_type: str = CE) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": content_type}


async def post(client: TestClient, key: str, body: object, content_type: str = CE, **headers: str):
    return await client.post("/v1/events", data=json.dumps(body), headers={**auth(key, content_type), **headers})


async def test_open_answers_202_with_number_deadline_and_queued_notifications(client, key, runtime):
    response = await post(client, key, opened_event())
    assert response.status == 202
    body = await response.json()
    assert body["duplicate"] is False
    number = body["protocol"]["number"]
    assert number.isdigit() and 6 <= len(number) <= 30 and damm_valid(number)
    # The date part is the day the number is issued, in gateway.timezone (not UTC's day).
    issued_on = runtime.clock().astimezone(ZoneInfo(runtime.settings.gateway.timezone)).strftime("%Y%m%d")
    assert number.startswith(issued_on) and issued_on != runtime.clock().strftime("%Y%m%d")
    assert body["protocol"]["status"] == "open"
    assert body["protocol"]["opened_at"] == "2026-11-22T14:43:00Z"  # the event's time
    # 7 calendar days from the day after, end of day in São Paulo (UTC-3): 2026-11-29 23:59:59-03:00.
    assert body["protocol"]["deadline_at"] == "2026-11-30T02:59:59Z"
    assert sorted(n["channel"] for n in body["notifications"]) == ["email", "sms"]
    assert all(n["status"] == "queued" and isinstance(n["id"], int) for n in body["notifications"])


async def test_repeat_returns_first_answer_as_duplicate_and_queues_nothing(client, key, runtime):
    first = await (await post(client, key, opened_event("same"))).json()
    again = await post(client, key, opened_event("same"))
    assert again.status == 200
    body = await again.json()
    assert body == {**first, "duplicate": True}
    document = await (await client.get(f"/v1/protocols/{first['protocol']['number']}",
                                       headers=auth(key))).json()
    assert len(document["notifications"]) == 2 and len(document["events"]) == 1


async def test_same_id_with_other_data_is_409(client, key):
    assert (await post(client, key, opened_event("x"))).status == 202
    response = await post(client, key, opened_event("x", subject="Outro assunto"))
    assert response.status == 409
    assert response.content_type == "application/problem+json"
    assert (await response.json())["status"] == 409


async def test_upstream_number_is_kept_and_cannot_be_reused(client, key):
    response = await post(client, key, opened_event("u1", number="000123456789"))
    assert (await response.json())["protocol"]["number"] == "000123456789"
    clash = await post(client, key, opened_event("u2", number="000123456789"))
    assert clash.status == 409


async def test_binary_mode(client, key):
    data = opened_event()["data"]
    headers = {"ce-specversion": "1.0", "ce-id": "bin-1", "ce-source": "urn:test:crm",
               "ce-type": "protocol.opened", "ce-time": "2026-11-22T14:43:00Z"}
    response = await post(client, key, data, "application/json", **headers)
    assert response.status == 202
    assert (await response.json())["protocol"]["opened_at"] == "2026-11-22T14:43:00Z"


async def test_batch_each_event_stands_alone(client, key):
    bad = opened_event("b2")
    bad["data"]["consumer"]["phone"] = "12"
    batch = [opened_event("b1"), bad, {"not": "an event"}, opened_event("b1")]
    response = await post(client, key, batch, BATCH)
    assert response.status == 200
    results = (await response.json())["results"]
    assert len(results) == 4
    assert results[0]["duplicate"] is False and "number" in results[0]["protocol"]
    assert results[1]["status"] == 422
    assert results[1]["errors"] == [{"field": "data.consumer.phone", "message": "not a valid phone number"}]
    assert results[2]["status"] == 422
    assert results[3]["duplicate"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"consumer": {"phone": "+5511987654321", "email": "not-an-email"}}, "data.consumer.email"),
        ({"consumer": {"phone": "+551133334444"}}, "data.consumer.phone"),  # a landline cannot get SMS
        ({"consumer": {"email": "a@example.com"}, "notify": ["sms"]}, "data.consumer.phone"),
        ({"profile": "mars"}, "data.profile"),
        ({"subject": "two\r\nlines"}, "data.subject"),
        ({"number": "12ab"}, "data.number"),
        ({"subject": ""}, "data.subject"),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(client, key, change, field):
    response = await post(client, key, opened_event("v", **change))
    assert response.status == 422
    body = await response.json()
    assert response.content_type == "application/problem+json"
    assert field in [e["field"] for e in body["errors"]]


async def test_unknown_type_is_422_on_type(client, key):
    event = opened_event()
    event["type"] = "protocol.exploded"
    body = await (await post(client, key, event)).json()
    assert body["status"] == 422 and body["errors"][0]["field"] == "type"


async def test_order_of_checks(client, runtime, key):
    reader = await admin_key(runtime, ["protocols:read"])
    big = b"x" * (runtime.settings.http.max_body + 1)
    # 401 before anything else, even with a bad body and content type.
    r = await client.post("/v1/events", data=big, headers={"Content-Type": "text/plain"})
    assert r.status == 401 and r.content_type == "application/problem+json"
    r = await client.post("/v1/events", data="{}", headers=auth("pgw_nope_nope"))
    assert r.status == 401
    # 403 before 413.
    r = await client.post("/v1/events", data=big, headers=auth(reader, "text/plain"))
    assert r.status == 403
    # 413 before 415.
    r = await client.post("/v1/events", data=big, headers=auth(key, "text/plain"))
    assert r.status == 413 and r.content_type == "application/problem+json"
    # 415 before 400.
    r = await client.post("/v1/events", data="{", headers=auth(key, "text/plain"))
    assert r.status == 415
    # 400: malformed JSON, invalid UTF-8.
    r = await client.post("/v1/events", data="{", headers=auth(key))
    assert r.status == 400
    r = await client.post("/v1/events", data=b'{"a": "\xff"}', headers=auth(key))
    assert r.status == 400
    # 404 after validation: a valid event about a protocol that does not exist.
    r = await post(client, key, {"specversion": "1.0", "id": "u", "source": "s", "type": "protocol.updated",
                                 "data": {"number": "99999999", "message": "hi"}})
    assert r.status == 404


async def test_aiohttp_own_errors_are_problems(client, key):
    r = await client.get("/nowhere")
    assert r.status == 404 and r.content_type == "application/problem+json"
    r = await client.get("/v1/events", headers=auth(key))
    assert r.status == 405 and r.content_type == "application/problem+json"
    assert (await r.json())["status"] == 405


async def test_get_protocol_has_the_documented_shape(client, key):
    number = (await (await post(client, key, opened_event(category="billing"))).json())["protocol"]["number"]
    r = await client.get(f"/v1/protocols/{number}", headers=auth(key))
    assert r.status == 200
    doc = await r.json()
    assert set(doc) == {"number", "status", "subject", "category", "profile", "opened_at", "deadline_at",
                        "resolved_at", "retention_until", "legal_hold", "parent", "children", "events", "notifications",
                        "consumer", "channel", "requests"}
    assert set(doc["consumer"]) == {"name", "email", "phone", "locale", "timezone"}
    assert doc["requests"] == []  # none asked yet (tests/test_consumer_messages.py: a postal request)
    assert doc["category"] == "billing" and doc["profile"] == "br-sac" and doc["legal_hold"] is False
    assert set(doc["events"][0]) == {"type", "occurred_at", "received_at", "data", "key"}
    assert set(doc["notifications"][0]) == {"id", "channel", "template", "status", "attempts", "last_error",
                                            "provider_id", "created_at", "sent_at", "delivered_at"}
    assert doc["notifications"][0]["template"] == "protocol_opened"
    assert (await client.get("/v1/protocols/12345678", headers=auth(key))).status == 404


async def test_resolve_then_reopen_moves_status_and_clocks(client, key, runtime):
    number = (await (await post(client, key, opened_event())).json())["protocol"]["number"]
    runtime.clock.advance(timedelta(days=2, hours=11))  # received at 2026-11-25T12:30Z
    resolved = {"specversion": "1.0", "id": "r1", "source": "urn:test:crm", "type": "protocol.resolved",
                "data": {"number": number, "resolution": "Estornado.", "resolved_at": "2026-11-25T12:00:00Z"}}
    body = await (await post(client, key, resolved)).json()
    assert body["protocol"]["status"] == "resolved"
    doc = await (await client.get(f"/v1/protocols/{number}", headers=auth(key))).json()
    assert doc["resolved_at"] == "2026-11-25T12:00:00Z"
    # 2 years (art. 12 §5) from the later of resolved_at and the time the resolution was received
    assert doc["retention_until"] == "2028-11-25T12:30:00Z"
    runtime.clock.advance(timedelta(days=6))
    reopened = {"specversion": "1.0", "id": "r2", "source": "urn:test:crm", "type": "protocol.reopened",
                "time": "2026-12-01T12:00:00Z", "data": {"number": number, "reason": "Voltou a cobrar."}}
    body = await (await post(client, key, reopened)).json()
    assert body["protocol"]["status"] == "reopened"
    assert datetime.fromisoformat(body["protocol"]["deadline_at"]) > datetime.fromisoformat(doc["deadline_at"])


async def test_resend_over_rest_queues_one_message_to_the_new_address(client, key):
    number = (await (await post(client, key, opened_event())).json())["protocol"]["number"]
    r = await client.post(f"/v1/protocols/{number}/resend", data=json.dumps({"channel": "email", "to": "novo@example.com"}),
                          headers=auth(key, "application/json"))
    assert r.status == 202
    body = await r.json()
    # The confirmation to the new address, then the contacts on record told where it went.
    assert [n["channel"] for n in body["notifications"]] == ["email", "email", "sms"]
    r = await client.post(f"/v1/protocols/{number}/resend", data=json.dumps({"channel": "fax"}),
                          headers=auth(key, "application/json"))
    assert r.status == 422 and (await r.json())["errors"][0]["field"] == "channel"


async def test_scopes_are_enforced(client, runtime):
    writer = await admin_key(runtime, ["events:write"])
    reader = await admin_key(runtime, ["protocols:read"])
    number = (await (await post(client, writer, opened_event())).json())["protocol"]["number"]
    assert (await client.get(f"/v1/protocols/{number}", headers=auth(writer))).status == 403
    assert (await client.get(f"/v1/protocols/{number}", headers=auth(reader))).status == 200
    assert (await post(client, reader, opened_event("other"))).status == 403


async def test_health_and_openapi_need_no_key(client):
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    spec = await (await client.get("/openapi.json")).json()
    assert {"/v1/events", "/v1/protocols/{number}", "/v1/protocols/{number}/resend"} <= set(spec["paths"])
    assert "OpenedData" in spec["components"]["schemas"]
    metrics = await (await client.get("/metrics")).text()
    assert "gateway_notifications" in metrics
