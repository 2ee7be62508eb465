"""POST /v1/protocols/{number}/requests/{id}/fulfilled (scope protocols:write): operations mark
a postal request fulfilled, with an optional note; the record says by which key and when."""

from __future__ import annotations

from aiohttp import web

from gateway.api.auth import current_key, requires
from gateway.api.json_body import json_model
from gateway.api.protocols import _number
from gateway.api.runtime_keys import CLOCK, DB
from gateway.api.schemas import FulfilRequest
from gateway.errors import NotFound
from gateway.protocols.requests import fulfil_postal

MAX_ID = 2**63 - 1


@requires("protocols:write")
async def post_fulfilled(request: web.Request) -> web.Response:
    number = _number(request)
    raw_id = request.match_info["id"]
    if not (raw_id.isascii() and raw_id.isdigit()) or int(raw_id) > MAX_ID:
        raise NotFound(f"no request {raw_id[:40]!r} on protocol {number}")
    data = await json_model(request, FulfilRequest)
    document, changed = await fulfil_postal(request.app[DB], number, int(raw_id), at=request.app[CLOCK](),
                                            by=current_key(request).name, note=data.note)
    return web.json_response({**document, "changed": changed})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/v1/protocols/{number}/requests/{id}/fulfilled", post_fulfilled)
