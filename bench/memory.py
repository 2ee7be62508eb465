"""`python -m bench.memory`: the daemon's resident memory with a big database and a big backlog.

    python -m bench.memory                       # 1,000,000 protocols, 100,000 queued emails, SQLite
    python -m bench.memory --pg postgresql+asyncpg://postgres@127.0.0.1:5432/postgres   # and PostgreSQL
    python -m bench.memory --protocols 200000 --queued 20000
    python -m bench.memory --smoke               # 2,000 protocols, 200 queued: proves it runs

Target: peak RSS under 200 MB (read strictly: 200 × 10⁶ bytes, 190.7 MiB) for the daemon as a
user runs it, on a database a busy service reaches (a million protocols) with a backlog an
SMTP outage leaves (a hundred thousand queued emails).

The store is filled straight through the driver, as bench/sweeps.py does (its protocols,
moved to today: a year and a half of br-sac protocols, one event and two sent notifications
each). The last `--queued` protocols' confirmation emails are queued instead, rendered from
the real `protocol_opened` templates (rendered once and varied by number, subject and name:
the service's sizes and shape), and parked in the future so that the phases stay apart.

Then `protocol-gateway run` starts in a subprocess with SMTP to the counting sink of
bench/sink.py, SMS to a file and one operations address, and its RSS is sampled every 100 ms
(psutil, or /proc/PID/status without it) through these phases:

1. start: until /healthz answers;
2. start-up sweeps: every schedule runs once at start (README: a run after downtime catches
   up), over the whole table; until each has logged `sweep_done`;
3. the sweeps' messages: until nothing due is left in the outbox;
4. idle: a few seconds at rest: "RSS at idle after start";
5. drain: the peak is reset (`/proc/PID/clear_refs`), the backlog is made due, and the
   dispatcher sends it; VmHWM at the end is the peak of the drain alone.

Reported: the RSS at each step, the peaks, the drain's time and rate (from the release to
the last `sent_at` recorded), and a bare interpreter with the gateway imported for reference.
The run checks itself: every sweep done, every queued email recorded as sent, the sink got
every email recorded as sent, nothing due left, no error logged, a clean exit on SIGTERM.
A phase longer than `--settle-timeout` or `--drain-timeout` is cut short and the report says
so; a drain cut short gives its rate so far and the time the whole backlog would take.

Progress goes to stderr; the tables to stdout and bench/results/memory-<date>-<time>.md, the
figures (RSS samples thinned to KEPT_SAMPLES) to the .json beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

from bench import standalone
from bench.progress import say
from bench.settings import REPLY_TO, SENDER, bench_settings
from bench.sink import SinkProcess
from bench.sweeps import AT, rows

UTC = timezone.utc
TARGET_BYTES = 200 * 10**6  # "under 200 MB"
SAMPLE_EVERY = 0.1  # seconds between RSS samples
KEPT_SAMPLES = 1000  # at most this many samples per database go into the JSON (evenly thinned)
IDLE_SECONDS = 5.0  # at rest after the start-up sweeps and their messages
PROGRESS_EVERY = 5.0  # seconds between progress lines while waiting on the daemon
POLL_EVERY = 0.5  # seconds between looks at the outbox
CHUNK = 20_000  # protocols per insert batch
PARKED = datetime(2100, 1, 1, tzinfo=UTC)  # the backlog waits here until the drain phase releases it
OPERATIONS = "operacoes@example.com"
START_TIMEOUT = 180.0  # seconds for /healthz
PHASE_TIMEOUT = 3600.0  # seconds for any other phase
STOP_TIMEOUT = 60.0  # seconds for the daemon to exit after SIGTERM
ACTIVE = ("queued", "sending", "unknown")
ROOT = Path(__file__).resolve().parent.parent
SMOKE = {"protocols": 2000, "queued": 200}
SMOKE_IDLE = 1.0


# Filling


class Confirmation:
    """The confirmation email the service queues, from the real templates.

    Rendered once, for the first protocol asked about, then varied per protocol by number,
    subject and consumer name: the same shape and sizes as rendering each one.
    """

    def __init__(self, folder: Path, url: str) -> None:
        from gateway.messages import MessageBuilder
        from gateway.templating import Templates

        settings = bench_settings(folder, url)
        self.builder = MessageBuilder(Templates(settings.templates_dir, settings.gateway.default_locale), settings)
        self.sample: tuple[dict[str, Any], dict[str, Any]] | None = None

    def fields(self, protocol: dict[str, Any], now: datetime) -> dict[str, Any]:
        if self.sample is None:
            note = self.builder.render(SimpleNamespace(**protocol), "protocol_opened", "email",
                                       protocol["consumer_email"], now)
            self.sample = (protocol, {"template": note.template, "template_hash": note.template_hash,
                                      "locale": note.locale, "subject": note.subject, "body_text": note.body_text,
                                      "body_html": note.body_html})
        base, rendered = self.sample
        varied = dict(rendered)
        for key in ("subject", "body_text", "body_html"):
            text = rendered[key]
            for field in ("number", "subject", "consumer_name"):
                text = text.replace(base[field], protocol[field])
            varied[key] = text
        return varied


def _moved(row: dict[str, Any], shift: timedelta) -> dict[str, Any]:
    return {k: (v + shift if isinstance(v, datetime) else v) for k, v in row.items()}


def store_rows(n: int, queued: int, now: datetime, confirmation: Confirmation) -> Iterator[tuple[Any, ...]]:
    """bench/sweeps.py's protocols moved by whole days to today; the last `queued` ones with
    their confirmation email queued (and parked) instead of sent."""
    shift = timedelta(days=(now.date() - AT.date()).days)  # whole days: deadlines stay at 23:59:59 local
    first = n - queued + 1
    for protocol, event, notes in rows(n):
        protocol, event = _moved(protocol, shift), _moved(event, shift)
        notes = [_moved(note, shift) for note in notes]
        if protocol["id"] >= first:
            notes[0] = {**notes[0], **confirmation.fields(protocol, now), "status": "queued", "attempts": 0,
                        "next_attempt_at": PARKED, "created_at": now, "sent_at": None}
        yield protocol, event, notes


def backlog_ids(n: int, queued: int) -> tuple[int, int]:
    """The id range holding the queued emails (protocol i has notifications 2i-1, email, and 2i, SMS)."""
    return 2 * (n - queued + 1) - 1, 2 * n - 1


class FillProgress:
    """Says how far the fill is, its pace and what is left, every tenth (or CHUNK) of the protocols."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total
        self.started = time.perf_counter()
        self._step = max(CHUNK, total // 10)
        self._said = 0

    def at(self, done: int) -> None:
        if done == self._said or (done % self._step and done != self.total):
            return
        self._said = done
        elapsed = time.perf_counter() - self.started
        rate = done / elapsed if elapsed else 0.0
        left = f"about {(self.total - done) / rate:.0f} s left" if rate and done < self.total else f"{elapsed:.0f} s"
        say(f"{self.label}: {done:,}/{self.total:,} protocols ({rate:,.0f}/s, {left})")


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # as the gateway's UTCDateTime stores it
    return value


def fill_sqlite(path: Path, batches: Iterator[tuple[Any, ...]], n: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1048576")  # 1 GiB: random index inserts otherwise thrash a 2 MiB cache
    pending: dict[str, list[tuple[Any, ...]]] = {"protocols": [], "events": [], "notifications": []}
    columns: dict[str, list[str]] = {}
    progress = FillProgress("sqlite fill", n)

    def flush() -> None:
        for table, values in pending.items():
            if values:
                names = columns[table]
                quoted = ", ".join(f'"{c}"' for c in names)
                conn.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * len(names))})", values)
                values.clear()
        conn.commit()

    count = 0
    for count, (protocol, event, notes) in enumerate(batches, 1):
        for table, row in (("protocols", protocol), ("events", event), *(("notifications", x) for x in notes)):
            names = columns.setdefault(table, list(row))
            pending[table].append(tuple(_sqlite_value(row[c]) for c in names))
        if count % CHUNK == 0:
            flush()
            progress.at(count)
    flush()
    progress.at(count)
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def fill_postgres(url: str, batches: Iterator[tuple[Any, ...]], n: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(_plain(url))
    progress = FillProgress("postgresql fill", n)
    try:
        pending: dict[str, list[tuple[Any, ...]]] = {"protocols": [], "events": [], "notifications": []}
        columns: dict[str, list[str]] = {}

        async def flush() -> None:
            for table, values in pending.items():
                if values:
                    await conn.copy_records_to_table(table, records=values, columns=columns[table])
                    values.clear()

        count = 0
        for count, (protocol, event, notes) in enumerate(batches, 1):
            for table, row in (("protocols", protocol), ("events", event), *(("notifications", x) for x in notes)):
                names = columns.setdefault(table, list(row))
                pending[table].append(tuple(row[c] for c in names))
            if count % CHUNK == 0:
                await flush()
                progress.at(count)
        await flush()
        progress.at(count)
        for table in ("protocols", "events", "notifications"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    from gateway.store.database import Database
    from gateway.store.migrate import migrate

    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.dispose()


async def _admin(server: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_plain(server))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def build_store(kind: str, folder: Path, pg: str | None, n: int, queued: int) -> str:
    """A migrated, filled database; its URL."""
    if kind == "sqlite":
        path = folder / "gateway.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        assert pg is not None
        name = f"gw_bench_memory_{os.getpid()}"
        await _admin(pg, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await _admin(pg, f"CREATE DATABASE {name}")
        url = pg.rsplit("/", 1)[0] + "/" + name
    await _migrate(url)
    batches = store_rows(n, queued, datetime.now(UTC), Confirmation(folder, url))
    if kind == "sqlite":
        await asyncio.to_thread(fill_sqlite, path, batches, n)
    else:
        await fill_postgres(url, batches, n)
    return url


async def drop_store(kind: str, url: str, pg: str | None) -> None:
    if kind == "postgresql" and pg is not None:
        await _admin(pg, f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


# Watching the daemon


def _status_kib(pid: int | str, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Sampler:
    """The daemon's RSS every SAMPLE_EVERY seconds, each sample tagged with the phase it fell in."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.started = time.monotonic()
        self.phase = "start"
        self.samples: list[tuple[float, int, str]] = []  # (seconds since start, bytes, phase)
        self.marks: list[tuple[str, float]] = [("start", 0.0)]
        try:
            import psutil

            self._process: Any = psutil.Process(pid)
            self.source = f"psutil {psutil.__version__}"
        except ImportError:
            self._process = None
            self.source = "/proc/PID/status VmRSS"

    def rss(self) -> int | None:
        if self._process is not None:
            try:
                return int(self._process.memory_info().rss)
            except Exception:  # the process ended between two samples
                return None
        kib = _status_kib(self.pid, "VmRSS")
        return None if kib is None else kib * 1024

    def hwm(self) -> int | None:
        """VmHWM: the kernel's own peak RSS since start (or since reset_peak)."""
        kib = _status_kib(self.pid, "VmHWM")
        return None if kib is None else kib * 1024

    def reset_peak(self) -> bool:
        """Bring VmHWM down to the current RSS (Linux 4.0+, `echo 5 > clear_refs`)."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def enter(self, phase: str) -> None:
        self.phase = phase
        self.marks.append((phase, time.monotonic() - self.started))

    def sample(self) -> int | None:
        value = self.rss()
        if value is not None:
            self.samples.append((round(time.monotonic() - self.started, 2), value, self.phase))
        return value

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_EVERY)

    def in_phase(self, phase: str) -> list[int]:
        return [b for _, b, p in self.samples if p == phase]

    def phases(self) -> list[dict[str, Any]]:
        """Each phase's length, last and highest sample (from every sample, before any thinning)."""
        ends = [t for _, t in self.marks[1:]] + [time.monotonic() - self.started]
        stats = []
        for (name, start), end in zip(self.marks, ends):
            values = self.in_phase(name)
            stats.append({"phase": name, "seconds": round(end - start, 2), "rss_end": values[-1] if values else None,
                          "rss_max": max(values, default=None), "samples": len(values)})
        return stats

    def thinned(self) -> list[tuple[float, int, str]]:
        return self.samples[:: max(1, -(-len(self.samples) // KEPT_SAMPLES))]


class DaemonLog:
    """The daemon's JSON log lines, read as the file grows: sweeps done, errors logged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.actions: collections.Counter[str] = collections.Counter()
        self.errors = 0
        self.schedules: list[str] | None = None
        self.sweeps: list[dict[str, Any]] = []

    def read(self) -> None:
        try:
            with open(self.path, "rb") as file:
                file.seek(self._offset)
                chunk = file.read()
        except OSError:
            return
        complete = chunk.rfind(b"\n") + 1
        self._offset += complete
        for line in chunk[:complete].splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            action = entry.get("action")
            self.actions[action] += 1
            if entry.get("level") in ("error", "critical"):
                self.errors += 1
            if action == "scheduler_started":
                self.schedules = list(entry.get("schedules", []))
            elif action in ("sweep_done", "sweep_skipped", "sweep_failed"):
                self.sweeps.append({k: entry[k] for k in ("action", "schedule", "considered", "notified", "enqueued",
                                                          "late", "skipped") if k in entry})

    def sweeps_finished(self) -> bool:
        """Every schedule named at start has logged one run (the start-up run: periodic ones come later)."""
        self.read()
        return self.schedules is not None and set(self.schedules) <= {s.get("schedule") for s in self.sweeps}

    def tail(self) -> str:
        try:
            return self.path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


class SQLiteProbe:
    """The bench's own look at the outbox, straight through the driver (WAL: it never blocks the daemon)."""

    def __init__(self, url: str) -> None:
        self._conn = sqlite3.connect(url.split(":///", 1)[1], timeout=60, isolation_level=None,
                                     check_same_thread=False)

    async def _all(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(lambda: self._conn.execute(sql, params).fetchall())

    async def due(self, at: datetime) -> int:
        (count,), = await self._all("SELECT count(*) FROM notifications WHERE status IN ('queued', 'sending', "
                                    "'unknown') AND next_attempt_at <= ?", _sqlite_value(at))
        return int(count)

    async def statuses(self, lo: int, hi: int) -> dict[str, int]:
        return dict(await self._all("SELECT status, count(*) FROM notifications WHERE id BETWEEN ? AND ? "
                                    "AND channel = 'email' GROUP BY status", lo, hi))

    async def release(self, lo: int, hi: int, at: datetime) -> int:
        def run() -> int:
            self._conn.execute("BEGIN IMMEDIATE")
            changed = self._conn.execute("UPDATE notifications SET next_attempt_at = ? WHERE id BETWEEN ? AND ? "
                                         "AND channel = 'email' AND status = 'queued'",
                                         (_sqlite_value(at), lo, hi)).rowcount
            self._conn.execute("COMMIT")
            return changed
        return await asyncio.to_thread(run)

    async def sent_span(self, lo: int, hi: int) -> tuple[datetime | None, datetime | None]:
        (first, last), = await self._all("SELECT min(sent_at), max(sent_at) FROM notifications "
                                         "WHERE id BETWEEN ? AND ? AND channel = 'email'", lo, hi)
        parse = (lambda v: None if v is None else datetime.fromisoformat(v).replace(tzinfo=UTC))
        return parse(first), parse(last)

    async def emails_sent(self) -> int:
        (count,), = await self._all("SELECT count(*) FROM notifications WHERE channel = 'email' AND status = 'sent'")
        return int(count)

    async def close(self) -> None:
        self._conn.close()


class PostgresProbe:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, url: str) -> PostgresProbe:
        import asyncpg

        return cls(await asyncpg.connect(_plain(url)))

    async def due(self, at: datetime) -> int:
        return int(await self._conn.fetchval("SELECT count(*) FROM notifications WHERE status IN ('queued', "
                                             "'sending', 'unknown') AND next_attempt_at <= $1", at))

    async def statuses(self, lo: int, hi: int) -> dict[str, int]:
        rows = await self._conn.fetch("SELECT status, count(*) FROM notifications WHERE id BETWEEN $1 AND $2 "
                                      "AND channel = 'email' GROUP BY status", lo, hi)
        return {r[0]: int(r[1]) for r in rows}

    async def release(self, lo: int, hi: int, at: datetime) -> int:
        async with self._conn.transaction():
            result = await self._conn.execute("UPDATE notifications SET next_attempt_at = $1 WHERE id BETWEEN $2 "
                                              "AND $3 AND channel = 'email' AND status = 'queued'", at, lo, hi)
            await self._conn.execute("SELECT pg_notify('gateway_outbox', '')")  # as an enqueue would
        return int(result.split()[-1])

    async def sent_span(self, lo: int, hi: int) -> tuple[datetime | None, datetime | None]:
        row = await self._conn.fetchrow("SELECT min(sent_at), max(sent_at) FROM notifications "
                                        "WHERE id BETWEEN $1 AND $2 AND channel = 'email'", lo, hi)
        return row[0], row[1]

    async def emails_sent(self) -> int:
        return int(await self._conn.fetchval("SELECT count(*) FROM notifications "
                                             "WHERE channel = 'email' AND status = 'sent'"))

    async def close(self) -> None:
        await self._conn.close()


Probe = SQLiteProbe | PostgresProbe


@dataclass(frozen=True)
class Limits:
    """Seconds each phase may take before the run goes on without it (and says so)."""

    sweeps: float = PHASE_TIMEOUT
    settle: float = PHASE_TIMEOUT
    drain: float = PHASE_TIMEOUT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_command() -> list[str]:
    """`protocol-gateway` as installed beside this interpreter, else the same module."""
    script = Path(sys.executable).with_name("protocol-gateway")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def write_settings(folder: Path, url: str, port: int, sink: SinkProcess) -> Path:
    """The shipped defaults but for where things go: the database, SMTP to the sink, SMS to a file,
    and one operations address, so that the operations sweeps have someone to write to."""
    q = json.dumps  # a JSON string is a TOML basic string
    path = folder / "settings.toml"
    path.write_text(f"""
[database]
url = {q(url)}
[http]
port = {port}
[email]
transport = "smtp"
from = {q(SENDER)}
reply_to = {q(REPLY_TO)}
[email.smtp]
host = {q(sink.host)}
port = {sink.port}
starttls = false
[sms]
transport = "file"
file = {q(str(folder / "sms.jsonl"))}
[operations]
emails = [{q(OPERATIONS)}]
""", encoding="utf-8")
    return path


async def wait_until(check: Callable[[], Awaitable[bool]], *, what: str, process: asyncio.subprocess.Process,
                     log: DaemonLog, timeout: float,
                     progress: Callable[[], Awaitable[str]] | None = None) -> tuple[float, bool]:
    """Poll `check` until it holds or `timeout` passes: (seconds taken, whether it held).
    The daemon dying ends the run."""
    started = time.monotonic()
    said = started
    while not await check():
        if process.returncode is not None:
            raise RuntimeError(f"the daemon exited {process.returncode} during {what}: {log.tail()}")
        now = time.monotonic()
        if now - started > timeout:
            say(f"  {what}: not done after {timeout:.0f} s; going on")
            return now - started, False
        if progress is not None and now - said >= PROGRESS_EVERY:
            said = now
            say(f"  {what}: {await progress()}")
        await asyncio.sleep(POLL_EVERY)
    return time.monotonic() - started, True


async def healthy(port: int) -> bool:
    with contextlib.suppress(aiohttp.ClientError, OSError):
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as r:
            return r.status == 200
    return False


async def stop_daemon(process: asyncio.subprocess.Process) -> int | None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            return None
    return process.returncode


async def observe(kind: str, url: str, folder: Path, *, n: int, queued: int, idle: float,
                  limits: Limits) -> dict[str, Any]:
    """Run the daemon through its phases on a filled database; the figures and checks."""
    probe: Probe = SQLiteProbe(url) if kind == "sqlite" else await PostgresProbe.open(url)
    out: dict[str, Any] = {"database": kind, "protocols": n, "queued": queued}
    try:
        async with SinkProcess() as sink:
            port = free_port()
            settings = write_settings(folder, url, port, sink)
            env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
            stderr_path = folder / "daemon.stderr"
            log = DaemonLog(stderr_path)
            with open(stderr_path, "wb") as stderr:
                process = await asyncio.create_subprocess_exec(
                    *daemon_command(), "run", "--config", str(settings), cwd=folder, env=env,
                    stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
            sampler = Sampler(process.pid)
            sampling = asyncio.create_task(sampler.run())
            phases = Phases(out, probe, sink, sampler, log, process, limits)
            try:
                await phases.start(port)
                await phases.sweeps()
                await phases.settle()
                await phases.rest(idle)
                await phases.drain(backlog_ids(n, queued))
            finally:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
                out["exit_code"] = await stop_daemon(process)
                out["sink_total"] = (await sink.count())[0]
            log.read()
            out.update(errors_logged=log.errors, sweeps=log.sweeps, schedules=log.schedules or [],
                       emails_sent_total=await probe.emails_sent(), rss_source=sampler.source,
                       phases=sampler.phases(), samples=sampler.thinned())
    finally:
        await probe.close()
    out["checks"] = checks(out)
    return out


class Phases:
    """The daemon's life in the order the bench walks it; each step writes its figures into `out`."""

    def __init__(self, out: dict[str, Any], probe: Probe, sink: SinkProcess, sampler: Sampler, log: DaemonLog,
                 process: asyncio.subprocess.Process, limits: Limits) -> None:
        self.out, self.probe, self.sink, self.sampler, self.log = out, probe, sink, sampler, log
        self.process, self.limits = process, limits
        self.label = out["database"]

    async def _wait(self, check: Callable[[], Awaitable[bool]], what: str, timeout: float,
                    progress: Callable[[], Awaitable[str]] | None = None) -> tuple[float, bool]:
        return await wait_until(check, what=what, process=self.process, log=self.log, timeout=timeout,
                                progress=progress)

    def _rss(self) -> str:
        return f"RSS {standalone.mib(self.sampler.sample())} MiB"

    async def start(self, port: int) -> None:
        say(f"{self.label}: starting the daemon (pid {self.process.pid}); RSS sampled with {self.sampler.source}")
        seconds, up = await self._wait(lambda: healthy(port), "start", START_TIMEOUT)
        if not up:
            raise RuntimeError(f"the daemon did not answer /healthz within {START_TIMEOUT:.0f} s: {self.log.tail()}")
        self.out.update(start_seconds=seconds, rss_at_healthz=self.sampler.sample())
        say(f"{self.label}: /healthz after {seconds:.1f} s, RSS {standalone.mib(self.out['rss_at_healthz'])} MiB")

    async def sweeps(self) -> None:
        """Every schedule runs once at start-up (scheduler_started names them); wait for each one's log line."""
        self.sampler.enter("start-up sweeps")

        async def finished() -> bool:
            return self.log.sweeps_finished()

        async def progress() -> str:
            return f"{len(self.log.sweeps)}/{len(self.log.schedules or [])} schedules done, {self._rss()}"

        seconds, done = await self._wait(finished, "start-up sweeps", self.limits.sweeps, progress)
        self.out.update(sweeps_seconds=seconds, sweeps_finished=done)
        peak = max(self.sampler.in_phase("start-up sweeps"), default=None)
        say(f"{self.label}: start-up sweeps done in {seconds:.1f} s, peak {standalone.mib(peak)} MiB")

    async def settle(self) -> None:
        """The sweeps' own messages go out (those not held for the consumer's quiet hours)."""
        self.sampler.enter("sweeps' messages")

        async def nothing_due() -> bool:
            return await self.probe.due(datetime.now(UTC)) == 0

        async def progress() -> str:
            return f"{await self.probe.due(datetime.now(UTC)):,} due, {self._rss()}"

        seconds, done = await self._wait(nothing_due, "the sweeps' messages", self.limits.settle, progress)
        self.out.update(settle_seconds=seconds, settled=done, due_at_idle=await self.probe.due(datetime.now(UTC)))

    async def rest(self, idle: float) -> None:
        self.sampler.enter("idle")
        await asyncio.sleep(idle)
        resting = self.sampler.in_phase("idle")
        self.out.update(rss_idle=statistics.median(resting) if resting else self.sampler.sample(),
                        hwm_before_drain=self.sampler.hwm())
        say(f"{self.label}: idle RSS {standalone.mib(self.out['rss_idle'])} MiB; "
            f"peak so far (VmHWM) {standalone.mib(self.out['hwm_before_drain'])} MiB")

    async def drain(self, backlog: tuple[int, int]) -> None:
        """Reset the peak, make the backlog due, wait until none of it is active (or the limit)."""
        lo, hi = backlog
        queued = self.out["queued"]
        self.out["peak_reset"] = self.sampler.reset_peak()
        self.sampler.enter("drain")
        sink_before, bytes_before = await self.sink.count()
        released_at = datetime.now(UTC)
        self.out["released"] = await self.probe.release(lo, hi, released_at)
        say(f"{self.label}: drain: {self.out['released']:,} emails made due")

        async def drained() -> bool:
            statuses = await self.probe.statuses(lo, hi)
            return not any(statuses.get(s, 0) for s in ACTIVE)

        async def progress() -> str:
            got, _ = await self.sink.count()
            return f"{got - sink_before:,}/{queued:,} at the sink, {self._rss()}"

        self.out["drain_wait_seconds"], self.out["drained"] = await self._wait(drained, "drain", self.limits.drain,
                                                                               progress)
        self.sampler.sample()
        sink_after, bytes_after = await self.sink.count()
        self.out.update(hwm_drain=self.sampler.hwm(), rss_after_drain=self.sampler.sample(),
                        sink_during_drain=sink_after - sink_before,
                        bytes_per_message=(bytes_after - bytes_before) / max(1, sink_after - sink_before),
                        backlog=await self.probe.statuses(lo, hi))
        await self._drain_figures(lo, hi, released_at)
        self.sampler.enter("stop")

    async def _drain_figures(self, lo: int, hi: int, released_at: datetime) -> None:
        out, queued = self.out, self.out["queued"]
        first, last = await self.probe.sent_span(lo, hi)
        sent = out["backlog"].get("sent", 0)
        # Finished: to the last send recorded. Cut short: to now, and the rest projected at that rate.
        end = last if out["drained"] else datetime.now(UTC)
        out["drain_seconds"] = (end - released_at).total_seconds() if end is not None else None
        out["first_sent_after"] = (first - released_at).total_seconds() if first else None
        out["rate"] = sent / out["drain_seconds"] if out["drain_seconds"] else None
        out["projected_drain_seconds"] = queued / out["rate"] if out["rate"] else None
        out["due_at_end"] = await self.probe.due(datetime.now(UTC))
        samples = self.sampler.in_phase("drain")
        out["peak_drain"] = out["hwm_drain"] if out["peak_reset"] else max(samples, default=None)
        out["peak"] = max(v for v in (out["hwm_before_drain"], out["peak_drain"],
                                      *(b for _, b, _ in self.sampler.samples)) if v is not None)
        say(f"{self.label}: {'drained' if out['drained'] else 'cut short after sending'} {sent:,} in "
            f"{out['drain_seconds'] or 0:.1f} s ({out['rate'] or 0:,.1f}/s); "
            f"peak during the drain {standalone.mib(out['peak_drain'])} MiB")


def start_up_sweeps(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Each schedule's first logged run: the one at start-up."""
    first: dict[str, dict[str, Any]] = {}
    for run in out.get("sweeps", []):
        first.setdefault(run.get("schedule", "?"), run)
    return list(first.values())


def checks(out: dict[str, Any]) -> dict[str, bool]:
    failed = [s for s in out.get("sweeps", []) if s["action"] == "sweep_failed"]
    return {
        "every start-up sweep finished, none failed": bool(out.get("schedules")) and not failed
        and set(out.get("schedules", [])) <= {s.get("schedule") for s in out.get("sweeps", [])},
        "the sweeps' messages went out before the idle phase": bool(out.get("settled")),
        "every queued email recorded as sent": out.get("backlog", {}).get("sent") == out["queued"],
        "the sink got every email recorded as sent": out.get("sink_total") == out.get("emails_sent_total"),
        "nothing due left in the outbox": out.get("due_at_end") == 0,
        "no error logged": out.get("errors_logged") == 0,
        "the daemon stopped cleanly on SIGTERM": out.get("exit_code") == 0,
    }


# The reference


REFERENCE_SNIPPET = """
import sys
{imports}
for line in open('/proc/self/status'):
    if line.startswith('VmRSS:'):
        print(int(line.split()[1]) * 1024)
"""


def reference() -> dict[str, int | None]:
    """RSS of a bare interpreter, and of one that imported what `protocol-gateway run` imports first."""
    found: dict[str, int | None] = {}
    for label, imports in (("python, nothing imported", ""),
                           ("python with gateway.cli and gateway.app imported", "import gateway.cli, gateway.app")):
        done = subprocess.run([sys.executable, "-c", REFERENCE_SNIPPET.format(imports=imports)], capture_output=True,
                              text=True, timeout=120, cwd=ROOT)
        found[label] = int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
    return found


# The report


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 10**6:.1f}"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:,.0f} s" + (f" ({seconds / 3600:.1f} h)" if seconds >= 3600 else "")


def phase_rows(out: dict[str, Any]) -> list[str]:
    lines = ["| phase | seconds | RSS at its end (MiB) | highest sample (MiB) |", "|---|---:|---:|---:|"]
    for p in out.get("phases", []):
        if p["phase"] != "stop":
            lines.append(f"| {p['phase']} | {p['seconds']:.1f} | {standalone.mib(p['rss_end'])} "
                         f"| {standalone.mib(p['rss_max'])} |")
    return lines


def _phase_peak(out: dict[str, Any], name: str) -> int | None:
    return next((p["rss_max"] for p in out.get("phases", []) if p["phase"] == name), None)


def summary_row(out: dict[str, Any]) -> str:
    mib = standalone.mib
    sweeps_peak = _phase_peak(out, "start-up sweeps")
    drain = ("" if out.get("drained") else "cut short at ") + _s(out.get("drain_seconds"))
    return (f"| {out['database']} | {_s(out.get('fill_seconds'))} | {mib(out.get('rss_at_healthz'))} "
            f"| {mib(sweeps_peak)} | {mib(out.get('rss_idle'))} | {mib(out.get('peak_drain'))} "
            f"| {mib(out.get('peak'))} "
            f"| {drain} | {out.get('rate') or 0:,.1f} | {out.get('bytes_per_message', 0):,.0f} |")


def verdict(out: dict[str, Any]) -> str:
    met = out.get("peak") is not None and out["peak"] < TARGET_BYTES
    return (f"- {out['database']}: peak RSS {standalone.mib(out.get('peak'))} MiB = {_mb(out.get('peak'))} MB "
            f"(target < 200 MB): **{'met' if met else 'NOT met'}**")


def database_section(out: dict[str, Any]) -> list[str]:
    mib = standalone.mib
    size = f", file {out['file_bytes'] / 2**20:,.0f} MiB" if out.get("file_bytes") else ""
    lines = [f"## {out['database']}{size}", "", *phase_rows(out), ""]
    if not out.get("settled"):
        lines.append(f"- the start-up sweeps' messages were still going out after {_s(out.get('settle_seconds'))} s "
                     f"(--settle-timeout): {out.get('due_at_idle', 0):,} due when the idle phase began")
    if not out.get("drained"):
        lines.append(f"- **the drain was cut short** after {_s(out.get('drain_seconds'))} s (--drain-timeout): "
                     f"{out.get('backlog', {}).get('sent', 0):,} of {out['queued']:,} sent, "
                     f"{out.get('rate') or 0:,.1f}/s; at that rate the whole backlog would take about "
                     f"{_duration(out.get('projected_drain_seconds'))}")
    reset = "reset at the start of the drain" if out.get("peak_reset") else "could not be reset: sampled maximum"
    first = start_up_sweeps(out)
    sweeps = "; ".join(f"{s.get('schedule')} {s['action'].removeprefix('sweep_')}"
                       + "".join(f", {s[k]:,} {k}" for k in ("considered", "enqueued", "late") if s.get(k))
                       for s in first)
    later = len(out.get("sweeps", [])) - len(first)
    if later:
        sweeps += f"; then {later} periodic runs while the bench went on"
    lines += [f"- VmHWM before the drain {mib(out.get('hwm_before_drain'))} MiB; "
              f"during the drain ({reset}) {mib(out.get('peak_drain'))} MiB",
              f"- drain: {out.get('released', 0):,} emails released, first sent after "
              f"{_s(out.get('first_sent_after'))} s, last after {_s(out.get('drain_seconds'))} s; "
              f"statuses at the end {json.dumps(out.get('backlog', {}), sort_keys=True)}",
              f"- start-up sweeps: {sweeps}", "",
              "| check | |", "|---|---|",
              *[f"| {name} | {'ok' if good else '**FAILED**'} |" for name, good in out["checks"].items()], ""]
    return lines


def markdown(run: dict[str, Any]) -> str:
    a = run["arguments"]
    source = run["databases"][0].get("rss_source", "?") if run["databases"] else "?"
    lines = [f"# Memory: the daemon with {a['protocols']:,} protocols and {a['queued']:,} queued notifications",
             "", f"Command: `{run['command']}`", ""]
    if a.get("note"):
        lines += [f"Note: {a['note']}", ""]
    lines += standalone.machine_lines(run["machine"])
    lines += [f"- the daemon (`protocol-gateway run`), the SMTP sink (bench/sink.py) and this bench are three "
              f"processes sharing these cores; the daemon's RSS sampled every {SAMPLE_EVERY * 1000:.0f} ms with "
              f"{source}"]
    lines += [f"- reference: {label}: {standalone.mib(value)} MiB" for label, value in run["reference"].items()]
    lines += ["", "| database | fill s | RSS at /healthz (MiB) | peak in start-up sweeps (MiB) | RSS at idle (MiB) "
              "| peak in drain, VmHWM (MiB) | peak overall (MiB) | drain s | notifications/s | bytes/message |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [summary_row(out) for out in run["databases"]]
    lines += ["", *[verdict(out) for out in run["databases"]], ""]
    for out in run["databases"]:
        lines += database_section(out)
    return "\n".join(lines)


# Running


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocols", type=int, default=1_000_000, help="protocols in the store (default 1,000,000)")
    p.add_argument("--queued", type=int, default=100_000, help="queued confirmation emails (default 100,000)")
    p.add_argument("--pg", metavar="URL", help="also measure on this PostgreSQL server (a database is created "
                                               "and dropped on it)")
    p.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only (with --pg)")
    p.add_argument("--idle", type=float, default=IDLE_SECONDS,
                   help=f"seconds at rest measured (default {IDLE_SECONDS:g})")
    p.add_argument("--note", default="", help="a line for the report: what code was measured, what else ran")
    p.add_argument("--settle-timeout", type=float, default=PHASE_TIMEOUT, metavar="SECONDS",
                   help=f"most time for the start-up sweeps' own messages to go out (default {PHASE_TIMEOUT:g})")
    p.add_argument("--drain-timeout", type=float, default=PHASE_TIMEOUT, metavar="SECONDS",
                   help=f"most time for the drain; a drain cut short reports its rate and a projection "
                        f"(default {PHASE_TIMEOUT:g})")
    p.add_argument("--smoke", action="store_true", help="2,000 protocols, 200 queued: checks the bench runs")
    p.add_argument("--out", type=Path, default=None, help=f"where the report goes (default {standalone.RESULTS}; "
                                                             f"with --smoke, {standalone.SMOKE_RESULTS})")
    args = p.parse_args(argv)
    if args.smoke:
        args.protocols, args.queued, args.idle = SMOKE["protocols"], SMOKE["queued"], SMOKE_IDLE
    if not 0 < args.queued <= args.protocols:
        p.error("--queued must be between 1 and --protocols")
    if args.no_sqlite and not args.pg:
        p.error("--no-sqlite needs --pg")
    args.out = standalone.out_folder(args.out, args.smoke)
    return args


async def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gateway-bench-memory-") as tmp:
        folder = Path(tmp)
        say(f"{kind}: filling {args.protocols:,} protocols, {args.queued:,} of them with a queued email")
        started = time.perf_counter()
        url = await build_store(kind, folder, args.pg, args.protocols, args.queued)
        fill_seconds = time.perf_counter() - started
        say(f"{kind}: filled in {fill_seconds:.0f} s")
        try:
            limits = Limits(settle=args.settle_timeout, drain=args.drain_timeout)
            out = await observe(kind, url, folder, n=args.protocols, queued=args.queued, idle=args.idle, limits=limits)
        finally:
            await drop_store(kind, url, args.pg)
        out["fill_seconds"] = fill_seconds
        if kind == "sqlite":
            out["file_bytes"] = (folder / "gateway.db").stat().st_size
        return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = standalone.start_run("bench.memory", argv, vars(args))
    with contextlib.suppress(ImportError):
        import psutil

        run["machine"]["libraries"]["psutil"] = psutil.__version__
    say(f"memory: nproc {run['machine']['nproc']}, load average {run['machine']['load_average_at_start']}")
    run["reference"] = reference()
    kinds = ([] if args.no_sqlite else ["sqlite"]) + (["postgresql"] if args.pg else [])
    run["databases"] = [asyncio.run(measure(kind, args)) for kind in kinds]
    standalone.finish_run(run)
    stem = ("smoke-memory-" if args.smoke else "memory-") + standalone.stamp(run)
    text = markdown(run)
    table, raw = standalone.write(run, text, args.out, stem)
    print(text)
    say(f"wrote {table} and {raw}")
    return 0 if all(all(out["checks"].values()) for out in run["databases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
