"""APScheduler 3 wiring: one job per enabled schedule in an AsyncIOScheduler with its memory store.

The memory store forgets downtime; that is fine, because catching up is the sweeps' own
query (everything due by `at` and not yet done), and every sweep runs once at start-up.
A run still going when its next time comes is not started twice in this process
(`max_instances=1`, plus a lock shared with the start-up run); `coalesce` folds the runs a
stalled loop missed into one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gateway.clock import utcnow
from gateway.protocols.profiles import Profiles
from gateway.sweeps.runner import SweepRunner
from gateway.sweeps.schedules import Schedule

log = logging.getLogger(__name__)

MISFIRE_GRACE = 3600  # seconds; APScheduler 3 wants an int. A run later than this is dropped: the next catches up.
STOP_TIMEOUT = 10.0   # seconds to let running sweeps finish at shutdown before cancelling them


class SweepScheduler:
    def __init__(self, runner: SweepRunner, schedules: list[Schedule], *, run_at_start: bool = True,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.runner = runner
        self.schedules = [s for s in schedules if s.enabled]
        self.run_at_start = run_at_start
        self.clock = clock
        self._scheduler: AsyncIOScheduler | None = None
        self._locks = {s.name: asyncio.Lock() for s in self.schedules}
        self._tasks: set[asyncio.Task[None]] = set()
        self._startup: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running

    def not_ready(self) -> str | None:
        """None when the scheduler runs, else why not (for /readyz)."""
        if not self.running:
            return "not running"
        if self._startup is not None and self._startup.done() and self._startup.cancelled():
            return "start-up sweeps cancelled"
        return None

    async def start(self) -> None:
        self._warn_about_retention()
        scheduler = AsyncIOScheduler(timezone=timezone.utc)
        for schedule in self.schedules:
            scheduler.add_job(self._job, trigger=schedule.trigger(), args=[schedule], id=schedule.name,
                              name=schedule.name, misfire_grace_time=MISFIRE_GRACE, coalesce=True, max_instances=1,
                              replace_existing=True)
        scheduler.start()
        self._scheduler = scheduler
        log.info("scheduler started", extra={"action": "scheduler_started",
                                             "schedules": [s.name for s in self.schedules]})
        if self.run_at_start:
            self._startup = asyncio.create_task(self._run_all(), name="sweeps-at-start")

    async def startup_done(self) -> None:
        """Wait for the start-up runs (tests, the demo)."""
        if self._startup is not None:
            await asyncio.shield(self._startup)

    async def stop(self) -> None:
        if self._scheduler is None:
            return
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler applies the shutdown on the loop's next turn
        pending = [t for t in (*self._tasks, self._startup) if t is not None and not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=STOP_TIMEOUT)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        log.info("scheduler stopped", extra={"action": "scheduler_stopped"})

    async def _run_all(self) -> None:
        for schedule in self.schedules:
            await self.run(schedule)

    async def _job(self, schedule: Schedule) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await self.run(schedule)

    async def run(self, schedule: Schedule) -> None:
        """One run now; a run of the same schedule already going in this process is not doubled."""
        lock = self._locks[schedule.name]
        if lock.locked():
            log.info("sweep skipped: already running", extra={"action": "sweep_skipped", "schedule": schedule.name,
                                                              "skipped": "already running in this process"})
            return
        async with lock:
            try:
                await self.runner.run(schedule, at=self.clock())
            except Exception:  # logged by the runner as sweep_failed; the next run tries again
                pass

    def _warn_about_retention(self) -> None:
        unset = Profiles.from_settings(self.runner.settings).without_retention()
        if unset:
            log.warning(
                "no retention period for profiles %s: retention notices and anonymization do not apply to them "
                "until [profiles.<name>] retention_years is set", ", ".join(unset),
                extra={"action": "retention_unset", "profiles": unset})
