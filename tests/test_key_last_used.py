"""When each key was last used (issue 18): written at most once a minute per key, shown on the
console's keys page and by `keys list`. The runtime's clock is fixed and moved by the test."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from gateway.api import key_usage
from gateway.api.keys import KeyInfo
from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.cli import main
from gateway.store.models import ApiKey
from tests.console_helpers import sign_in
from tests.helpers import FixedClock, admin_key, make_settings

T0 = datetime(2026, 11, 22, 14, 43, 10, tzinfo=timezone.utc)


async def last_used(runtime: Runtime, name: str) -> datetime | None:
    async with runtime.db.read() as session:
        return await session.scalar(select(ApiKey.last_used_at).where(ApiKey.name == name))


async def test_a_keys_use_is_written_once_a_minute_never_backwards(tmp_path: Path, db_url: str) -> None:
    clock = FixedClock(T0)
    runtime = build_runtime(make_settings(tmp_path, db_url, sweeps={"enabled": False}), clock=clock)
    await prepare(runtime)
    try:
        key = await admin_key(runtime, ["protocols:read"], name="crm")
        await admin_key(runtime, ["protocols:read"], name="idle")
        async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
            async def search() -> None:
                r = await client.get("/v1/protocols", headers={"Authorization": f"Bearer {key}"})
                assert r.status == 200, await r.text()

            await search()
            assert await last_used(runtime, "crm") == T0
            clock.advance(timedelta(seconds=59))
            await asyncio.gather(*(search() for _ in range(5)))
            assert await last_used(runtime, "crm") == T0  # within the minute: nothing written
            clock.advance(timedelta(seconds=1))
            await search()
            assert await last_used(runtime, "crm") == T0 + timedelta(seconds=60)
            assert await last_used(runtime, "idle") is None
            # Another process, whose clock is ahead, wrote a later use: ours never moves it back.
            later = T0 + timedelta(minutes=10)
            async with runtime.db.write() as session:
                await session.execute(update(ApiKey).where(ApiKey.name == "crm").values(last_used_at=later))
            clock.advance(timedelta(seconds=60))
            await search()
            assert await last_used(runtime, "crm") == later
    finally:
        await runtime.aclose()


def test_a_use_is_due_only_a_minute_after_the_last_on_record() -> None:
    key = KeyInfo("k", frozenset({"admin"}), T0, None, last_used_at=T0)
    assert key_usage.due(KeyInfo("k", frozenset(), T0, None), None, T0)
    assert not key_usage.due(key, None, T0 + timedelta(seconds=59))
    assert key_usage.due(key, None, T0 + timedelta(seconds=60))
    assert not key_usage.due(key, T0 + timedelta(seconds=60), T0 + timedelta(seconds=100))


async def test_the_keys_page_and_keys_list_show_the_last_use(tmp_path: Path, sqlite_url: str, capsys) -> None:
    clock = FixedClock(T0)
    runtime = build_runtime(make_settings(tmp_path, sqlite_url, sweeps={"enabled": False},
                                          gateway={"timezone": "America/Sao_Paulo"}), clock=clock)
    await prepare(runtime)
    try:
        await admin_key(runtime, ["events:write"], name="unused")
        async with TestClient(TestServer(web_app(runtime, run_dispatcher=False)),
                              cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": "en"}) as client:
            await sign_in(client, await admin_key(runtime, name="ops"))  # signing in is a use
            html = await (await client.get("/console/keys")).text()
            assert "<th scope=\"col\">Last used</th>" in html
            assert "<td>ops</td><td>admin</td><td>" in html
            row = html[html.index("<td>ops</td>"):]
            assert "<td>2026-11-22 11:43 -03</td>" in row[:row.index("</tr>")]
            row = html[html.index("<td>unused</td>"):]
            assert "<td>never</td>" in row[:row.index("</tr>")]
            pt = await (await client.get("/console/keys", headers={"Accept-Language": "pt-BR"})).text()
            assert "Último uso" in pt and "<td>nunca</td>" in pt
    finally:
        await runtime.aclose()

    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n', encoding="utf-8")
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["keys", "list", "--config", str(config)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert "LAST USED" in header
    listed = {row.split()[0]: row for row in rows}
    start = header.index("LAST USED")
    assert listed["ops"][start:start + 16] == "2026-11-22 14:43"  # the CLI speaks UTC, as CREATED does
    assert listed["unused"][start:start + 5] == "never"
