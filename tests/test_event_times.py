"""Times an event gives cannot rewrite the legal record (issue 14, item 1; DESIGN "Keys bound to
sources, and addresses not on record").

A time before the protocol's opening or later than the time the event was received is 422
naming the field; retention counts from the later of `resolved_at` and the time the
resolution was received. Years 1 and 9999 are 422 in every time field, never a 500. The
gateway's clock is fixed: "received" is whatever the test says it is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.store.models import Protocol
from tests.helpers import FixedClock, admin_key, make_settings, opened_event

CE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
RECEIVED = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)  # the gateway's "now" in this module
OPENED = "2026-11-22T14:43:00Z"                                 # the sample event's `time`


@pytest.fixture
async def gw(tmp_path, db_url) -> AsyncIterator[tuple[Runtime, TestClient, dict[str, str]]]:
    settings = make_settings(tmp_path, db_url, retention={"action": "anonymize"}, sweeps={"enabled": False})
    runtime = build_runtime(settings, clock=FixedClock(RECEIVED))
    await prepare(runtime)
    key = await admin_key(runtime)
    async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
        yield runtime, client, {"Authorization": f"Bearer {key}", "Content-Type": CE}
    await runtime.aclose()


def event(event_id: str, kind: str, data: dict, **envelope) -> dict:
    return {"specversion": "1.0", "id": event_id, "source": "urn:test:crm", "type": f"protocol.{kind}",
            "data": data, **envelope}


async def post(gw, body, content_type: str = CE):
    _, client, headers = gw
    r = await client.post("/v1/events", data=json.dumps(body), headers={**headers, "Content-Type": content_type})
    return r.status, await r.json()


async def open_protocol(gw, event_id: str = "o1", **data) -> str:
    status, body = await post(gw, opened_event(event_id, **data))
    assert status == 202, body
    return body["protocol"]["number"]


async def protocol(runtime: Runtime, number: str) -> Protocol:
    async with runtime.db.read() as session:
        return await session.scalar(select(Protocol).where(Protocol.number == number))


def fields(body: dict) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


async def test_a_resolution_back_dated_to_1970_is_refused_and_the_next_days_sweep_anonymizes_nothing(gw):
    runtime, _, _ = gw
    number = await open_protocol(gw)
    status, body = await post(gw, event("r1", "resolved", {"number": number, "resolution": "Estornado.",
                                                          "resolved_at": "1970-01-02T00:00:00Z"}))
    assert status == 422 and fields(body) == ["data.resolved_at"], body
    assert "before the protocol was opened" in body["errors"][0]["message"]

    runtime.clock.advance(timedelta(days=1))
    result = await runtime.sweeps.run("retention-expiry", at=runtime.clock())
    assert result.anonymized == 0
    kept = await protocol(runtime, number)
    assert (kept.status, kept.resolved_at, kept.consumer_email) == ("open", None, "maria@example.com")


async def test_retention_counts_from_when_the_resolution_was_received_not_from_an_earlier_resolved_at(gw):
    """A record opened three years ago (migrated from another system) and resolved then, as the
    CRM says, but heard of today: its two years start today, so tomorrow's sweep keeps it."""
    runtime, _, _ = gw
    number = await open_protocol(gw, opened_at="2023-11-20T12:00:00Z")
    status, body = await post(gw, event("r1", "resolved", {"number": number, "resolution": "Estornado.",
                                                          "resolved_at": "2023-11-21T12:00:00Z"}))
    assert status == 202, body
    kept = await protocol(runtime, number)
    assert kept.resolved_at == datetime(2023, 11, 21, 12, tzinfo=timezone.utc)  # kept as given, for the record
    assert kept.retention_until == RECEIVED.replace(year=2028)                  # 2 years from receipt

    runtime.clock.advance(timedelta(days=1))
    assert (await runtime.sweeps.run("retention-expiry", at=runtime.clock())).anonymized == 0
    assert (await protocol(runtime, number)).status == "resolved"


LATER = (RECEIVED + timedelta(hours=2)).isoformat()
BEFORE_OPENING = "2026-11-20T10:00:00Z"


@pytest.mark.parametrize(("kind", "data", "envelope", "field"), [
    ("resolved", {"resolution": "Pronto.", "resolved_at": LATER}, {}, "data.resolved_at"),
    ("resolved", {"resolution": "Pronto.", "resolved_at": BEFORE_OPENING}, {}, "data.resolved_at"),
    ("resolved", {"resolution": "Pronto."}, {"time": BEFORE_OPENING}, "time"),
    ("updated", {"message": "Ligamos."}, {"time": LATER}, "time"),
    ("updated", {"message": "Ligamos."}, {"time": BEFORE_OPENING}, "time"),
    ("reopened", {"reason": "Voltou."}, {"time": BEFORE_OPENING}, "time"),
    ("resend_requested", {"channel": "email"}, {"time": LATER}, "time"),
], ids=["resolved_at-later", "resolved_at-before", "time-as-resolution", "updated-later", "updated-before",
        "reopened-before", "resend-later"])
async def test_a_time_before_the_opening_or_after_receipt_is_422_naming_it(gw, kind, data, envelope, field):
    runtime, _, _ = gw
    number = await open_protocol(gw)
    before = await protocol(runtime, number)
    status, body = await post(gw, event("e1", kind, {"number": number, **data}, **envelope))
    assert status == 422 and fields(body) == [field], body
    after = await protocol(runtime, number)
    assert (after.status, after.updated_at) == (before.status, before.updated_at)  # nothing written


async def test_an_opening_may_be_back_dated_but_not_later_than_receipt(gw):
    assert (await post(gw, opened_event("past", opened_at="2019-05-01T09:00:00-03:00")))[0] == 202
    status, body = await post(gw, opened_event("future", opened_at=LATER))
    assert status == 422 and fields(body) == ["data.opened_at"]
    future = opened_event("future-time")
    future["time"] = LATER
    status, body = await post(gw, future)
    assert status == 422 and fields(body) == ["time"]


async def test_a_minute_of_clock_drift_is_not_refused(gw):
    """Two systems' clocks never agree to the second: an upstream 30 s ahead is not lying."""
    number = await open_protocol(gw)
    ahead = (RECEIVED + timedelta(seconds=30)).isoformat()
    status, body = await post(gw, event("r1", "resolved", {"number": number, "resolution": "Ok.",
                                                          "resolved_at": ahead}))
    assert status == 202, body


async def test_in_a_batch_a_bad_time_is_a_422_in_its_slot_and_the_others_stand(gw):
    number = await open_protocol(gw)
    batch = [event("b1", "updated", {"number": number, "message": "Primeiro."}),
             event("b2", "resolved", {"number": number, "resolution": "x", "resolved_at": "1970-01-02T00:00:00Z"}),
             event("b3", "updated", {"number": number, "message": "Terceiro."})]
    status, body = await post(gw, batch, BATCH)
    assert status == 200
    assert [r.get("status") for r in body["results"]] == [None, 422, None]
    assert fields(body["results"][1]) == ["data.resolved_at"]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00",
                                   "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00"])
async def test_years_1_and_9999_are_422_in_every_time_field(gw, value):
    _, client, headers = gw
    number = await open_protocol(gw)
    status, body = await post(gw, opened_event("o-at", opened_at=value))
    assert (status, fields(body)) == (422, ["data.opened_at"]), body
    with_time = opened_event("o-time")
    with_time["time"] = value
    status, body = await post(gw, with_time)
    assert (status, fields(body)) == (422, ["time"]), body
    status, body = await post(gw, event("r", "resolved", {"number": number, "resolution": "x", "resolved_at": value}))
    assert (status, fields(body)) == (422, ["data.resolved_at"]), body
    binary = await client.post("/v1/events", data=json.dumps({"number": number, "message": "x"}), headers={
        **headers, "Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "bin", "ce-source": "urn:x",
        "ce-type": "protocol.updated", "ce-time": value})
    assert (binary.status, fields(await binary.json())) == (422, ["time"])
    requeue = await client.post("/v1/outbox/requeue", data=json.dumps({"status": "dead", "since": value}),
                                headers={**headers, "Content-Type": "application/json"})
    assert (requeue.status, fields(await requeue.json())) == (422, ["since"])


async def test_a_period_set_after_the_resolution_also_counts_from_its_receipt(gw, tmp_path, db_url):
    """`es` has no retention period until one is set, so nothing is stored at resolution; set
    later, the period still starts when the resolution was received, not at a back-dated resolved_at."""
    runtime, _, _ = gw
    number = await open_protocol(gw, opened_at="2019-05-01T12:00:00Z", profile="es")
    status, body = await post(gw, event("r1", "resolved", {"number": number, "resolution": "Resuelto.",
                                                          "resolved_at": "2019-05-02T12:00:00Z"}))
    assert status == 202, body
    assert (await protocol(runtime, number)).retention_until is None

    settings = make_settings(tmp_path, db_url, retention={"action": "anonymize"}, sweeps={"enabled": False},
                             profiles={"es": {"retention_years": 2}})
    later = build_runtime(settings, clock=FixedClock(RECEIVED + timedelta(days=1)))
    try:
        assert (await later.sweeps.run("retention-expiry", at=later.clock())).anonymized == 0
    finally:
        await later.aclose()
    assert (await protocol(runtime, number)).status == "resolved"
