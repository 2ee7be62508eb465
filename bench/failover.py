"""Drain with two relays, the first one refusing or down, against raw aiosmtplib on the healthy one.

    python -m bench.failover                         # 2000 emails, 3 rounds, SQLite
    python -m bench.failover --notifications 500 --rounds 1 --out /tmp/x

One outbox of rendered emails (filled through the service, as in the drain scenario) is
drained, each round from a fresh copy, by:

- baseline: raw aiosmtplib to the healthy relay, emails built beforehand (bench/drain.py's
  `raw_round`), K senders on one connection each;
- gateway, one relay: the healthy relay alone (the drain scenario's gateway row);
- gateway, first relay refusing: `email.smtp = [refusing, healthy]`, the first answering
  every RCPT with 451 (a transient refusal: the send moves on to the second); the breaker
  opens after `dispatch.breaker_failures` (5) and the rest go straight to the healthy one;
- gateway, first relay down: the same with nothing listening on the first relay's port;
- gateway, refusing, no breaker: `breaker_failures` past any count, so every send asks the
  refusing relay first: what the breaker saves.

Each relay is bench/sink.py in a process of its own. The order of the variants turns each
round; the report gives medians. Figures go to bench/results/failover-<date>-<time>.md and
.json (smoke runs: give --out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench import machine
from bench.databases import SQLiteStore
from bench.drain import prefill, raw_round, rendered_messages
from bench.progress import say
from bench.settings import SENDER, bench_settings
from bench.sink import SinkProcess
from gateway.app import build_runtime
from gateway.delivery.channels.email_message import build_email
from gateway.store.models import Attempt, Notification

RESULTS = Path(__file__).resolve().parent / "results"
REFUSAL = "451 4.3.0 try later"
CONNECTIONS = 4  # SMTP connections per relay, and raw senders
NO_BREAKER = 1_000_000  # breaker_failures past any count: the breaker never opens
VARIANTS = ("raw", "one relay", "first refusing", "first down", "refusing, no breaker")


def free_port() -> int:
    """A loopback port nothing listens on: the relay that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def relay(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "host": "127.0.0.1", "port": port, "starttls": False, "pool_size": CONNECTIONS}


async def gateway_round(store: SQLiteStore, template: str, folder: Path, healthy: SinkProcess, relays: list[dict[str, Any]],
                        *, count: int, breaker_failures: int, label: str) -> dict[str, Any]:
    url = await store.clone(template)
    settings = bench_settings(folder, url, email={"transport": "smtp", "smtp": relays},
                              dispatch={"breaker_failures": breaker_failures})
    runtime = build_runtime(settings)
    try:
        before, _ = await healthy.count()
        started = time.perf_counter()
        await runtime.dispatcher.run_until_idle()
        elapsed = time.perf_counter() - started
        async with runtime.db.read() as session:
            sent = await session.scalar(select(func.count()).where(Notification.status == "sent"))
            failed_over = await session.scalar(select(func.count()).where(Attempt.outcome == "failed_over"))
        after, _ = await healthy.count()
    finally:
        await runtime.aclose()
        await store.drop(url)
    if sent != count:
        say(f"{label}: only {sent} of {count} notifications were recorded as sent")
    return {"elapsed_s": elapsed, "rate": count / elapsed, "healthy_received": after - before, "recorded_sent": sent,
            "failed_over": failed_over}


async def run(folder: Path, *, notifications: int, rounds: int) -> list[dict[str, Any]]:
    store = SQLiteStore(folder)
    say(f"failover: filling a template outbox with {notifications} emails (not timed)")
    template = await store.template("failover", fill=lambda url: prefill(url, folder, notifications))
    messages = await rendered_messages(template)
    emails = [build_email(m, SENDER) for m in messages]
    results = []
    async with SinkProcess() as healthy, SinkProcess(refuse=REFUSAL) as refusing:
        down_port = free_port()
        setups = {
            "one relay": ([relay("healthy", healthy.port)], 5),
            "first refusing": ([relay("refusing", refusing.port), relay("healthy", healthy.port)], 5),
            "first down": ([relay("down", down_port), relay("healthy", healthy.port)], 5),
            "refusing, no breaker": ([relay("refusing", refusing.port), relay("healthy", healthy.port)], NO_BREAKER),
        }
        for r in range(1, rounds + 1):
            turn = (r - 1) % len(VARIANTS)
            for what in VARIANTS[turn:] + VARIANTS[:turn]:
                label = f"failover-r{r}-{what}"
                say(f"{label}: {notifications} emails")
                if what == "raw":
                    row = await raw_round(healthy, messages, emails, connections=CONNECTIONS, label=label,
                                          database="sqlite")
                    row = {"elapsed_s": row["elapsed_s"], "rate": row["rate"], "healthy_received": row["sink_received"]}
                else:
                    relays, failures = setups[what]
                    row = await gateway_round(store, template, folder, healthy, relays, count=notifications,
                                              breaker_failures=failures, label=label)
                row.update(variant=what, round=r, count=notifications)
                say(f"{label}: {row['rate']:.0f} emails/s ({row['elapsed_s']:.2f} s)")
                results.append(row)
    return results


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for what in VARIANTS:
        mine = [r for r in rows if r["variant"] == what]
        out.append({"variant": what, "rate": statistics.median(r["rate"] for r in mine),
                    "failed_over": statistics.median(r.get("failed_over", 0) for r in mine),
                    "healthy_received": statistics.median(r["healthy_received"] for r in mine), "rounds": len(mine)})
    return out


def markdown(run_info: dict[str, Any]) -> str:
    base = next(s["rate"] for s in run_info["summary"] if s["variant"] == "raw")
    lines = [f"# Failover drain, {run_info['started']}", "",
             f"{run_info['notifications']} emails, {run_info['rounds']} rounds (medians), SQLite, "
             f"{CONNECTIONS} connections per relay; the first relay answers `{REFUSAL}` to every RCPT or is down.", "",
             "| variant | emails/s | vs raw aiosmtplib | failed-over attempts | healthy relay received |",
             "|---|---:|---:|---:|---:|"]
    for s in run_info["summary"]:
        lines.append(f"| {s['variant']} | {s['rate']:.0f} | {s['rate'] / base:.2f} | {s['failed_over']:.0f} | "
                     f"{s['healthy_received']:.0f} |")
    m = run_info["machine"]
    lines += ["", f"Machine: {m.get('nproc')} cores, {m.get('cpu')}, load {m.get('load_start')} -> {m.get('load_end')}."]
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> Path:
    started = datetime.now(timezone.utc)
    load_start = machine.load_average()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-failover-") as tmp:
        rows = await run(Path(tmp), notifications=args.notifications, rounds=args.rounds)
    info = machine.describe()
    run_info = {"started": started.isoformat(timespec="seconds"), "notifications": args.notifications,
                "rounds": args.rounds, "rounds_raw": rows, "summary": summary(rows),
                "machine": {"nproc": info.get("nproc"), "cpu": info.get("cpu"), "load_start": load_start,
                            "load_end": machine.load_average()}}
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stem = f"failover-{started:%Y%m%d-%H%M%S}"
    (out / f"{stem}.json").write_text(json.dumps(run_info, indent=2, default=str), encoding="utf-8")
    table = out / f"{stem}.md"
    table.write_text(markdown(run_info), encoding="utf-8")
    print(table.read_text(encoding="utf-8"))
    return table


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__.splitlines()[0])
    p.add_argument("--notifications", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", help="folder for the .md and .json (default bench/results/)")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
