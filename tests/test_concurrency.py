"""1,000 concurrent opens give 1,000 distinct, valid numbers on each database."""

from __future__ import annotations

import asyncio
import json

from aiohttp import TCPConnector
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from gateway.app import prepare, web_app
from gateway.protocols.numbering import damm_valid
from gateway.store.models import Event, Protocol
from tests.helpers import admin_key, opened_event

OPENS = 1000


async def test_concurrent_opens_get_distinct_numbers(runtime):
    await prepare(runtime)
    key = await admin_key(runtime)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"}
    server = TestServer(web_app(runtime))
    async with TestClient(server, connector=TCPConnector(limit=OPENS)) as client:

        async def open_one(i: int) -> str:
            event = opened_event(f"c-{i}", consumer={"name": "Ana"}, notify=[])
            response = await client.post("/v1/events", data=json.dumps(event), headers=headers)
            assert response.status == 202, await response.text()
            return (await response.json())["protocol"]["number"]

        numbers = await asyncio.gather(*(open_one(i) for i in range(OPENS)))
    assert len(set(numbers)) == OPENS
    assert all(damm_valid(n) for n in numbers)
    async with runtime.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Protocol)) == OPENS
        assert await session.scalar(select(func.count()).select_from(Event)) == OPENS


async def test_concurrent_repeats_of_one_event_open_one_protocol(runtime):
    """The same (source, id) posted 200 times at once: one protocol, 199 duplicates."""
    await prepare(runtime)
    key = await admin_key(runtime)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"}
    async with TestClient(TestServer(web_app(runtime)), connector=TCPConnector(limit=200)) as client:
        body = json.dumps(opened_event("same", notify=[], consumer={"name": "Ana"}))
        responses = await asyncio.gather(*(client.post("/v1/events", data=body, headers=headers) for _ in range(200)))
        statuses = sorted(r.status for r in responses)
    assert statuses.count(202) == 1 and statuses.count(200) == 199
