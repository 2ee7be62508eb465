"""A consumer's locale and time zone are real ones (issue 14, item 5).

`consumer.locale` is a tag CLDR knows (`pt-BR`, `es`, `es-ES`...); `consumer.timezone` is an
IANA Area/Location (or UTC). What the zone folder also holds (`localtime`, `posixrules`,
`Factory`, `posix/...`) or a made-up tag (`xx-YY-zz`) is 422 naming the field.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import build_runtime, prepare, web_app
from tests.helpers import admin_key, make_settings, opened_event

CONSUMER = {"name": "Maria Silva", "email": "maria@example.com"}


@pytest.fixture
async def post(tmp_path, sqlite_url) -> AsyncIterator:
    runtime = build_runtime(make_settings(tmp_path, sqlite_url, sweeps={"enabled": False}))
    await prepare(runtime)
    headers = {"Authorization": f"Bearer {await admin_key(runtime)}", "Content-Type": "application/cloudevents+json"}
    async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
        async def send(**consumer):
            body = opened_event(f"e-{json.dumps(consumer)}", consumer={**CONSUMER, **consumer})
            r = await client.post("/v1/events", data=json.dumps(body), headers=headers)
            return r.status, await r.json()
        yield send
    await runtime.aclose()


@pytest.mark.parametrize("locale", ["xx-YY-zz", "zz", "es-XX", "pt-BR-", "../en"])
async def test_a_locale_cldr_does_not_know_is_422(post, locale):
    status, body = await post(locale=locale)
    assert status == 422 and [e["field"] for e in body["errors"]] == ["data.consumer.locale"], body


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "posix/America/Sao_Paulo",
                                  "right/America/Sao_Paulo", "Brazil/East", "Mars/Olympus", "America/Nowhere"])
async def test_a_zone_that_is_no_iana_area_and_location_is_422(post, zone):
    status, body = await post(timezone=zone)
    assert status == 422 and [e["field"] for e in body["errors"]] == ["data.consumer.timezone"], body


@pytest.mark.parametrize(("locale", "zone"), [("pt-BR", "America/Sao_Paulo"), ("es-ES", "Europe/Madrid"),
                                              ("en", "America/Argentina/Buenos_Aires"), ("es", "UTC"),
                                              ("ca-ES", "Europe/Madrid"), ("eu-ES", "Europe/Madrid"),
                                              ("gl-ES", "Europe/Madrid"), ("ca", "Atlantic/Canary")])
async def test_real_locales_and_zones_are_accepted(post, locale, zone):
    status, body = await post(locale=locale, timezone=zone)
    assert status == 202, body
