"""GET /v1/protocols/{number}/export (scope protocols:read): the evidence, with its digest."""

from __future__ import annotations

import json
import re

from aiohttp import web

from gateway.api.auth import requires
from gateway.api.runtime_keys import CLOCK, DB
from gateway.api.schemas import NUMBER_PATTERN
from gateway.errors import NotFound
from gateway.protocols.export import export_protocol


@requires("protocols:read")
async def get_export(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    if not re.match(NUMBER_PATTERN, number):
        raise NotFound(f"no protocol {number[:40]!r}: numbers are 6 to 30 digits")
    document = await export_protocol(request.app[DB], number, now=request.app[CLOCK]())
    digest = document["digest"]["value"]
    return web.json_response(
        document, dumps=lambda o: json.dumps(o, ensure_ascii=False),
        headers={"ETag": f'"sha256-{digest}"',
                 "Content-Disposition": f'attachment; filename="protocol-{number}.json"'})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/protocols/{number}/export", get_export)
