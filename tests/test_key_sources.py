"""Keys bound to CloudEvents sources (issue 14, item 3; DESIGN "Keys bound to sources").

`keys create NAME --scopes ... --sources urn:a,urn:b` limits a key to those sources: an event
from another is 403 (in a batch, that entry; the others stand), so one upstream's key cannot
take another upstream's `(source, id)` pairs. Without `--sources` a key may use any source.
The keys are made with the real CLI, in-process, against the test's database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.cli import main
from tests.helpers import make_settings, opened_event

CE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


@pytest.fixture
async def gw(tmp_path: Path, db_url: str) -> AsyncIterator[tuple[Runtime, TestClient]]:
    runtime = build_runtime(make_settings(tmp_path, db_url, sweeps={"enabled": False}))
    await prepare(runtime)
    async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
        yield runtime, client
    await runtime.aclose()


async def cli(tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    config = tmp_path / "settings.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    capsys.readouterr()
    status = await asyncio.to_thread(main, [*args, "--config", str(config)])  # the CLI runs its own loop
    out, err = capsys.readouterr()
    return status, out, err


def from_source(event_id: str, source: str) -> dict:
    return {**opened_event(event_id), "source": source}


async def post(client: TestClient, key: str, body, content_type: str = CE, **headers: str):
    r = await client.post("/v1/events", data=json.dumps(body),
                          headers={"Authorization": f"Bearer {key}", "Content-Type": content_type, **headers})
    return r.status, await r.json()


async def test_a_key_bound_to_sources_posts_only_as_them(gw, tmp_path, db_url, capsys):
    _, client = gw
    status, out, _ = await cli(tmp_path, db_url, capsys, "keys", "create", "crm-a", "--scopes", "events:write",
                               "--sources", "urn:acme:crm, urn:acme:bot")
    assert status == 0
    key = out.strip()

    assert (await post(client, key, from_source("e1", "urn:acme:crm")))[0] == 202
    assert (await post(client, key, from_source("e1", "urn:acme:bot")))[0] == 202
    status, body = await post(client, key, from_source("e1", "urn:other:crm"))
    assert status == 403 and body["type"] == "/problems/forbidden" and "source" in body["detail"]

    # Binary mode: the source comes from the ce-source header.
    status, body = await post(client, key, opened_event()["data"], "application/json", **{
        "ce-specversion": "1.0", "ce-id": "b1", "ce-source": "urn:other:crm", "ce-type": "protocol.opened"})
    assert status == 403

    # In a batch the foreign event is a 403 in its slot; the others are accepted.
    status, body = await post(client, key, [from_source("b1", "urn:acme:crm"), from_source("b2", "urn:other:crm"),
                                            from_source("b3", "urn:acme:bot")], BATCH)
    assert status == 200
    assert [r.get("status") for r in body["results"]] == [None, 403, None]
    assert body["results"][0]["protocol"]["status"] == "open"


async def test_the_real_upstream_keeps_its_event_ids(gw, tmp_path, db_url, capsys):
    """The attack of the issue: another upstream's key posts under the CRM's source and ids
    first, and the CRM's real events would then be 409. Bound keys make that a 403."""
    _, client = gw
    crm = (await cli(tmp_path, db_url, capsys, "keys", "create", "crm", "--scopes", "events:write",
                     "--sources", "urn:acme:crm"))[1].strip()
    bot = (await cli(tmp_path, db_url, capsys, "keys", "create", "bot", "--scopes", "events:write",
                     "--sources", "urn:acme:bot"))[1].strip()
    squatted = {**from_source("crm-4711", "urn:acme:crm"), "data": {**opened_event()["data"], "subject": "Outro"}}
    assert (await post(client, bot, squatted))[0] == 403
    assert (await post(client, crm, from_source("crm-4711", "urn:acme:crm")))[0] == 202


async def test_without_sources_a_key_may_use_any_and_keys_list_shows_them(gw, tmp_path, db_url, capsys):
    _, client = gw
    free = (await cli(tmp_path, db_url, capsys, "keys", "create", "free", "--scopes", "events:write"))[1].strip()
    await cli(tmp_path, db_url, capsys, "keys", "create", "bound", "--scopes", "events:write",
              "--sources", "urn:b,urn:a")
    assert (await post(client, free, from_source("x", "urn:anything:at-all")))[0] == 202

    status, out, _ = await cli(tmp_path, db_url, capsys, "keys", "list")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split()[-1] == "SOURCES"
    listed = {row.split()[0]: row.split()[-1] for row in rows}
    assert listed == {"bound": "urn:a,urn:b", "free": "any"}


async def test_an_empty_sources_list_is_refused_by_the_cli(tmp_path, db_url, capsys):
    status, out, err = await cli(tmp_path, db_url, capsys, "keys", "create", "x", "--scopes", "events:write",
                                 "--sources", " , ")
    assert (status, out) == (1, "")
    assert "at least one source" in err
