"""The soak: a steady stream of events for a set time against the daemon as a user runs it.

    python -m bench.soak                   # 10 minutes, 20 events a second, SQLite
    python -m bench.soak --minutes 60 --rate 50 --pg postgresql+asyncpg://...
    make soak SOAK_ARGS="--minutes 30"

`protocol-gateway run` in a subprocess sends email to a real SMTP server (aiosmtpd, in a
thread of this process) that refuses 5 % of recipients once with `451` (they go through on
a retry), and SMS to a file. Each event opens a protocol with an email and an SMS. While it
runs it prints progress and samples the daemon's resident memory. At the end it waits for the
outbox to drain and checks, from the database itself:

- every acknowledged event (202) has its notifications sent, or failed or dead with the
  provider's reason on record (nothing silently stuck);
- the outbox is empty (nothing queued, sending or unknown);
- every sent email reached the server (by Message-ID), and none twice;
- memory is flat: the last sample is within 10 % (or 16 MiB) of the first after warm-up.

It writes a short report to bench/results/soak-<time>.md and exits 0 when every check holds.
The loop is bounded in count and time, and talks to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import aiohttp
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from gateway.delivery.dispatcher import message_id_for
from gateway.store.database import Database
from gateway.store.installation import installation_key
from gateway.store.models import Event, Notification

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
START_TIMEOUT = 60.0  # seconds for the daemon to answer /healthz
DRAIN_TIMEOUT = 120.0  # seconds for the outbox to empty once the load stops
WARM_UP = 0.2  # the first fifth of the run is warm-up: memory is compared from there
FLAT_RATIO, FLAT_SLACK = 0.10, 16 * 1024 * 1024  # last RSS within 10 % or 16 MiB of the first after warm-up
SENDER = "Atendimento <atendimento@soak.example>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(message: str, started: float) -> None:
    print(f"[soak {time.monotonic() - started:7.1f}s] {message}", file=sys.stderr, flush=True)


class Sink:
    """aiosmtpd handler: refuses a share of recipients once with 451, keeps Message-IDs only."""

    def __init__(self, refuse_share: float) -> None:
        self.refuse_share = refuse_share
        self.refused: set[str] = set()
        self.message_ids: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def _refuses(self, address: str) -> bool:
        bucket = int(hashlib.sha256(address.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return bucket < self.refuse_share

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        with self.lock:
            if self._refuses(address) and address not in self.refused:
                self.refused.add(address)
                return "451 4.3.0 soak: try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        headers = BytesParser(policy=default_policy).parsebytes(envelope.original_content or b"", headersonly=True)
        with self.lock:
            self.message_ids[str(headers["Message-ID"])] += 1
        return "250 OK queued"


@dataclass
class Outcome:
    seconds: float
    rate: float
    database: str
    sent_events: int = 0
    acknowledged: list[str] = field(default_factory=list)   # event ids answered 202
    refused: collections.Counter[int] = field(default_factory=collections.Counter)  # other statuses
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, bytes)
    statuses: dict[str, int] = field(default_factory=dict)
    unexplained: list[int] = field(default_factory=list)  # acknowledged but neither sent nor failed with a reason
    missing_emails: int = 0
    duplicate_emails: int = 0
    refused_recipients: int = 0
    drained_in: float | None = None
    exit_code: int | None = None

    @property
    def memory(self) -> dict[str, int]:
        after = [b for t, b in self.rss if t >= self.seconds * WARM_UP] or [b for _, b in self.rss]
        return {"first": after[0], "last": after[-1], "peak": max(b for _, b in self.rss)} if after else {}

    @property
    def checks(self) -> dict[str, bool]:
        m = self.memory
        active = sum(self.statuses.get(s, 0) for s in ("queued", "sending", "unknown"))
        return {
            "every acknowledged event's notifications sent or failed with a reason": not self.unexplained,
            "the outbox is empty": active == 0 and self.drained_in is not None,
            "every sent email reached the server, none twice": self.missing_emails == 0 and self.duplicate_emails == 0,
            "no event refused": not self.refused,
            "memory flat": bool(m) and m["last"] - m["first"] <= max(FLAT_SLACK, FLAT_RATIO * m["first"]),
            "the daemon stopped cleanly": self.exit_code == 0,
        }

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


def rss_of(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def event(event_id: str, n: int) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "urn:soak:crm", "type": "protocol.opened",
            "data": {"subject": f"Cobrança indevida na fatura {n}", "channel": "phone",
                     "consumer": {"name": f"Cliente {n}", "email": f"cliente{n}@soak.example",
                                  "phone": f"+551198{n % 10**7:07d}"}}}


async def start_daemon(folder: Path, db_url: str, sink_port: int, port: int) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({
        "GATEWAY_DATABASE__URL": db_url, "GATEWAY_HTTP__PORT": str(port),
        "GATEWAY_EMAIL__TRANSPORT": "smtp", "GATEWAY_EMAIL__FROM": SENDER,
        "GATEWAY_EMAIL__SMTP__HOST": "127.0.0.1", "GATEWAY_EMAIL__SMTP__PORT": str(sink_port),
        "GATEWAY_EMAIL__SMTP__STARTTLS": "false", "GATEWAY_SMS__FILE": str(folder / "sms.jsonl"),
        "GATEWAY_DISPATCH__RETRY_BASE": "1s", "GATEWAY_DISPATCH__RETRY_MAX": "5s",
        "GATEWAY_DISPATCH__POLL_INTERVAL": "200ms", "GATEWAY_SWEEPS__ENABLED": "false",
        "GATEWAY_AUTH__BOOTSTRAP_KEY_FILE": str(folder / "admin.key"),
    })
    with open(folder / "daemon.stderr", "wb") as stderr:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway.cli", "run", cwd=folder, env=env,
                                                       stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + START_TIMEOUT
    async with aiohttp.ClientSession() as http:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"the daemon exited {process.returncode}: "
                                   + (folder / "daemon.stderr").read_text()[-2000:])
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return process
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the daemon did not answer /healthz")
            await asyncio.sleep(0.1)


async def outbox_statuses(db: Database) -> dict[str, int]:
    async with db.read() as session:
        rows = (await session.execute(select(Notification.status, func.count()).group_by(Notification.status))).all()
    return {status: n for status, n in rows}


async def load(outcome: Outcome, url: str, key: str, started: float, stop_at: float, progress) -> None:
    """`rate` events a second, each on its own schedule; at most 64 in flight."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"}
    limit = asyncio.Semaphore(64)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as http:
        async def post(n: int) -> None:
            async with limit:
                event_id = f"soak-{n}"
                try:
                    async with http.post(f"{url}/v1/events", data=json.dumps(event(event_id, n)), headers=headers) as r:
                        await r.read()
                        status = r.status
                except aiohttp.ClientError:
                    status = 0
                if status == 202:
                    outcome.acknowledged.append(event_id)
                else:
                    outcome.refused[status] += 1

        n = 0
        loop = asyncio.get_running_loop()
        while loop.time() < stop_at:
            due = started + n / outcome.rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            task = asyncio.create_task(post(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            await progress()
        outcome.sent_events = n
        await asyncio.gather(*tasks)


async def soak(seconds: float, rate: float, *, pg_url: str | None = None, refuse_share: float = 0.05,
               results: Path = RESULTS, quiet: bool = False) -> tuple[Outcome, Path]:
    started_mono = time.monotonic()
    log = (lambda m: None) if quiet else (lambda m: say(m, started_mono))
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    db_url = pg_url or f"sqlite+aiosqlite:///{folder / 'gateway.db'}"
    outcome = Outcome(seconds=seconds, rate=rate, database="postgresql" if pg_url else "sqlite")
    sink = Sink(refuse_share)
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), server_hostname="soak.sink")
    controller.start()
    port = free_port()
    db: Database | None = None
    process: asyncio.subprocess.Process | None = None
    try:
        process = await start_daemon(folder, db_url, controller.port, port)
        key = (folder / "admin.key").read_text().strip()
        db = Database(db_url)
        loop = asyncio.get_running_loop()
        started = loop.time()
        every = max(2.0, min(10.0, seconds / 10))
        next_report = [started]

        async def progress() -> None:
            now = loop.time()
            if now < next_report[0]:
                return
            next_report[0] = now + every
            rss = rss_of(process.pid)
            if rss is not None:
                outcome.rss.append((now - started, rss))
            depth = await outbox_statuses(db)
            pending = sum(depth.get(s, 0) for s in ("queued", "sending", "unknown"))
            log(f"{len(outcome.acknowledged)} events acknowledged, {sum(sink.message_ids.values())} emails received, "
                f"{pending} pending, {len(sink.refused)} recipients refused once, RSS {rss / 2**20 if rss else 0:.1f} MiB")

        log(f"soak: {seconds:g} s at {rate:g} events/s on {outcome.database}, {refuse_share:.0%} of recipients refused once")
        await load(outcome, f"http://127.0.0.1:{port}", key, started, started + seconds, progress)
        drain_started = loop.time()
        while True:
            depth = await outbox_statuses(db)
            if not any(depth.get(s, 0) for s in ("queued", "sending", "unknown")):
                outcome.drained_in = loop.time() - drain_started
                break
            if loop.time() - drain_started > DRAIN_TIMEOUT:
                break
            await progress()
            await asyncio.sleep(0.2)
        rss = rss_of(process.pid)
        if rss is not None:
            outcome.rss.append((loop.time() - started, rss))
        await verify(outcome, db, sink)
    finally:
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                outcome.exit_code = await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
        if db is not None:
            await db.dispose()
        controller.stop()
    report = write_report(outcome, results)
    shutil.rmtree(folder, ignore_errors=True)
    log(f"{'OK' if outcome.ok else 'FAILED'}: report in {report}")
    return outcome, report


async def verify(outcome: Outcome, db: Database, sink: Sink) -> None:
    outcome.statuses = await outbox_statuses(db)
    outcome.refused_recipients = len(sink.refused)
    acknowledged = set(outcome.acknowledged)
    async with db.read() as session:
        rows = (await session.execute(
            select(Event.event_id, Notification.id, Notification.channel, Notification.status, Notification.last_error)
            .join(Notification, Notification.event_id == Event.id)
            .where(Event.source == "urn:soak:crm"))).all()
    per_event: dict[str, int] = collections.Counter()
    emails_sent = set()
    installation = await db.query(installation_key)  # every Message-ID carries it
    for event_id, nid, channel, status, last_error in rows:
        per_event[event_id] += 1
        explained = status in ("sent", "delivered") or (status in ("failed", "dead", "undelivered") and last_error)
        if event_id in acknowledged and not explained:
            outcome.unexplained.append(nid)
        if channel == "email" and status in ("sent", "delivered"):
            emails_sent.add(message_id_for(nid, SENDER, installation))
    outcome.unexplained += [-1 for e in acknowledged if per_event.get(e, 0) != 2]  # an acknowledged event lost its rows
    outcome.missing_emails = len(emails_sent - set(sink.message_ids))
    outcome.duplicate_emails = sum(n - 1 for n in sink.message_ids.values() if n > 1)


def write_report(outcome: Outcome, results: Path) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = results / f"soak-{stamp}.md"
    mib = {k: f"{v / 2**20:.1f} MiB" for k, v in outcome.memory.items()}
    samples = ", ".join(f"{t:.0f}s {b / 2**20:.1f}" for t, b in outcome.rss[:: max(1, len(outcome.rss) // 20)])
    lines = [
        f"# Soak {stamp} UTC: {'OK' if outcome.ok else 'FAILED'}",
        "",
        f"- {outcome.seconds:g} s at {outcome.rate:g} events/s on {outcome.database}; "
        f"SMTP refusing {outcome.refused_recipients} recipients once with 451",
        f"- events posted {outcome.sent_events}, acknowledged (202) {len(outcome.acknowledged)}, "
        f"refused {dict(outcome.refused) or 'none'}",
        f"- notifications by status at the end: {json.dumps(outcome.statuses, sort_keys=True)}",
        f"- outbox drained {f'{outcome.drained_in:.1f} s' if outcome.drained_in is not None else 'NOT'} after the load stopped",
        f"- emails missing at the server {outcome.missing_emails}, duplicates {outcome.duplicate_emails}",
        f"- daemon RSS after warm-up: first {mib.get('first')}, last {mib.get('last')}, peak {mib.get('peak')}",
        f"- RSS samples (s, MiB): {samples}",
        "",
        "| check | |",
        "|---|---|",
        *[f"| {name} | {'ok' if good else '**FAILED**'} |" for name, good in outcome.checks.items()],
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default 10)")
    parser.add_argument("--seconds", type=float, help="the same in seconds (overrides --minutes)")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second (default 20)")
    parser.add_argument("--refuse", type=float, default=0.05, help="share of recipients refused once (default 0.05)")
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL URL (postgresql+asyncpg://...) instead of SQLite")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the report goes (default bench/results)")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    outcome, report = asyncio.run(soak(seconds, args.rate, pg_url=args.pg, refuse_share=args.refuse,
                                       results=args.results))
    print(report.read_text())
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
