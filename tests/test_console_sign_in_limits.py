"""Failed console sign-ins are limited per client address (issue 18): 429 with Retry-After, as a
page, on the runtime's clock (moved by the test, never waited for)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import build_runtime, prepare, web_app
from gateway.config import ConfigError
from gateway.web import sign_in_limits
from tests.console_helpers import csrf_of
from tests.helpers import FixedClock, admin_key, make_settings

T0 = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)


async def attempt(client: TestClient, key: str) -> aiohttp.ClientResponse:
    page = await (await client.get("/console/sign-in")).text()
    return await client.post("/console/sign-in", data={"csrf": csrf_of(page), "key": key}, allow_redirects=False)


async def test_failed_sign_ins_from_one_address_get_429_until_the_clock_moves(tmp_path: Path, sqlite_url: str) -> None:
    clock = FixedClock(T0)
    runtime = build_runtime(make_settings(tmp_path, sqlite_url, sweeps={"enabled": False},
                                          console={"sign_in_failures": "3/15m"}), clock=clock)
    await prepare(runtime)
    try:
        good = await admin_key(runtime, ["console"], name="ana")
        wrong = "pgw_0000000000000000_" + "x" * 43
        async with TestClient(TestServer(web_app(runtime, run_dispatcher=False)),
                              cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": "en"}) as client:
            assert [(await attempt(client, wrong)).status for _ in range(2)] == [401, 401]
            assert (await attempt(client, good)).status == 303  # a success spends nothing
            await client.post("/console/sign-out", data={"csrf": csrf_of(await (await client.get("/console/")).text())})
            assert (await attempt(client, wrong)).status == 401
            limited = await attempt(client, good)  # even the right key: past the limit no key is looked at
            assert limited.status == 429 and limited.headers["Retry-After"] == "300"
            assert limited.content_type == "text/html"
            html = await limited.text()
            assert "Too many failed sign-ins from your address: try again in 5 min." in html
            assert 'name="key"' in html and "pgw_console=" not in limited.headers.get("Set-Cookie", "")
            pt = await client.post("/console/sign-in", data={"key": good}, headers={"Accept-Language": "pt-BR"})
            assert pt.status == 429 and "tente de novo em 5 min" in await pt.text()

            clock.advance(timedelta(seconds=299))
            assert (await attempt(client, good)).status == 429
            clock.advance(timedelta(seconds=1))
            assert (await attempt(client, good)).status == 303
    finally:
        await runtime.aclose()


async def test_off_means_no_limit(tmp_path: Path, sqlite_url: str) -> None:
    runtime = build_runtime(make_settings(tmp_path, sqlite_url, sweeps={"enabled": False},
                                          console={"sign_in_failures": "0"}), clock=FixedClock(T0))
    await prepare(runtime)
    try:
        async with TestClient(TestServer(web_app(runtime, run_dispatcher=False)),
                              cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            assert {(await attempt(client, "pgw_x_y")).status for _ in range(12)} == {401}
    finally:
        await runtime.aclose()


def test_the_default_is_ten_in_fifteen_minutes_and_a_wrong_value_names_the_key(tmp_path: Path) -> None:
    assert make_settings(tmp_path, "sqlite+aiosqlite:///x.db").console.sign_in_failures == (10, 900.0)
    with pytest.raises(ConfigError, match="console.sign_in_failures"):
        make_settings(tmp_path, "sqlite+aiosqlite:///x.db", console={"sign_in_failures": "ten"})


@pytest.mark.parametrize(("remote", "counted_as"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same machine's other address: the same bucket
    ("::ffff:203.0.113.7", "203.0.113.7"),
    (None, ""),
])
def test_an_address_is_counted_by_itself_and_ipv6_by_its_64(remote: str | None, counted_as: str) -> None:
    assert sign_in_limits.client(remote) == counted_as
