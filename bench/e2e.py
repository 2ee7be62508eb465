"""Scenario 3, end to end: from the POST to the SMTP sink's acceptance, at a steady rate.

The gateway runs as in the ingest scenario (`gateway.app.start`, this process, SQLite or
a fresh PostgreSQL database), but with its real dispatcher and `SMTPTransport`
(`pool_size` = K connections) to the sink of bench/sink.py, which records when it
accepted each message and its Message-ID (`<notification-ID.INSTALLATION@domain>`). An open-loop
load generator (bench/loadgen.py, `"mode": "open"`, a child process) posts protocol.opened
events that notify by email only, R a second for S seconds, each at its scheduled time
whatever the previous answers did, and records when each POST was due and sent and the
notification id the answer gave. Both clocks are `time.time()` on one machine.

Per offered rate: the achieved rate (202 answers ÷ the time from the first scheduled POST
to the last answer, or S if that is shorter); p50/p95/p99 of POST → sink acceptance over
the emails that arrived, from the time each POST was due (open loop, no coordinated
omission); p99 of the HTTP answer, from the actual send; how late the generator itself
sent (its own lag, p99, included in the end-to-end figures); errors; and whether every
email arrived by the end of the run plus a grace (E2E_GRACE).

A rate is sustainable when achieved ≥ 95 % of offered, every email arrived (no error,
none missing) and the end-to-end p99 is under 1 s; the report names the highest rate
tried that was. The target: end-to-end p99 under 250 ms at 200 events/s on SQLite.
"""

from __future__ import annotations

import asyncio
import collections
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.child import run_generator
from bench.databases import PostgresStore, SQLiteStore
from bench.progress import say
from bench.report import E2E_GRACE, E2E_SUSTAINED_P99, E2E_SUSTAINED_SHARE
from bench.serving import HOST, GCPauses, served
from bench.settings import SENDER, bench_settings
from bench.sink import SinkProcess
from bench.stats import latency_summary, percentile
from gateway.api import keys
from gateway.app import build_runtime
from gateway.delivery.dispatcher import message_id_for
from gateway.store.installation import installation_key

Store = SQLiteStore | PostgresStore
WARM_EVENTS = 8  # untimed events first: connections open, templates and SQL compile, the SMTP pool warms
WARM_TIMEOUT = 60.0  # seconds for the warm-up emails to reach the sink
POLL = 0.1  # seconds between looks at the sink while waiting


async def _generator(spec: dict[str, Any], sink: SinkProcess) -> dict[str, Any]:
    """Run the open-loop generator; say `go` once the warm-up emails reached the sink."""
    return await run_generator(spec, before_go=lambda: _wait_for_warm_up(sink, spec["warm"]))


async def _wait_for_warm_up(sink: SinkProcess, count: int) -> None:
    seen = 0
    deadline = time.monotonic() + WARM_TIMEOUT
    while seen < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {seen} of {count} warm-up emails reached the sink")
        await asyncio.sleep(POLL)
        seen += len(await sink.dump())  # forgotten: the timed run starts from an empty record


async def _arrivals(sink: SinkProcess, expected: set[str], deadline: float) -> dict[str, list[float]]:
    """Every acceptance the sink records until all `expected` Message-IDs arrived or `deadline` (wall clock)."""
    seen: dict[str, list[float]] = collections.defaultdict(list)
    while True:
        for message_id, at in await sink.dump():
            seen[message_id].append(at)
        if expected <= seen.keys() or time.time() > deadline:
            return seen
        await asyncio.sleep(POLL)


def figures(database: str, rate: int, seconds: float, result: dict[str, Any], arrivals: dict[str, list[float]],
            connections: int, workers: int, cpu_s: float = float("nan"), installation: str = "") -> dict[str, Any]:
    """One round's figures from the generator's record and the sink's."""
    events = [e for e in result["events"] if e]
    accepted = [e for e in events if e[3] == "202"]
    # From the scheduled send, not the actual one: a POST the generator could only send late
    # (its in-flight cap, or no CPU) still counts its wait, as an upstream's would.
    sent_at = {message_id_for(nid, SENDER, installation): e[0] for e in accepted for nid in e[4]}
    latencies = [min(arrivals[m]) - t for m, t in sent_at.items() if m in arrivals]
    delivered = len(latencies)
    last_answer = max((e[1] + e[2] for e in events), default=result["started"])
    # Over the schedule's length at least: answers that keep up give exactly the offered rate.
    achieved = len(accepted) / max(last_answer - result["started"], seconds)
    offered = len(result["events"])
    summary = latency_summary(latencies)
    row = {
        "scenario": "e2e", "database": database, "what": "gateway", "role": "gateway", "concurrency": rate,
        "offered_rate": rate, "seconds": seconds, "count": offered, "rate": achieved,
        "connections": connections, "workers": workers,
        **summary,
        "http_p99_ms": percentile([e[2] for e in events], 99) * 1000,
        "lag_p99_ms": percentile([e[1] - e[0] for e in events], 99) * 1000,
        "errors": offered - len(accepted), "expected_emails": len(sent_at), "delivered": delivered,
        "duplicates": sum(len(arrivals[m]) - 1 for m in sent_at if m in arrivals),
        "statuses": result["statuses"],
        # This process's CPU (the gateway: HTTP, writer thread, dispatcher) per accepted event:
        # steadier than rates on a shared machine, and what the one-core ceiling is made of.
        "cpu_ms_per_event": cpu_s / len(accepted) * 1000 if accepted else float("nan"),
    }
    row["all_arrived"] = row["errors"] == 0 and delivered == len(sent_at) == offered
    row["sustainable"] = (achieved >= E2E_SUSTAINED_SHARE * rate and row["all_arrived"]
                          and summary["p99_ms"] < E2E_SUSTAINED_P99)
    return row


async def e2e_round(store: Store, template: str, folder: Path, sink: SinkProcess, *, rate: int, seconds: float,
                    connections: int, workers: int, label: str) -> dict[str, Any]:
    url = await store.clone(template)
    settings = bench_settings(
        folder, url,
        email={"transport": "smtp", "smtp": {"host": sink.host, "port": sink.port, "starttls": False,
                                              "pool_size": connections}},
        dispatch={"workers": workers},
        sweeps={"enabled": False},  # nothing to sweep in a fresh database; keep the loop for the events
    )
    runtime = build_runtime(settings)
    try:
        async with served(runtime) as (_, port):
            await sink.dump()  # forget whatever an earlier round's gateway sent after its record was taken
            key = await keys.create_key(runtime.db, "bench", ["events:write"], now=datetime.now(timezone.utc))
            spec = {"mode": "open", "url": f"http://{HOST}:{port}", "key": key, "rate": rate, "seconds": seconds,
                    "prefix": label, "label": label, "warm": WARM_EVENTS, "notify": ["email"]}
            with GCPauses() as pauses:
                result = await _generator(spec, sink)
                installation = await runtime.db.query(installation_key)  # every Message-ID carries it
                expected = {message_id_for(nid, SENDER, installation)
                            for e in result["events"] if e and e[3] == "202" for nid in e[4]}
                arrivals = await _arrivals(sink, expected, result["finished"] + E2E_GRACE)
            cpu_s = time.process_time() - result["cpu_at_go"]
    finally:
        await store.drop(url)
    row = figures(store.name, rate, seconds, result, arrivals, connections, workers, cpu_s, installation)
    row.update(pauses.figures())
    if result["errors"]:
        say(f"{label}: {row['errors']} requests not accepted, e.g. {result['errors'][0]}")
    return row


async def run_e2e(stores: list[Store], folder: Path, *, rates: list[int], seconds: float, rounds: int,
                  connections: int, workers: int) -> list[dict[str, Any]]:
    """Every (database, rate): `rounds` runs of `seconds` each, on a fresh database each time."""
    results = []
    async with SinkProcess(record=True) as sink:
        for store in stores:
            template = await store.template("e2e")
            for r in range(1, rounds + 1):
                for rate in rates:
                    label = f"e2e-{store.name}-{rate}eps-r{r}"
                    say(f"{label}: {rate} events/s for {seconds:g} s, email only")
                    row = await e2e_round(store, template, folder, sink, rate=rate, seconds=seconds,
                                          connections=connections, workers=workers, label=label)
                    row["round"] = r
                    say(f"{label}: achieved {row['rate']:.0f}/s, end to end p50 {row['p50_ms']:.0f} ms, "
                        f"p99 {row['p99_ms']:.0f} ms, {row['delivered']}/{row['count']} emails"
                        f"{'' if row['sustainable'] else ' (not sustained)'}")
                    results.append(row)
    return results
