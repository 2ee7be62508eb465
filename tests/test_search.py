"""Finding protocols (issue 18): GET /v1/protocols, `protocols list`, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.cli import main
from gateway.config import Settings
from gateway.protocols import search
from gateway.protocols.anonymize import anonymize
from gateway.store.models import Protocol, email_digest
from tests.helpers import FixedClock, admin_key, handle_event

RECEIVED = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
NOW = RECEIVED + timedelta(hours=1)

# label: (opened_at, email, phone, category, profile). Opened at 01:30 UTC on the 23rd is the
# 22nd in São Paulo (gateway.timezone), and 02:59 UTC on the 22nd is still the 21st there.
CASES = {
    "old_billing": ("2026-11-10T12:00:00Z", "maria@example.com", "+5511987654321", "billing", "br-sac"),
    "late_night": ("2026-11-23T01:30:00Z", "Maria@Example.COM", "+5511987654321", "billing", "br-sac"),
    "resolved": ("2026-11-29T12:00:00Z", "joao@example.com", "+5511912345678", "delivery", "br-sac-2008"),
    "edge_of_day": ("2026-11-22T02:59:00Z", "ana@example.com", "+5511955554444", None, "br-sac"),
}


async def post(runtime: Runtime, event_id: str, event_type: str, **data) -> dict:
    return await handle_event(runtime, event_id, event_type, received_at=RECEIVED, **data)


async def open_cases(runtime: Runtime) -> dict[str, str]:
    numbers = {}
    for label, (opened_at, email, phone, category, profile) in CASES.items():
        data = {"subject": f"Caso {label}", "opened_at": opened_at, "profile": profile,
                "consumer": {"name": "Pessoa", "email": email, "phone": phone}}
        if category:
            data["category"] = category
        numbers[label] = (await post(runtime, label, "protocol.opened", **data))["protocol"]["number"]
    await post(runtime, "resolve", "protocol.resolved", number=numbers["resolved"], resolution="Feito")
    return numbers


@pytest.fixture
async def cases(settings: Settings) -> AsyncIterator[tuple[Runtime, dict[str, str]]]:
    runtime = build_runtime(settings, clock=FixedClock(NOW))
    await prepare(runtime)
    yield runtime, await open_cases(runtime)
    await runtime.aclose()


async def find(runtime: Runtime, now: datetime = NOW, **query: str) -> list[str]:
    filters = search.parse_filters(query, zone="America/Sao_Paulo", regions=["BR"])
    async with runtime.db.read() as session:
        found, _ = await search.search(session, filters, now=now)
    return [f.number for f in found]


async def test_each_filter_finds_exactly_its_protocols_newest_first(cases) -> None:
    runtime, n = cases
    newest_first = [n["resolved"], n["late_night"], n["edge_of_day"], n["old_billing"]]
    assert await find(runtime) == newest_first
    # The address as the consumer spells it today, in any case; the phone in national form.
    assert await find(runtime, email="MARIA@example.com") == [n["late_night"], n["old_billing"]]
    assert await find(runtime, phone="(11) 98765-4321") == [n["late_night"], n["old_billing"]]
    assert await find(runtime, email="nobody@example.com") == []
    assert await find(runtime, status="resolved") == [n["resolved"]]
    assert await find(runtime, status="open, reopened") == [n["late_night"], n["edge_of_day"], n["old_billing"]]
    # Seven calendar days from 10 November ended on the 17th; on the 28th the others are within
    # theirs (the 28th and 29th, São Paulo's); by now every open one is past it, the resolved one is not.
    assert await find(runtime, now=datetime(2026, 11, 28, 12, tzinfo=timezone.utc), overdue="true") == [
        n["old_billing"]]
    assert await find(runtime, overdue="true") == [n["late_night"], n["edge_of_day"], n["old_billing"]]
    assert await find(runtime, category="billing") == [n["late_night"], n["old_billing"]]
    assert await find(runtime, profile="br-sac-2008") == [n["resolved"]]
    assert await find(runtime, number=n["edge_of_day"]) == [n["edge_of_day"]]
    # Days are São Paulo's: the 22nd holds the 01:30 UTC opening of the 23rd, not the 02:59 UTC one.
    assert await find(runtime, opened_from="2026-11-22", opened_to="2026-11-22") == [n["late_night"]]
    assert await find(runtime, opened_to="2026-11-21") == [n["edge_of_day"], n["old_billing"]]
    assert await find(runtime, email="maria@example.com", category="billing", opened_from="2026-11-11") == [
        n["late_night"]]


async def test_pages_walk_every_protocol_once_and_new_ones_do_not_shift_them(cases) -> None:
    runtime, n = cases
    seen: list[str] = []
    query: dict[str, str] = {"limit": "1"}
    for page in range(10):
        filters = search.parse_filters(query, zone="UTC", regions=["BR"])
        async with runtime.db.read() as session:
            found, following = await search.search(session, filters, now=NOW)
        seen += [f.number for f in found]
        if page == 0:  # opened while someone pages: newer than every page still to come
            await post(runtime, "newcomer", "protocol.opened", subject="Novo",
                       consumer={"email": "novo@example.com"})
        if following is None:
            break
        query["cursor"] = following
    assert seen == [n["resolved"], n["late_night"], n["edge_of_day"], n["old_billing"]]
    # Opened in the same instant, they still come in one order, the later received first.
    twins = [(await post(runtime, f"twin-{i}", "protocol.opened", subject="Gêmeo", opened_at="2026-11-25T10:00:00Z",
                         consumer={"email": f"twin{i}@example.com"}))["protocol"]["number"] for i in range(3)]
    walked, query = [], {"limit": "1", "opened_from": "2026-11-25", "opened_to": "2026-11-25"}
    while True:
        async with runtime.db.read() as session:
            found, following = await search.search(session, search.parse_filters(query, zone="UTC", regions=[]),
                                                    now=NOW)
        walked += [f.number for f in found]
        if following is None:
            break
        query["cursor"] = following
    assert walked == twins[::-1]


async def test_an_anonymized_protocol_is_no_longer_found_by_its_address(cases) -> None:
    runtime, n = cases
    async with runtime.db.write() as session:
        row = await session.scalar(select(Protocol).where(Protocol.number == n["resolved"]))
        assert row.consumer_email_digest == email_digest("JOAO@example.com")
        await anonymize(session, [row.id], at=NOW, actor="test", rules={row.id: "test"},
                        sqlite=runtime.db.url.startswith("sqlite"))
    assert await find(runtime, email="joao@example.com") == []
    assert await find(runtime, status="anonymized") == [n["resolved"]]


@pytest.fixture
async def api(cases) -> AsyncIterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    runtime, numbers = cases
    key = await admin_key(runtime, ["protocols:read"])
    async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
        yield client, {"Authorization": f"Bearer {key}"}, numbers


async def test_the_api_answers_pages_with_a_cursor(api) -> None:
    client, auth, n = api
    r = await client.get("/v1/protocols", params={"phone": "+5511987654321", "limit": "1"}, headers=auth)
    assert r.status == 200
    body = await r.json()
    assert [p["number"] for p in body["protocols"]] == [n["late_night"]]
    first = body["protocols"][0]
    assert first == {"number": n["late_night"], "status": "open", "subject": "Caso late_night", "category": "billing",
                     "profile": "br-sac", "opened_at": "2026-11-23T01:30:00Z", "deadline_at": first["deadline_at"],
                     "resolved_at": None}
    r = await client.get("/v1/protocols", params={"phone": "+5511987654321", "limit": "1",
                                                  "cursor": body["next_cursor"]}, headers=auth)
    body = await r.json()
    assert [p["number"] for p in body["protocols"]] == [n["old_billing"]] and body["next_cursor"] is None


@pytest.mark.parametrize(("query", "field"), [
    ({"phone": "not a phone"}, "phone"), ({"email": "maria@"}, "email"), ({"status": "closed"}, "status"),
    ({"overdue": "yes"}, "overdue"), ({"limit": "501"}, "limit"), ({"limit": "0"}, "limit"),
    ({"opened_from": "2026-02-30"}, "opened_from"), ({"opened_to": "22/11/2026"}, "opened_to"),
    ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"), ({"number": "12ab"}, "number"),
    ({"phones": "+5511987654321"}, "phones"), ({"category": ""}, "category"),
])
async def test_a_bad_filter_is_a_problem_naming_it(api, query, field) -> None:
    client, auth, _ = api
    r = await client.get("/v1/protocols", params=query, headers=auth)
    assert r.status == 422 and r.content_type == "application/problem+json"
    assert [e["field"] for e in (await r.json())["errors"]] == [field]


async def test_search_needs_protocols_read(api, cases) -> None:
    client, _, _ = api
    runtime, _ = cases
    key = await admin_key(runtime, ["events:write"])
    r = await client.get("/v1/protocols", headers={"Authorization": f"Bearer {key}"})
    assert r.status == 403


async def test_the_cli_lists_with_the_same_filters(cases, settings: Settings, tmp_path: Path, capsys,
                                                    monkeypatch) -> None:
    _runtime, n = cases
    config = tmp_path / "settings.toml"
    config.write_text(f'[database]\nurl = "{settings.database_url}"\n')
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    def cli(*args: str) -> int:
        return main(["protocols", "list", "--config", str(config), *args])

    assert await asyncio.to_thread(cli, "--email", "Maria@example.com", "--format", "json", "--limit", "1") == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["number"] for p in out["protocols"]] == [n["late_night"]] and out["next_cursor"]
    assert await asyncio.to_thread(cli, "--category", "delivery") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("NUMBER") and [line.split()[0] for line in lines[1:]] == [n["resolved"]]
    assert await asyncio.to_thread(cli, "--limit", "1000") == 2
    assert "--limit: expected a whole number from 1 to 500" in capsys.readouterr().err


def test_the_migration_digests_addresses_as_the_code_does() -> None:
    path = Path(__file__).resolve().parent.parent / "gateway/store/migrations/versions/0007_issue18_search_console.py"
    namespace: dict = {}
    exec(compile(path.read_text("utf-8"), str(path), "exec"), namespace)  # noqa: S102 (our own file)
    for email in ("maria@example.com", "Maria@Example.COM", "jösé@müller.example", "JÖSÉ@müller.example"):
        assert namespace["_digest"](email) == email_digest(email)
    assert email_digest("JÖSÉ@müller.example") == email_digest("jösé@müller.example")
