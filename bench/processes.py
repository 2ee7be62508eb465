"""Scenario 5, processes: does a second gateway process on one PostgreSQL drain faster?

PostgreSQL only (SQLite has one writer: a second process could only queue behind it).
The outbox of a template database is filled once with N emails through the service, as
in the email drain, then parked (`next_attempt_at` a day ahead). Each round clones it,
starts P `protocol-gateway run` daemons as the user would (subprocesses, settings in the
environment, SMTP to the recording sink of bench/sink.py, sweeps off, K connections and
W workers each), waits until each answers /healthz, then releases the outbox in one
transaction (`next_attempt_at = now()` and the NOTIFY that enqueueing sends, so every
daemon wakes at once) and times from just before that commit to the sink's acceptance
of the last message (the sink records each acceptance's `time.time()`).

Checked each round: the sink got N distinct Message-IDs and none twice (also after the
daemons stopped, when a late duplicate would show), N rows are recorded as sent, and
every daemon exited 0 on SIGTERM. Reported: notifications/s for 1 and 2 processes and
their ratio, with each daemon's share of the sends (its `outbox_sent` log lines).
The daemons, the sink and the PostgreSQL server all share the machine's cores.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from gateway.store.listen import CHANNEL

from bench.child import ROOT
from bench.databases import PostgresStore, _plain
from bench.drain import prefill
from bench.progress import say
from bench.settings import REPLY_TO, SENDER
from bench.sink import SinkProcess

START_TIMEOUT = 60.0  # seconds for a daemon to answer /healthz
DRAIN_TIMEOUT = 300.0  # seconds for the sink to see every message once released
RECORD_TIMEOUT = 30.0  # seconds for the last outcomes to be committed after the sink saw them
STOP_TIMEOUT = 30.0  # seconds for a daemon to exit on SIGTERM
POLL = 0.05  # seconds between looks at the sink
PARKED = "now() + interval '1 day'"  # prefilled rows wait there until the round releases them


async def park(url: str) -> None:
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute(f"UPDATE notifications SET next_attempt_at = {PARKED} WHERE status = 'queued'")
    finally:
        await conn.close()


async def release(url: str) -> float:
    """Make every parked row due and wake every daemon, in one transaction; returns when it began."""
    conn = await asyncpg.connect(_plain(url))
    try:
        began = time.time()
        async with conn.transaction():
            await conn.execute("UPDATE notifications SET next_attempt_at = now() WHERE status = 'queued'")
            await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
        return began
    finally:
        await conn.close()


async def sent_count(url: str) -> int:
    conn = await asyncpg.connect(_plain(url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM notifications WHERE status = 'sent'"))
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """One `protocol-gateway run` with its own folder, port and log."""

    def __init__(self, folder: Path, db_url: str, sink: SinkProcess, *, connections: int, workers: int) -> None:
        self.folder = folder
        self.port = free_port()
        self.log = folder / "daemon.stderr"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        # The code the bench was started with, even from a frozen copy of the tree.
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
        self.env.update({
            "GATEWAY_DATABASE__URL": db_url, "GATEWAY_HTTP__PORT": str(self.port),
            "GATEWAY_EMAIL__TRANSPORT": "smtp", "GATEWAY_EMAIL__FROM": SENDER, "GATEWAY_EMAIL__REPLY_TO": REPLY_TO,
            "GATEWAY_EMAIL__SMTP__HOST": sink.host, "GATEWAY_EMAIL__SMTP__PORT": str(sink.port),
            "GATEWAY_EMAIL__SMTP__STARTTLS": "false", "GATEWAY_EMAIL__SMTP__POOL_SIZE": str(connections),
            "GATEWAY_DISPATCH__WORKERS": str(workers), "GATEWAY_DISPATCH__POLL_INTERVAL": "200ms",
            "GATEWAY_SWEEPS__ENABLED": "false", "GATEWAY_SMS__FILE": str(folder / "sms.jsonl"),
        })
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "run", cwd=self.folder, env=self.env,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr)

    async def healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession() as http:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"a gateway daemon exited {self.process.returncode} at start; "
                                       f"its log: {self.log}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as r:
                        if r.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"a gateway daemon did not answer /healthz; its log: {self.log}")
                await asyncio.sleep(0.1)

    async def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode

    def sent(self) -> int:
        """How many sends this daemon logged (`outbox_sent`)."""
        count = 0
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                count += json.loads(line).get("action") == "outbox_sent"
        return count


async def _until_all_arrived(sink: SinkProcess, count: int, seen: collections.Counter[str],
                             arrived: list[float]) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while len(seen) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(seen)} of {count} emails reached the sink in {DRAIN_TIMEOUT:g} s")
        await asyncio.sleep(POLL)
        for message_id, at in await sink.dump():
            seen[message_id] += 1
            arrived.append(at)


async def _until_recorded(url: str, count: int) -> int:
    deadline = time.monotonic() + RECORD_TIMEOUT
    while (sent := await sent_count(url)) < count and time.monotonic() < deadline:
        await asyncio.sleep(POLL)
    return sent


async def processes_round(store: PostgresStore, template: str, folder: Path, sink: SinkProcess, *, processes: int,
                          count: int, connections: int, workers: int, label: str) -> dict[str, Any]:
    url = await store.clone(template)
    daemons = [Daemon(folder / f"{label}-{n}", url, sink, connections=connections, workers=workers)
               for n in range(processes)]
    seen: collections.Counter[str] = collections.Counter()
    arrived: list[float] = []
    codes: list[int | None] = []
    try:
        for daemon in daemons:
            await daemon.start()
        await asyncio.gather(*(d.healthy() for d in daemons))
        await sink.dump()  # forget anything earlier
        began = await release(url)
        await _until_all_arrived(sink, count, seen, arrived)
        elapsed = max(arrived) - began
        sent = await _until_recorded(url, count)
    finally:
        codes = [await d.stop() for d in daemons]
        for message_id, _ in await sink.dump():  # a duplicate sent late shows here
            seen[message_id] += 1
        await store.drop(url)
    return {
        "scenario": "processes", "database": store.name, "role": "gateway" if processes > 1 else "baseline",
        "what": f"{processes} process{'es' if processes > 1 else ''}", "processes": processes,
        "concurrency": connections, "connections": connections, "workers": workers, "count": count,
        "elapsed_s": elapsed, "rate": count / elapsed, "sink_received": sum(seen.values()),
        "distinct": len(seen), "duplicates": sum(n - 1 for n in seen.values()), "recorded_sent": sent,
        "sent_by": [d.sent() for d in daemons], "exit_codes": codes,
    }


async def run_processes(store: PostgresStore, folder: Path, *, notifications: int, processes: list[int],
                        connections: int, rounds: int, workers: int) -> list[dict[str, Any]]:
    """1 then 2 daemons (or `processes`), alternating their order each round, on fresh copies of one outbox."""
    results = []
    say(f"processes: filling a template outbox with {notifications} emails (not timed)")

    async def fill(url: str) -> None:
        await prefill(url, folder, notifications)
        await park(url)

    template = await store.template("processes", fill=fill)
    async with SinkProcess(record=True) as sink:
        for r in range(1, rounds + 1):
            order = processes if r % 2 else processes[::-1]
            for p in order:
                label = f"processes-{store.name}-p{p}-r{r}"
                say(f"{label}: {notifications} emails, {p} daemon(s), {connections} connections and "
                    f"{workers} workers each")
                row = await processes_round(store, template, folder, sink, processes=p, count=notifications,
                                            connections=connections, workers=workers, label=label)
                row["round"] = r
                _check(label, row)
                say(f"{label}: {row['rate']:.0f} notifications/s ({row['elapsed_s']:.2f} s), "
                    f"sent by each: {row['sent_by']}")
                results.append(row)
    return results


def _check(label: str, row: dict[str, Any]) -> None:
    problems = []
    if row["distinct"] != row["count"] or row["duplicates"]:
        problems.append(f"the sink got {row['distinct']} distinct emails of {row['count']}, "
                        f"{row['duplicates']} duplicates")
    if row["recorded_sent"] != row["count"]:
        problems.append(f"{row['recorded_sent']} of {row['count']} recorded as sent")
    if any(code != 0 for code in row["exit_codes"]):
        problems.append(f"daemon exit codes {row['exit_codes']}")
    if problems:
        say(f"{label}: " + "; ".join(problems))
