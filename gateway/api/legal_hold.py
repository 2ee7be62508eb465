"""POST and DELETE /v1/protocols/{number}/legal-hold (scope protocols:write).

A legal hold keeps a record out of anonymization whatever the retention settings say; placing
and lifting it are audited with the key's name and an optional reason (`{"reason": "..."}`).
Both are idempotent: the answer says whether anything changed.
"""

from __future__ import annotations

import re

from aiohttp import web

from gateway.api.auth import current_key, requires
from gateway.api.json_body import json_object
from gateway.api.runtime_keys import CLOCK, DB
from gateway.api.schemas import NUMBER_PATTERN
from gateway.errors import FieldProblem, InvalidFields, NotFound
from gateway.protocols.legal_hold import set_legal_hold

MAX_REASON = 500


def _number(request: web.Request) -> str:
    number = request.match_info["number"]
    if not re.match(NUMBER_PATTERN, number):
        raise NotFound(f"no protocol {number[:40]!r}: numbers are 6 to 30 digits")
    return number


async def _reason(request: web.Request) -> str | None:
    body = await json_object(request, optional=True)
    unknown = sorted(set(body) - {"reason"})
    if unknown:
        raise InvalidFields([FieldProblem(k, "not a known field") for k in unknown])
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise InvalidFields([FieldProblem("reason", f"expected text of at most {MAX_REASON} characters")])
    return reason


async def _change(request: web.Request, hold: bool) -> web.Response:
    number = _number(request)
    reason = await _reason(request)
    result = await set_legal_hold(request.app[DB], number, hold, at=request.app[CLOCK](),
                                  actor=f"api-key:{current_key(request).name}", reason=reason)
    return web.json_response(result)


@requires("protocols:write")
async def post_legal_hold(request: web.Request) -> web.Response:
    return await _change(request, True)


@requires("protocols:write")
async def delete_legal_hold(request: web.Request) -> web.Response:
    return await _change(request, False)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/v1/protocols/{number}/legal-hold", post_legal_hold)
    router.add_delete("/v1/protocols/{number}/legal-hold", delete_legal_hold)
