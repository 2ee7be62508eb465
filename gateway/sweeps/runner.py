"""Running a sweep: one schedule, as of `at`.

A sweep is a function of `at` (only the scheduler reads the clock). The runner guards it on
PostgreSQL with a transaction-level advisory lock per schedule, so that of several gateway
processes one sweeps and the others skip; the unique keys make a second run harmless anyway
(SQLite, or a lock lost mid-run). Each run is recorded in `sweep_runs` and logged with a
stable action: `sweep_done`, `sweep_skipped`, `sweep_failed`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import text

from gateway.clock import utcnow
from gateway.config import Settings
from gateway.protocols.page_links import PageLinks
from gateway.protocols.profiles import Profiles
from gateway.rendering.templates import Templates
from gateway.store.database import Database
from gateway.store.sweep_models import SweepRun
from gateway.sweeps.confirmations import unconfirmed_alerts
from gateway.sweeps.context import Progress, SweepContext, SweepResult
from gateway.sweeps.digest import operations_digest
from gateway.sweeps.reminders import deadline_reminders, overdue_alerts
from gateway.sweeps.retention import retention_expiry, retention_notices
from gateway.sweeps.schedules import Schedule

log = logging.getLogger(__name__)

KIND_FUNCTIONS: dict[str, Callable[[SweepContext], Awaitable[None]]] = {
    "deadline_reminder": deadline_reminders,
    "overdue_alert": overdue_alerts,
    "operations_digest": operations_digest,
    "retention_notice": retention_notices,
    "anonymize": retention_expiry,
    "confirmation_overdue": unconfirmed_alerts,
}


class UnknownSchedule(KeyError):
    pass


def lock_key(schedule: str) -> int:
    """A stable signed 64-bit advisory-lock key per schedule name."""
    return int.from_bytes(hashlib.sha256(f"sweep:{schedule}".encode()).digest()[:8], "big", signed=True)


class SweepRunner:
    def __init__(
        self,
        db: Database,
        templates: Templates,
        settings: Settings,
        schedules: list[Schedule],
        *,
        wake: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
        lock: bool = True,
        pages: PageLinks | None = None,
    ) -> None:
        self.db = db
        self.templates = templates
        self.settings = settings
        self.schedules = {s.name: s for s in schedules}
        self.profiles = Profiles.from_settings(settings)
        self.wake = wake
        self.clock = clock
        self.pages = pages
        self.lock = lock  # PostgreSQL: one sweeper per schedule at a time (tests turn it off to race the keys)

    def get(self, name: str) -> Schedule:
        try:
            return self.schedules[name]
        except KeyError:
            raise UnknownSchedule(name) from None

    async def run(self, schedule: Schedule | str, *, at: datetime | None = None, dry_run: bool = False,
                  progress: Progress | None = None) -> SweepResult:
        """Run one sweep as of `at` (default: now). With `dry_run`, nothing is written."""
        schedule = self.get(schedule) if isinstance(schedule, str) else schedule
        at = at or self.clock()
        if at.tzinfo is None:
            raise ValueError("naive datetime: pass an aware `at`")
        result = SweepResult(schedule.name, schedule.kind, at, dry_run=dry_run)
        ctx = SweepContext(self.db, self.templates, self.settings, self.profiles, schedule, at, result,
                           clock=self.clock, dry_run=dry_run, progress=progress or (lambda _m: None),
                           pages=self.pages)
        async with self._guard(schedule, dry_run) as acquired:
            if not acquired:
                ctx.skip("another process is running this sweep")
            else:
                try:
                    await KIND_FUNCTIONS[schedule.kind](ctx)
                except Exception as exc:
                    log.error("sweep failed", extra={"action": "sweep_failed", "schedule": schedule.name,
                                                     "kind": schedule.kind, "at": at.isoformat(),
                                                     "error": f"{type(exc).__name__}: {exc}"[:500]})
                    await self._record(result, "failed")
                    if result.enqueued and not dry_run:
                        self.wake()  # the batches before the failure are committed
                    raise
        if result.enqueued and not dry_run:
            self.wake()
        await self._record(result, "skipped" if result.skipped else "done")
        self._log(result)
        return result

    @asynccontextmanager
    async def _guard(self, schedule: Schedule, dry_run: bool) -> AsyncIterator[bool]:
        if self.db.is_sqlite or dry_run or not self.lock:
            yield True
            return
        # Held for the whole run on a connection of its own; released when it ends.
        async with self.db.writer.connect() as conn, conn.begin():
            acquired = await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                         {"key": lock_key(schedule.name)})
            yield bool(acquired)

    async def _record(self, result: SweepResult, outcome: str) -> None:
        if result.dry_run or result.skipped == "another process is running this sweep":
            return
        try:
            async with self.db.write() as session:
                session.add(SweepRun(schedule=result.schedule, kind=result.kind, at=result.at, period=None,
                                     finished_at=self.clock(), outcome=outcome, result=result.as_dict()))
        except Exception as exc:  # the record of a run must not turn a done sweep into a failed one
            log.warning("sweep run not recorded", extra={"action": "sweep_record_failed", "schedule": result.schedule,
                                                         "error": type(exc).__name__})

    @staticmethod
    def _log(result: SweepResult) -> None:
        fields = {k: v for k, v in result.as_dict().items() if v not in (0, False, None) or k == "enqueued"}
        if result.skipped:
            log.info("sweep skipped: %s", result.skipped, extra={"action": "sweep_skipped", **fields})
        else:
            log.info("sweep done", extra={"action": "sweep_done", **fields})
