"""Filling the store: bench/sweeps.py's protocols moved to today, the last ones with their
confirmation email queued and parked; SQLite through sqlite3, PostgreSQL through asyncpg's COPY."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.memory import CHUNK, PARKED, UTC
from bench.progress import say
from bench.settings import bench_settings
from bench.sweeps import AT, rows


class Confirmation:
    """The confirmation email the service queues, from the real templates.

    Rendered once, for the first protocol asked about, then varied per protocol by number,
    subject and consumer name: the same shape and sizes as rendering each one.
    """

    def __init__(self, folder: Path, url: str) -> None:
        from gateway.protocols.messages import MessageBuilder
        from gateway.rendering.templates import Templates

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
