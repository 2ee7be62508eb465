"""The bench's own instruments on the running daemon: its RSS (Sampler), its log (DaemonLog) and
its outbox (SQLiteProbe, PostgresProbe, which also release the backlog), none through the gateway's code."""

from __future__ import annotations

import asyncio
import collections
import json
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.memory import KEPT_SAMPLES, SAMPLE_EVERY, UTC
from bench.memory.fill import _plain, _sqlite_value


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
