"""A gateway served over real HTTP at a fixed time, for the sector-rule tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.config import Settings
from tests.helpers import FixedClock, admin_key

CE = "application/cloudevents+json"


@dataclass
class Served:
    client: TestClient
    runtime: Runtime
    clock: FixedClock
    headers: dict[str, str]

    async def post(self, event_type: str, event_id: str, data: dict[str, Any], **fields: Any):
        body = {"specversion": "1.0", "id": event_id, "source": "urn:test:crm", "type": event_type,
                "data": data, **fields}
        return await self.client.post("/v1/events", data=json.dumps(body), headers=self.headers)

    async def document(self, number: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/protocols/{number}", headers=self.headers)
        assert response.status == 200, await response.text()
        return await response.json()


@asynccontextmanager
async def served(settings: Settings, now: datetime) -> AsyncIterator[Served]:
    clock = FixedClock(now)
    runtime = build_runtime(settings, clock=clock)
    try:
        await prepare(runtime)
        key = await admin_key(runtime)
        async with TestClient(TestServer(web_app(runtime))) as client:
            yield Served(client, runtime, clock, {"Authorization": f"Bearer {key}", "Content-Type": CE})
    finally:
        await runtime.aclose()


def consumer(**extra: Any) -> dict[str, Any]:
    return {"name": "Maria Silva", "email": "maria@example.com", **extra}
