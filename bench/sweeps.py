"""`python -m bench.sweeps`: time and peak memory of the sweeps over many protocols.

    python -m bench.sweeps                                  # 1,000,000 protocols on SQLite
    python -m bench.sweeps --pg postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
    python -m bench.sweeps --protocols 20000 --sqlite --pg URL   # both, smaller
    python -m bench.sweeps --cases retention-notice,anonymize     # only these (a schedule, or "anonymize")
    python -m bench.sweeps --profile /tmp/sweeps                  # and a cProfile of each sweep there
    python -m bench.sweeps --keep-fill /tmp/1m.db                 # SQLite: fill once, keep a copy, reuse it

The store is filled straight through the driver (not the service: that is the ingest bench)
with a year and a half of br-sac protocols as the service leaves them, one event and two
sent notifications each: the last 14 days still open, 3 % of the older ones never resolved,
the rest resolved within 10 days. Ids follow the opening time, as the service gives them, and
each consumer's phone is unrelated to the id (`rows`); a store kept with `--keep-fill` before
2026-12-07 drew each protocol's time at random instead, which scattered the protocols a sweep
takes together over the whole table (bench/README.md, "Fifth round"). Then each sweep runs
once as of the same instant, in a fresh process so that its peak memory (max RSS) is its own:
a first (catch-up) run of each deadline sweep, a second run that finds nothing new, the
digest, the retention notice, the expiry in `notify` mode, and the expiry in `anonymize` mode
(the records past 2 years and 30 days).

Progress goes to stderr (each sweep's batches as they go, with the seconds since it started); a
table to stdout and to bench/results/sweeps-<db>-<n>.md (`--out` for another folder).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import json
import multiprocessing
import os
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from array import array
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench import machine
from bench.databases import migrated_sqlite

UTC = timezone.utc
AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SPAN_DAYS = 800           # how far back protocols were opened
OPEN_DAYS = 14            # the most recent ones are still open
NEVER_RESOLVED = 0.03
CHUNK = 20_000
RESULTS = Path(__file__).resolve().parent / "results"
EARLY = AT.replace(hour=5)  # 02:00 in São Paulo: 2 h after the 24 h reminders' moment (23:59:59 there)
CASES = [
    # (label, schedule, retention action, as of)
    ("deadline reminder, catch-up run", "deadline-reminder", "notify", EARLY),
    ("deadline reminder, next run", "deadline-reminder", "notify", EARLY),
    ("deadline warning (operations)", "deadline-warning", "notify", EARLY),
    ("overdue alert", "overdue-alert", "notify", AT),
    ("operations digest", "operations-digest", "notify", AT),
    ("retention notice (30d, 7d)", "retention-notice", "notify", AT),
    ("retention expiry, notify", "retention-expiry", "notify", AT),
    ("retention expiry, anonymize", "retention-expiry", "anonymize", AT),
]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _deadline(opened: datetime) -> datetime:
    # br-sac: 7 calendar days, end of day in São Paulo (UTC-3 all year since 2019).
    local_day = (opened - timedelta(hours=3)).date() + timedelta(days=7)
    return datetime(local_day.year, local_day.month, local_day.day, 23, 59, 59, tzinfo=UTC) + timedelta(hours=3)


def _two_years(value: datetime) -> datetime:
    try:
        return value.replace(year=value.year + 2)
    except ValueError:
        return value.replace(year=value.year + 2, day=28) + timedelta(days=1)


def rows(n: int, seed: int = 1, *, in_time_order: bool = True):
    """(protocol, event, [notifications]) tuples of plain values, id from 1.

    In time order, ids follow the opening time as the service gives them (one insert after the
    other), so the protocols a sweep takes together (by deadline, by end of retention) sit near
    each other in the tables, as in a real store; `in_time_order=False` draws each protocol's
    time independently of its id, the fixture of the figures recorded before 2026-12-07 (the
    search bench keeps it: its figures were measured on it).
    """
    from gateway.store.models import email_digest

    rng = random.Random(seed)
    if in_time_order:
        # The oldest first: id 1 was opened first.
        ages = array("q", sorted((rng.randrange(0, SPAN_DAYS * 86400) for _ in range(n)), reverse=True))
    for i in range(1, n + 1):
        age = ages[i - 1] if in_time_order else rng.randrange(0, SPAN_DAYS * 86400)
        opened = AT - timedelta(seconds=age)
        resolved = None
        if opened < AT - timedelta(days=OPEN_DAYS) and rng.random() > NEVER_RESOLVED:
            resolved = opened + timedelta(seconds=rng.randrange(3600, 10 * 86400))
        # Unique, and unrelated to the id (a consumer's number says nothing of when they called):
        # Knuth's multiplier is coprime with 10^8, so i -> i * it mod 10^8 is a bijection.
        phone = f"+55119{(i * 2_654_435_761 if in_time_order else i) % 100_000_000:08d}"
        protocol = {
            "id": i, "number": f"{opened:%Y%m%d}{i:08d}0", "issued_by": "gateway",
            "status": "resolved" if resolved else "open", "subject": f"Cobrança indevida {i}", "category": "billing",
            "profile": "br-sac", "channel": "phone", "consumer_name": f"Consumidor {i}",
            "consumer_email": f"c{i}@example.com", "consumer_phone": phone, "consumer_locale": "pt-BR",
            "consumer_timezone": "America/Sao_Paulo", "notify": "email,sms", "metadata": json.dumps({"crm": i}),
            "opened_at": opened, "received_at": opened, "deadline_at": _deadline(opened), "resolved_at": resolved,
            "retention_until": _two_years(resolved) if resolved else None, "legal_hold": False,
            "updated_at": resolved or opened, "last_event_at": resolved or opened,
            # As the service writes them: the address's digest (search) and the page link's hash,
            # each an index entry that anonymization clears.
            "consumer_email_digest": email_digest(f"c{i}@example.com"),
            "page_token_hash": hashlib.sha256(f"page-{i}".encode()).hexdigest(),
        }
        event = {"id": i, "protocol_id": i, "source": "urn:bench", "event_id": f"e{i}", "type": "protocol.opened",
                 "occurred_at": opened, "received_at": opened,
                 "data": json.dumps({"subject": protocol["subject"], "consumer": {"name": protocol["consumer_name"],
                                                                                  "email": protocol["consumer_email"],
                                                                                  "phone": phone}}),
                 "fingerprint": f"sha256:{i}", "answer": json.dumps({"protocol": {"number": protocol["number"]}})}
        notes = [{"id": 2 * i - 1 + k, "protocol_id": i, "event_id": i, "channel": channel, "audience": "consumer",
                  "recipient": to, "template": "protocol_opened", "template_hash": "sha256:bench", "locale": "pt-BR",
                  "subject": f"Protocolo {protocol['number']}" if channel == "email" else None,
                  "body_text": f"Protocolo {protocol['number']}: {protocol['subject']}", "body_html": None,
                  "status": "delivered", "priority": 0, "attempts": 1, "next_attempt_at": opened,
                  "created_at": opened, "sent_at": opened, "duplicate_possible": False}
                 for k, (channel, to) in enumerate((("email", protocol["consumer_email"]), ("sms", phone)))]
        yield protocol, event, notes


def _fill(kind: str, target: str, n: int) -> None:
    if kind == "sqlite":
        fill_sqlite(Path(target), n)
    else:
        asyncio.run(fill_postgres(target, n))


def _columns(sample: dict[str, Any]) -> list[str]:
    return list(sample)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def fill_sqlite(path: Path, n: int, source: Any = None) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1048576")  # 1 GiB: random index inserts otherwise thrash a 2 MiB cache
    batches: dict[str, list[tuple[Any, ...]]] = {"protocols": [], "events": [], "notifications": []}
    columns: dict[str, list[str]] = {}

    def flush() -> None:
        for table, values in batches.items():
            if values:
                cols = columns[table]
                quoted = ", ".join(f'"{c}"' for c in cols)
                conn.executemany(f'INSERT INTO {table} ({quoted}) VALUES ({", ".join("?" * len(cols))})', values)
                values.clear()
        conn.commit()

    for count, (protocol, event, notes) in enumerate(source or rows(n), 1):  # `source`: bench/search.py's rows
        for table, row in (("protocols", protocol), ("events", event), *(("notifications", x) for x in notes)):
            columns.setdefault(table, _columns(row))
            batches[table].append(tuple(_sqlite_value(row[c]) for c in columns[table]))
        if count % CHUNK == 0:
            flush()
            if count % (10 * CHUNK) == 0:
                say(f"  sqlite: {count:,} protocols")
    flush()
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


async def fill_postgres(url: str, n: int, source: Any = None) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        batches: dict[str, list[tuple[Any, ...]]] = {"protocols": [], "events": [], "notifications": []}
        columns: dict[str, list[str]] = {}

        async def flush() -> None:
            for table, values in batches.items():
                if values:
                    await conn.copy_records_to_table(table, records=values, columns=columns[table])
                    values.clear()

        for count, (protocol, event, notes) in enumerate(source or rows(n), 1):  # `source`: bench/search.py's rows
            for table, row in (("protocols", protocol), ("events", event), *(("notifications", x) for x in notes)):
                columns.setdefault(table, _columns(row))
                batches[table].append(tuple(row[c] for c in columns[table]))
            if count % CHUNK == 0:
                await flush()
                if count % (10 * CHUNK) == 0:
                    say(f"  postgresql: {count:,} protocols")
        await flush()
        for table in ("protocols", "events", "notifications"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _memory(field: str) -> float:
    """MiB from /proc/self/status. (ru_maxrss would carry the parent's peak across fork and exec.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def _measure(url: str, schedule: str, action: str, at: datetime, queue: Any, profile: str | None = None,
             vacuum: bool = False) -> None:
    """In a fresh process: run one sweep as of `at`; report seconds, counts and max RSS."""
    from gateway.config import load_settings
    from gateway.rendering.templates import Templates
    from gateway.store.checkpoint import checkpointing
    from gateway.store.database import Database
    from gateway.sweeps.runner import SweepRunner
    from gateway.sweeps.schedules import load_schedules

    settings = load_settings(environ={}, discover=False, overrides={
        "database": {"url": url}, "operations": {"emails": ["ops@example.com"]},
        "retention": {"action": action, "vacuum": vacuum}})

    async def go() -> dict[str, Any]:
        db = Database(url)
        templates = Templates(settings.templates_dir, settings.gateway.default_locale)
        schedules = load_schedules(settings.schedules_dir, templates=templates,
                                   default_timezone=settings.gateway.timezone)
        runner = SweepRunner(db, templates, settings, schedules, clock=lambda: at)
        before = _memory("VmHWM")
        started = time.perf_counter()
        last = [started]

        def progress(message: str) -> None:  # at most one line a second: a million rows make many batches
            now = time.perf_counter()
            if now - last[0] >= 1.0:
                last[0] = now
                say(f"    {now - started:6.1f} s  {message}")

        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        async with checkpointing(db):  # as in the daemon and `schedules run` (store/checkpoint.py)
            result = await runner.run(schedule, at=at, progress=progress)
        seconds = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        await db.dispose()
        return {"seconds": seconds, "rss_before_mib": before, "rss_peak_mib": _memory("VmHWM"),
                "result": result.as_dict()}

    queue.put(asyncio.run(go()))


def measure(url: str, schedule: str, action: str, at: datetime, profile: str | None = None,
            vacuum: bool = False) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(url, schedule, action, at, queue, profile, vacuum))
    process.start()
    outcome = queue.get()
    process.join()
    return outcome


def _did(result: dict[str, Any]) -> str:
    parts = [f"{result[k]:,} {k}" for k in ("considered", "notified", "enqueued", "late", "anonymized")
             if result.get(k)]
    if result.get("wal_emptied"):
        parts.append("WAL truncated")
    if result.get("vacuumed"):
        parts.append("VACUUM")
    return ", ".join(parts) or (result.get("skipped") or "nothing due")


async def prepare(kind: str, n: int, folder: Path, pg: str | None, keep: Path | None = None) -> tuple[str, Any]:
    from gateway.store.database import Database
    from gateway.store.migrate import migrate

    if kind == "sqlite":
        path = folder / "bench.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        import asyncpg

        assert pg is not None
        name = f"gw_bench_sweeps_{os.getpid()}"
        admin = await asyncpg.connect(pg.replace("postgresql+asyncpg://", "postgresql://", 1))
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
        await admin.close()
        url = pg.rsplit("/", 1)[0] + "/" + name
    if kind == "sqlite" and keep is not None and keep.exists():
        # The same store for two runs (the code before and after a change, say): copied, never filled again.
        shutil.copy(keep, path)
        say(f"  {kind}: copied {keep} ({keep.stat().st_size / 2**20:,.0f} MiB)")
        # A store kept by an older version: without this one's schema the sweeps' queries name columns it lacks.
        return await migrated_sqlite(path), path
    db = Database(url)
    await migrate(db)
    await db.dispose()
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    filler = context.Process(target=_fill, args=(kind, str(path) if kind == "sqlite" else url, n))
    filler.start()
    await asyncio.get_running_loop().run_in_executor(None, filler.join)
    if filler.exitcode != 0:
        raise SystemExit(f"filling the {kind} database failed")
    say(f"  {kind}: {n:,} protocols, {n:,} events, {2 * n:,} notifications in {time.perf_counter() - started:.0f} s")
    if kind == "sqlite" and keep is not None:
        shutil.copy(path, keep)
    return url, (path if kind == "sqlite" else name)


async def drop(kind: str, handle: Any, pg: str | None) -> None:
    if kind == "postgresql":
        import asyncpg

        admin = await asyncpg.connect(pg.replace("postgresql+asyncpg://", "postgresql://", 1))  # type: ignore[union-attr]
        await admin.execute(f"DROP DATABASE IF EXISTS {handle} WITH (FORCE)")
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweeps", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocols", type=int, default=1_000_000)
    parser.add_argument("--sqlite", action="store_true", help="measure SQLite (the default without --pg)")
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL server to create a database on")
    parser.add_argument("--cases", help="comma-separated schedule names (or 'anonymize') to run, default all")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="write a cProfile of each sweep (.prof) here")
    parser.add_argument("--keep-fill", type=Path, metavar="FILE",
                        help="SQLite: copy this filled store if it exists, else fill and keep a copy here")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where the table goes (default {RESULTS})")
    parser.add_argument("--vacuum", action="store_true",
                        help="anonymize with retention.vacuum = true (default: the setting's default, false)")
    args = parser.parse_args(argv)
    wanted = set(args.cases.split(",")) if args.cases else None
    cases = [c for c in CASES if wanted is None or c[1] in wanted or (c[2] in wanted)]
    kinds = (["sqlite"] if args.sqlite or not args.pg else []) + (["postgresql"] if args.pg else [])
    args.out.mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        with tempfile.TemporaryDirectory() as tmp:
            say(f"{kind}: filling")
            url, handle = asyncio.run(prepare(kind, args.protocols, Path(tmp), args.pg, args.keep_fill))
            size = ""
            if kind == "sqlite":
                size = f", file {Path(handle).stat().st_size / 2**20:,.0f} MiB"
            started = datetime.now(timezone.utc)
            commit = machine.describe()["commit"]  # which code the figures are of (a copy outside git: unknown)
            load_at_start = os.getloadavg()
            lines = [f"# Sweeps over {args.protocols:,} protocols on {kind}{size}", "",
                     f"As of {AT.isoformat()} ({EARLY:%H:%M}Z for the deadline reminders); {os.cpu_count()} CPUs; Python {sys.version.split()[0]}.",
                     f"Measured {started:%Y-%m-%d %H:%M} UTC, commit {commit}; "
                     "load average (1, 5, 15 min) at the start "
                     f"{', '.join(f'{v:.2f}' for v in load_at_start)}, at the end LOAD_AT_END.", "",
                     "| sweep | seconds | peak RSS (MiB) | RSS before the run (MiB) | what it did |", "|---|---:|---:|---:|---|"]
            figures = []
            try:
                for label, schedule, action, at in cases:
                    say(f"{kind}: {label}")
                    profile = str(args.profile / f"{kind}-{schedule}-{action}.prof") if args.profile else None
                    outcome = measure(url, schedule, action, at, profile, vacuum=args.vacuum)
                    figures.append({"case": label, **outcome})
                    lines.append(f"| {label} | {outcome['seconds']:.2f} | {outcome['rss_peak_mib']:.0f} | "
                                 f"{outcome['rss_before_mib']:.0f} | {_did(outcome['result'])} |")
                    say(f"  {outcome['seconds']:.2f} s, {outcome['rss_peak_mib']:.0f} MiB: {_did(outcome['result'])}")
            finally:
                asyncio.run(drop(kind, handle, args.pg))
            text = ("\n".join(lines) + "\n").replace(
                "LOAD_AT_END", ", ".join(f"{v:.2f}" for v in os.getloadavg()))
            print(text)
            stem = f"sweeps-{kind}-{args.protocols}-{started:%Y%m%d-%H%M%S}"
            (args.out / f"{stem}.md").write_text(text, encoding="utf-8")
            (args.out / f"{stem}.json").write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
