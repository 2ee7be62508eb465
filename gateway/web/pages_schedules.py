"""Console: the schedules, their next runs and what their last runs did (scope outbox:admin: the
sweeps fill the outbox, and the people who watch it are the ones who need to see them)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from gateway.api.runtime_keys import CLOCK, DB
from gateway.store.sweep_models import SweepRun
from gateway.sweeps.schedules import Schedule
from gateway.web.console import page, render

SCHEDULES: web.AppKey[list[Schedule]] = web.AppKey("console_schedules", list)
LAST_RUNS = 3  # per schedule
NEXT_RUNS = 3


@page("outbox:admin")
async def list_schedules(request: web.Request) -> web.StreamResponse:
    now = request.app[CLOCK]()
    schedules = request.app.get(SCHEDULES, [])
    rows = []
    async with request.app[DB].read() as session:
        for s in schedules:
            runs = (await session.scalars(select(SweepRun).where(SweepRun.schedule == s.name)
                                          .order_by(SweepRun.at.desc(), SweepRun.id.desc()).limit(LAST_RUNS))).all()
            rows.append((s, s.next_runs(now, NEXT_RUNS) if s.enabled else [], runs))
    return render(request, "schedules.html", rows=rows)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/console/schedules", list_schedules)
