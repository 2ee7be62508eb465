"""Resend budgets (issue 14, items 4 and 5).

- A consumer with a long (valid) email address can get the history: rate-limit keys hold a
  fixed-length digest of the contact, not the contact (it overflowed the key on PostgreSQL).
- Postal (`mail`) requests send nothing to the consumer, so they do not spend the consumer's
  budget; every request spends its requester's (the key's) own, so one upstream cannot use up
  what another, or the consumer, is allowed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Runtime, build_runtime, prepare, web_app
from tests.helpers import FixedClock, admin_key, make_settings, opened_event

CE = "application/cloudevents+json"
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
# A valid address of 247 characters (64 before the @, labels of at most 63).
LONG_EMAIL = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 50 + ".com"


class Gateway:
    def __init__(self, runtime: Runtime, client: TestClient) -> None:
        self.runtime, self.client = runtime, client

    async def key(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await admin_key(self.runtime, name=name)}"}

    async def open(self, key: dict[str, str], **data) -> str:
        r = await self.client.post("/v1/events", data=json.dumps(opened_event(**data)),
                                   headers={**key, "Content-Type": CE})
        assert r.status == 202, await r.text()
        return (await r.json())["protocol"]["number"]

    async def resend(self, key: dict[str, str], number: str, **body) -> tuple[int, dict]:
        r = await self.client.post(f"/v1/protocols/{number}/resend", data=json.dumps(body),
                                   headers={**key, "Content-Type": "application/json"})
        return r.status, await r.json()


@pytest.fixture
async def gw(tmp_path, db_url) -> AsyncIterator[Gateway]:
    settings = make_settings(tmp_path, db_url, sweeps={"enabled": False},
                             limits={"resend_per_protocol": "2/1h", "resend_per_contact": "10/24h"})
    runtime = build_runtime(settings, clock=FixedClock(NOW))
    await prepare(runtime)
    async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
        yield Gateway(runtime, client)
    await runtime.aclose()


async def test_a_consumer_with_a_long_email_address_gets_the_history(gw):
    crm = await gw.key("crm")
    number = await gw.open(crm, consumer={"name": "Ana", "email": LONG_EMAIL})
    status, body = await gw.resend(crm, number, channel="email", history=True)
    assert status == 202, body
    other = await gw.open(crm, event_id="o2", consumer={"name": "Bia", "email": "bia@example.com"})
    status, body = await gw.resend(crm, other, channel="email", to=LONG_EMAIL, history=True)
    assert status == 202, body


async def test_postal_requests_do_not_spend_the_consumers_budget(gw):
    bot = await gw.key("chatbot")
    sac = await gw.key("sac")
    number = await gw.open(sac)
    for _ in range(2):
        assert (await gw.resend(bot, number, channel="mail", history=True))[0] == 202
    status, body = await gw.resend(bot, number, channel="mail", history=True)
    assert status == 429 and "by this key" in body["detail"]  # the chatbot's own budget is spent

    # ...and the consumer's is whole: the customer service can still send the history twice.
    assert (await gw.resend(sac, number, channel="email", history=True))[0] == 202
    assert (await gw.resend(sac, number, channel="sms", history=True))[0] == 202
    status, body = await gw.resend(await gw.key("crm"), number, channel="email", history=True)
    assert status == 429 and body["detail"].startswith("too many resends of this protocol")  # now it is spent


async def test_one_requester_spends_only_its_own_share_of_postal_requests(gw):
    flood, crm = await gw.key("flood"), await gw.key("crm")
    number = await gw.open(crm)
    for _ in range(2):
        assert (await gw.resend(flood, number, channel="mail"))[0] == 202
    assert (await gw.resend(flood, number, channel="mail"))[0] == 429
    assert (await gw.resend(crm, number, channel="mail"))[0] == 202
