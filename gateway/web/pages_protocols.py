"""Console: find protocols, read one's timeline, send it again, hold it, mark a postal request
fulfilled, download its evidence."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlencode

from aiohttp import web
from pydantic import ValidationError

from gateway.api.runtime_keys import CLOCK, DB, SERVICE, SETTINGS
from gateway.errors import FieldProblem, InvalidFields, NotFound
from gateway.protocols import export, search
from gateway.protocols.legal_hold import set_legal_hold
from gateway.protocols.query_limits import NOTE_MAX
from gateway.protocols.requests import fulfil_postal
from gateway.protocols.schemas import NUMBER_PATTERN, ResendData
from gateway.protocols.service import IncomingEvent, Requester
from gateway.web.console import SESSION, actor, page, redirect, render

RESEND_CHANNELS = ("email", "sms", "mail")


@page("protocols:read")
async def list_protocols(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    # Empty fields of the form are "no filter"; `lang` is the page's, not a filter.
    query = {k: v for k, v in request.query.items() if v.strip() and k != "lang"}
    found: list[search.Found] = []
    following, problems = None, []
    try:
        filters = search.parse_filters(query, zone=settings.gateway.timezone, regions=settings.sms.allowed_countries)
    except InvalidFields as exc:
        problems = exc.problems
    else:
        async with request.app[DB].read() as session:
            found, following = await search.search(session, filters, now=request.app[CLOCK]())
    next_query = urlencode({**query, "cursor": following}) if following else None
    return render(request, "protocols.html", status=422 if problems else 200, query=query, found=found,
                  problems=problems, next_query=next_query, statuses=search.STATUSES)


def _number(request: web.Request) -> str:
    number = request.match_info["number"]
    if not re.match(NUMBER_PATTERN, number):
        raise NotFound("no such protocol")
    return number


@page("protocols:read")
async def show_protocol(request: web.Request) -> web.StreamResponse:
    number = _number(request)
    async with request.app[DB].read() as session:
        record = await export.protocol_record(session, number)
    return render(request, "protocol.html", record=record, p=record["protocol"], channels=RESEND_CHANNELS,
                  done=request.query.get("done") == "1", note_max=NOTE_MAX)


@page("protocols:write")
async def post_resend(request: web.Request) -> web.StreamResponse:
    number = _number(request)
    form = await request.post()
    try:
        data = ResendData.model_validate({"number": number, "channel": str(form.get("channel", "")),
                                          "history": form.get("history") == "on"})
    except ValidationError:
        raise InvalidFields([FieldProblem("channel", f"expected one of {', '.join(RESEND_CHANNELS)}")]) from None
    session = request[SESSION]
    event = IncomingEvent(source=f"urn:protocol-gateway:console:{session.key_name}", id=f"console-{uuid.uuid4()}",
                          type="protocol.resend_requested", time=None, data=data, field_prefix="",
                          requester=Requester(session.key_name, may_send_elsewhere=session.allows("protocols:write")))
    await request.app[SERVICE].handle(event, received_at=request.app[CLOCK]())
    return redirect(f"/console/protocols/{number}?done=1")


@page("protocols:write")
async def post_legal_hold(request: web.Request) -> web.StreamResponse:
    number = _number(request)
    form = await request.post()
    reason = str(form.get("reason", "")).strip()[:500] or None
    await set_legal_hold(request.app[DB], number, form.get("action") == "place", at=request.app[CLOCK](),
                         actor=actor(request), reason=reason)
    return redirect(f"/console/protocols/{number}?done=1")


@page("protocols:write")
async def post_fulfilled(request: web.Request) -> web.StreamResponse:
    """A postal request sent: the same record as POST /v1/protocols/{number}/requests/{id}/fulfilled,
    by the signed-in key."""
    number = _number(request)
    raw_id = request.match_info["id"]
    if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > 18:
        raise NotFound("no such request")
    form = await request.post()
    note = str(form.get("note", "")).strip()[:NOTE_MAX] or None
    await fulfil_postal(request.app[DB], number, int(raw_id), at=request.app[CLOCK](), by=request[SESSION].key_name,
                        note=note)
    return redirect(f"/console/protocols/{number}?done=1")


@page("protocols:read")
async def download_export(request: web.Request) -> web.StreamResponse:
    number = _number(request)
    document = await export.export_protocol(request.app[DB], number, now=request.app[CLOCK]())
    return web.Response(text=json.dumps(document, ensure_ascii=False, indent=2), content_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="protocol-{number}.json"'})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/console/protocols", list_protocols)
    router.add_get("/console/protocols/{number}", show_protocol)
    router.add_post("/console/protocols/{number}/resend", post_resend)
    router.add_post("/console/protocols/{number}/legal-hold", post_legal_hold)
    router.add_post("/console/protocols/{number}/requests/{id}/fulfilled", post_fulfilled)
    router.add_get("/console/protocols/{number}/export", download_export)
