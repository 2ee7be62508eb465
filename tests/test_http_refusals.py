"""Refusals that used to be a 500 or aiohttp's plain text, and the per-key request limit
(issue 14, items 4 and 6; DESIGN "Errors").

- A header over 8 KiB or too many headers: aiohttp refuses them while parsing, before any
  middleware; the answer is problem+json all the same (sent and read over a raw socket).
- `metadata` nested 255 deep: 422 naming it, and in a batch every entry gets its result.
- `limits.requests_per_key`: 429 with `Retry-After`, counted per key, on a fixed clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Runtime, build_runtime, prepare, web_app
from tests.helpers import FixedClock, admin_key, make_settings, opened_event

CE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)


async def gateway(tmp_path, db_url, **sections) -> tuple[Runtime, TestClient]:
    runtime = build_runtime(make_settings(tmp_path, db_url, sweeps={"enabled": False}, **sections),
                            clock=FixedClock(NOW))
    await prepare(runtime)
    client = TestClient(TestServer(web_app(runtime, run_dispatcher=False)))
    await client.start_server()
    return runtime, client


@pytest.fixture
async def gw(tmp_path, db_url) -> AsyncIterator[tuple[Runtime, TestClient]]:
    runtime, client = await gateway(tmp_path, db_url)
    yield runtime, client
    await client.close()
    await runtime.aclose()


async def raw_request(client: TestClient, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library tidying them) and read the whole answer."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # the server closes after a parse refusal
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


SECRET = "s3cr3t-part-of-a-key-" * 500  # ~10 KiB


@pytest.mark.parametrize("request_bytes", [
    b"POST /v1/events HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer pgw_0123456789abcdef_" + SECRET.encode()
    + b"\r\nContent-Length: 0\r\n\r\n",
    b"GET /v1/protocols/123456 HTTP/1.1\r\nHost: gw\r\n" + b"".join(b"X-Header-%d: %d\r\n" % (i, i) for i in range(200))
    + b"\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: gw\r\n\r\n",
], ids=["authorization-over-8KiB", "200-headers", "request-line-over-8KiB"])
async def test_what_aiohttp_refuses_while_parsing_is_answered_as_problem_json(gw, request_bytes, caplog):
    _, client = gw
    with caplog.at_level(logging.DEBUG):
        status, headers, body = await raw_request(client, request_bytes)
    assert status == 431 and headers["content-type"].startswith("application/problem+json"), body[:200]
    problem = json.loads(body)
    assert problem["status"] == 431 and problem["type"] == "/problems/headers-too-large" and problem["detail"]
    assert "s3cr3t" not in caplog.text  # nothing of the refused request is logged: it may hold a key
    assert any(getattr(r, "action", None) == "http_request_refused" for r in caplog.records)


async def test_bytes_that_are_not_http_get_a_problem_too(gw):
    _, client = gw
    status, headers, body = await raw_request(client, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")
    assert status == 400 and headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["type"] == "/problems/malformed"


def nested(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def test_metadata_nested_255_deep_is_422_and_every_batch_entry_gets_its_result(gw):
    runtime, client = gw
    headers = {"Authorization": f"Bearer {await admin_key(runtime)}", "Content-Type": CE}
    r = await client.post("/v1/events", data=json.dumps(opened_event("deep", metadata=nested(255))), headers=headers)
    body = await r.json()
    assert r.status == 422 and [e["field"] for e in body["errors"]] == ["data.metadata"], body

    batch = [opened_event("b1"), opened_event("b2", metadata=nested(255)), opened_event("b3"),
             opened_event("b4", metadata=nested(32))]  # as deep as is allowed
    r = await client.post("/v1/events", data=json.dumps(batch), headers={**headers, "Content-Type": BATCH})
    assert r.status == 200
    results = (await r.json())["results"]
    assert [x.get("status", x.get("protocol", {}).get("status")) for x in results] == ["open", 422, "open", "open"]


# Requests per key


async def test_a_key_past_its_request_rate_gets_429_with_retry_after_and_others_go_on(tmp_path, db_url):
    runtime, client = await gateway(tmp_path, db_url, limits={"requests_per_key": "3/1m"})
    try:
        busy = {"Authorization": f"Bearer {await admin_key(runtime, name='busy-crm')}"}
        calm = {"Authorization": f"Bearer {await admin_key(runtime, name='calm-bot')}"}
        for _ in range(3):
            assert (await client.get("/v1/protocols/123456", headers=busy)).status == 404
        refused = await client.get("/v1/protocols/123456", headers=busy)
        assert refused.status == 429 and refused.content_type == "application/problem+json"
        assert refused.headers["Retry-After"] == "20"  # one request's share of the minute
        assert (await refused.json())["type"] == "/problems/rate-limited"
        assert (await client.get("/v1/protocols/123456", headers=calm)).status == 404
        assert (await client.get("/healthz")).status == 200  # only keys are counted

        runtime.clock.advance(timedelta(seconds=19))
        assert (await client.get("/v1/protocols/123456", headers=busy)).status == 429
        runtime.clock.advance(timedelta(seconds=1))
        assert (await client.get("/v1/protocols/123456", headers=busy)).status == 404
        assert (await client.get("/v1/protocols/123456", headers=busy)).status == 429
    finally:
        await client.close()
        await runtime.aclose()


async def test_zero_turns_the_request_limit_off(tmp_path, db_url):
    runtime, client = await gateway(tmp_path, db_url, limits={"requests_per_key": "0"})
    try:
        key = {"Authorization": f"Bearer {await admin_key(runtime)}"}
        statuses = {(await client.get("/v1/protocols/123456", headers=key)).status for _ in range(50)}
        assert statuses == {404}
    finally:
        await client.close()
        await runtime.aclose()
