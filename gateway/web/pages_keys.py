"""Console: API keys, listed, created (shown once) and revoked (scope admin)."""

from __future__ import annotations

import logging
import re

from aiohttp import web

from gateway.api import keys
from gateway.api.runtime_keys import CLOCK, DB
from gateway.errors import FieldProblem, InvalidFields
from gateway.web.console import actor, page, redirect, render

log = logging.getLogger("gateway.web")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


async def _page(request: web.Request, *, created: str | None = None, status: int = 200,
                error: str | None = None) -> web.Response:
    return render(request, "keys.html", status=status, keys=await keys.list_keys(request.app[DB]), scopes=keys.SCOPES,
                  created=created, error=error)


@page("admin")
async def list_keys(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@page("admin")
async def post_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", "")).strip()
    scopes = [s for s in keys.SCOPES if form.get(f"scope-{s}") == "on"]
    if not NAME.match(name) or not scopes:
        raise InvalidFields([FieldProblem("name", "a name of letters, digits, '.', '_' or '-', and at least one scope")])
    try:
        created = await keys.create_key(request.app[DB], name, scopes, now=request.app[CLOCK]())
    except keys.KeyRefused as exc:
        return await _page(request, status=409, error=str(exc))
    log.info("key created", extra={"action": "key_created", "key": name, "by": actor(request)})
    # Shown in this answer alone, never stored: a reload does not show it again.
    return await _page(request, created=created)


@page("admin")
async def post_revoke(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", ""))
    try:
        await keys.revoke(request.app[DB], name, now=request.app[CLOCK]())
    except keys.KeyRefused as exc:
        return await _page(request, status=404, error=str(exc))
    log.info("key revoked", extra={"action": "key_revoked", "key": name, "by": actor(request)})
    return redirect("/console/keys")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/console/keys", list_keys)
    router.add_post("/console/keys", post_create)
    router.add_post("/console/keys/revoke", post_revoke)
