"""GET /v1/protocols: search (scope protocols:read); the filters are `protocols.search`'s."""

from __future__ import annotations

from aiohttp import web

from gateway.api.auth import requires
from gateway.api.runtime_keys import CLOCK, DB, SETTINGS
from gateway.protocols import search


@requires("protocols:read")
async def list_protocols(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    filters = search.parse_filters(request.query, zone=settings.gateway.timezone,
                                   regions=settings.sms.allowed_countries)
    async with request.app[DB].read() as session:
        found, following = await search.search(session, filters, now=request.app[CLOCK]())
    return web.json_response({"protocols": [f.as_dict() for f in found], "next_cursor": following})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/protocols", list_protocols)
