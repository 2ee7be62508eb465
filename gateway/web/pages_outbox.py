"""Console: what needs attention in the outbox, retry one, requeue many (scope outbox:admin)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.runtime_keys import CLOCK, DB, SERVICE
from gateway.delivery import admin as outbox_admin
from gateway.errors import NotFound
from gateway.web.console import actor, page, redirect, render
from gateway.web.reasons import explain

MAX_ID = 2**63 - 1


@page("outbox:admin")
async def list_outbox(request: web.Request) -> web.StreamResponse:
    async with request.app[DB].read() as session:
        items = await outbox_admin.list_notifications(session, statuses=outbox_admin.ATTENTION)
    return render(request, "outbox.html", items=[(i, explain(i)) for i in items],
                  retryable=[s for s in outbox_admin.RETRYABLE if s in outbox_admin.ATTENTION],
                  done=request.query.get("done"))


@page("outbox:admin")
async def post_retry(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_ID:
        raise NotFound("no such notification")
    async with request.app[DB].write() as session:
        await outbox_admin.retry(session, int(raw), now=request.app[CLOCK](),
                                 reason=f"by {actor(request)}: retried in the console")
    request.app[SERVICE].on_enqueued()
    return redirect(f"/console/outbox?done=retried-{raw}")


@page("outbox:admin")
async def post_requeue(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    status = str(form.get("status", ""))
    if status not in outbox_admin.RETRYABLE:
        raise NotFound("no such status")
    async with request.app[DB].write() as session:
        ids = await outbox_admin.requeue(session, statuses=(status,), now=request.app[CLOCK](),
                                         reason=f"by {actor(request)}: requeued in the console")
    if ids:
        request.app[SERVICE].on_enqueued()
    return redirect(f"/console/outbox?done=requeued-{len(ids)}")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/console/outbox", list_outbox)
    router.add_post("/console/outbox/requeue", post_requeue)
    router.add_post("/console/outbox/{id}/retry", post_retry)
