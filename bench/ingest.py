"""Scenario 1, ingest: POST /v1/events against a gateway served in this process.

The gateway runs from `gateway.app.start` on 127.0.0.1, port 0, SQLite (or PostgreSQL)
in a temporary folder. The load generator is a child process (bench/loadgen.py): it has
the other core, as a real client would, instead of sharing this process's GIL.

The dispatcher is parked by default: its transports do nothing, its poll interval is an
hour and nothing wakes it (neither the service nor, on PostgreSQL, the NOTIFY of a commit),
so the figure is the API and the database alone and the 2N notifications stay queued.
`--ingest-dispatcher running` lets it claim and record those rows with the same do-nothing
transports while events arrive.

Baseline, same run, same database kind: N tasks each doing one INSERT of an event row
(the same JSON payload, a comparable answer) and one COMMIT through `Database.write()`:
what the database allows with one commit per event. The gateway's own transaction per
event is heavier (a counter, a protocol, the event, two rendered notifications).

Raw server, same run: a plain aiohttp server (bench/raw_server.py) that writes each
POSTed event with aiosqlite (`BEGIN IMMEDIATE; INSERT; COMMIT`) or asyncpg (one
autocommitted INSERT) and answers 202, posted to by the same load generator: what HTTP
and the database allow with nothing else in between. The `Database.write()` baseline goes
through SQLAlchemy and skips HTTP; this one is the honest ceiling.

Reference, same run: the gateway itself with group commit off (a batch of one: one
commit per event, the naive design), so the gain of group commit is measured apart from
everything else the gateway does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.child import run_generator
from bench.databases import PostgresStore, SQLiteStore
from bench.loadgen import opened_event
from bench.progress import Ticker, say
from bench.raw_server import PostgresServer, SQLiteServer, serve
from bench.serving import HOST, GCPauses, served
from bench.settings import bench_settings
from bench.stats import latency_summary
from gateway.api import keys
from gateway.app import build_runtime
from gateway.config import DispatchSettings
from gateway.delivery.channels.base import Message, Receipt
from gateway.store.database import Database
from gateway.store.models import Event, Protocol

Store = SQLiteStore | PostgresStore
PARK = "1h"  # poll interval that keeps a parked dispatcher asleep for the whole run


class NullTransport:
    """Accepts every message at once: the dispatcher's cost without a provider's."""

    async def send(self, message: Message) -> Receipt:
        return Receipt(provider_id=f"null-{message.notification_id}")

    async def aclose(self) -> None:
        pass


def figures(database: str, what: str, clients: int, count: int, elapsed: float, latencies: list[float],
            errors: int, **extra: Any) -> dict[str, Any]:
    return {"scenario": "ingest", "database": database, "what": what, "clients": clients, "count": count,
            "elapsed_s": elapsed, "rate": count / elapsed, "errors": errors, **latency_summary(latencies), **extra}


async def _load(url: str, key: str, *, clients: int, events: int, label: str) -> dict[str, Any]:
    """The load generator's result, with `cpu_s`: this process's CPU time from its `go` to its result."""
    result = await run_generator({"url": url, "key": key, "events": events, "clients": clients, "prefix": label,
                                  "label": label})
    return {**result, "cpu_s": time.process_time() - result["cpu_at_go"]}


GATEWAY = "gateway"
ONE_COMMIT = "gateway, group commit off (one commit per event)"


def park(runtime: Any) -> None:
    """Nothing wakes the dispatcher: neither the service's enqueues nor, on PostgreSQL, the NOTIFY
    its commits send (the listener would hand each to the dispatcher, which would claim and record
    the new rows: ~12 % of the process's CPU, profiled, before this was noticed)."""
    runtime.service.on_enqueued = lambda: None
    runtime.dispatcher.wake = lambda: None  # what the PostgreSQL listener calls (gateway/app.py)


async def gateway_round(store: Store, template: str, folder: Path, *, clients: int, events: int, label: str,
                        dispatcher: str, group_commit: bool = True) -> dict[str, Any]:
    url = await store.clone(template)
    parked = dispatcher == "parked"
    settings = bench_settings(folder, url, dispatch={"poll_interval": PARK} if parked else {})
    runtime = build_runtime(settings, transports={"email": NullTransport(), "sms": NullTransport()})
    if parked:
        park(runtime)
    if not group_commit:
        runtime.service.commits.max_batch = 1
    try:
        async with served(runtime) as (_, port):
            key = await keys.create_key(runtime.db, "bench", ["events:write"], now=datetime.now(timezone.utc))
            # result["cpu_s"]: the CPU time of this process (the gateway; the load generator is a child),
            # steadier than the rate on a shared machine and what bounds it once the process fills its core;
            # the collector's share of it timed apart (gateway/daemon/heap.py sets how often it runs).
            with GCPauses() as pauses:
                result = await _load(f"http://{HOST}:{port}", key, clients=clients, events=events, label=label)
    finally:
        await store.drop(url)
    accepted = result["statuses"].get("202", 0)
    if result["errors"]:
        say(f"{label}: {events - accepted} requests not accepted, e.g. {result['errors'][0]}")
    return figures(store.name, GATEWAY if group_commit else ONE_COMMIT, clients, events, result["elapsed"],
                   result["latencies"],
                   events - accepted, dispatcher=dispatcher, statuses=result["statuses"],
                   cpu_us_per_event=result["cpu_s"] / accepted * 1e6 if accepted else float("nan"),
                   gc_us_per_event=pauses.figures()["gc_total_ms"] * 1e3 / accepted if accepted else float("nan"))


def _event_row(protocol_id: int, event_id: str, n: int, now: datetime) -> dict[str, Any]:
    data = opened_event(event_id, n)["data"]
    answer = {
        "protocol": {"number": f"20261122{n:08d}0", "status": "open", "opened_at": "2026-11-22T14:43:00Z",
                     "deadline_at": "2026-11-30T02:59:59Z"},
        "notifications": [{"id": 2 * n + 1, "channel": "email", "status": "queued"},
                          {"id": 2 * n + 2, "channel": "sms", "status": "queued"}],
    }
    return {"protocol_id": protocol_id, "source": "urn:bench:crm", "event_id": event_id, "type": "protocol.opened",
            "occurred_at": now, "received_at": now, "data": data,
            "fingerprint": "sha256:" + hashlib.sha256(json.dumps(data).encode()).hexdigest(), "answer": answer}


async def _seed_protocol(db: Database, now: datetime) -> int:
    async with db.write() as session:
        protocol = Protocol(number="000000000001", issued_by="upstream", status="open", subject="bench",
                            profile="br-sac", consumer_locale="pt-BR", consumer_timezone="America/Sao_Paulo",
                            opened_at=now, received_at=now, deadline_at=now + timedelta(days=7),
                            legal_hold=False, updated_at=now)
        session.add(protocol)
        await session.flush()
        return protocol.id


async def baseline_round(store: Store, template: str, *, clients: int, events: int, label: str) -> dict[str, Any]:
    url = await store.clone(template)
    # Built as build_runtime builds the gateway's, so both meet the same pools.
    db = Database(url, pool_size=max(10, DispatchSettings().workers + 2))
    try:
        now = datetime.now(timezone.utc)
        protocol_id = await _seed_protocol(db, now)
        rows = [_event_row(protocol_id, f"{label}-{n}", n, now) for n in range(events)]
        for n in range(clients):  # warm-up, untimed, as the load generator does for the gateway
            async with db.write() as session:
                await session.execute(insert(Event), _event_row(protocol_id, f"{label}-warm-{n}", events + n, now))
        latencies: list[float] = []
        ticker = Ticker(label, events)
        queue = iter(rows)

        async def worker() -> None:
            for row in queue:
                started = time.perf_counter()
                async with db.write() as session:
                    await session.execute(insert(Event), row)
                latencies.append(time.perf_counter() - started)
                ticker.add()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    finally:
        await db.dispose()
        await store.drop(url)
    return figures(store.name, "baseline: 1 INSERT + COMMIT per event", clients, events, elapsed, latencies, 0)


RAW = "raw aiohttp server: 1 INSERT + COMMIT per request"


async def raw_round(store: Store, template: str, *, clients: int, events: int, label: str) -> dict[str, Any]:
    url = await store.clone(template)
    server: SQLiteServer | PostgresServer = (
        SQLiteServer(url.split(":///", 1)[1]) if store.name == "sqlite"
        else PostgresServer(url, pool_size=max(10, DispatchSettings().workers + 2)))  # the gateway's pool size
    try:
        runner, port = await serve(server, HOST)
        try:
            result = await _load(f"http://{HOST}:{port}", "-", clients=clients, events=events, label=label)
        finally:
            await runner.cleanup()
        written = await server.rows() - clients  # the load generator's untimed warm-up, one event per client
    finally:
        await server.close()
        await store.drop(url)
    accepted = result["statuses"].get("202", 0)
    if result["errors"]:
        say(f"{label}: {events - accepted} requests not accepted, e.g. {result['errors'][0]}")
    return figures(store.name, RAW, clients, events, result["elapsed"], result["latencies"], events - accepted,
                   rows_written=written,
                   cpu_us_per_event=result["cpu_s"] / accepted * 1e6 if accepted else float("nan"))


async def run_ingest(stores: list[Store], folder: Path, *, clients: list[int], events: int, rounds: int,
                     dispatcher: str) -> list[dict[str, Any]]:
    """Every (database, clients) pair: baseline and gateway alternately, `rounds` times each."""
    results = []
    for store in stores:
        template = await store.template("ingest")
        for n in clients:
            for r in range(1, rounds + 1):
                variants = ["raw", "baseline", "gateway", "one-commit"]
                turn = (r - 1) % len(variants)
                for what in variants[turn:] + variants[:turn]:  # each variant takes each place in turn
                    label = f"ingest-{store.name}-c{n}-r{r}-{what}"
                    say(f"{label}: {events} events")
                    if what == "raw":
                        row = await raw_round(store, template, clients=n, events=events, label=label)
                    elif what == "baseline":
                        row = await baseline_round(store, template, clients=n, events=events, label=label)
                    else:
                        row = await gateway_round(store, template, folder, clients=n, events=events,
                                                  label=label, dispatcher=dispatcher,
                                                  group_commit=what == "gateway")
                    row["round"] = r
                    row["role"] = {"raw": "raw", "baseline": "baseline", "gateway": "gateway",
                                   "one-commit": "reference"}[what]
                    say(f"{label}: {row['rate']:.0f} events/s, p50 {row['p50_ms']:.1f} ms, "
                        f"p99 {row['p99_ms']:.1f} ms")
                    results.append(row)
    return results

