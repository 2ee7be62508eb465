"""GET /v1/outbox, POST /v1/outbox/{id}/retry, POST /v1/outbox/requeue (scope outbox:admin).

An `admin` key has every scope, this one included.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.api.auth import current_key, requires
from gateway.api.json_body import json_model
from gateway.api.runtime_keys import CLOCK, DB, SERVICE
from gateway.api.schemas import NUMBER_PATTERN, OUTBOX_STATUSES, OutboxRequeueRequest, OutboxRetryRequest
from gateway.delivery import admin as outbox_admin
from gateway.errors import FieldProblem, InvalidFields, NotFound

SCOPE = "outbox:admin"
MAX_ID = 2**63 - 1  # ids are BIGINT: a larger number names nothing (and would overflow the driver)
LIST_PARAMETERS = frozenset({"status", "limit", "before", "protocol"})


@requires(SCOPE)
async def list_outbox(request: web.Request) -> web.Response:
    query = request.query
    # Unknown parameters are refused, as unknown fields are: a typo (`limt=5`) is not ignored.
    problems = [FieldProblem(name, "not a known parameter") for name in sorted(set(query) - LIST_PARAMETERS)]
    statuses: tuple[str, ...] = ()
    raw_status = query.get("status")
    if raw_status is not None and not re.match(OUTBOX_STATUSES, raw_status):
        problems.append(FieldProblem("status", "expected statuses separated by commas: "
                                               f"{', '.join(outbox_admin.STATUSES + tuple(outbox_admin.ALIASES))}"))
    else:
        statuses = outbox_admin.parse_statuses(raw_status)
    limit = _int(query, "limit", outbox_admin.DEFAULT_LIMIT, problems, low=1, high=outbox_admin.MAX_LIMIT)
    before = _int(query, "before", None, problems, low=1, high=MAX_ID)
    if query.get("protocol") is not None and not re.match(NUMBER_PATTERN, query["protocol"]):
        problems.append(FieldProblem("protocol", "expected a protocol number: 6 to 30 digits"))
    if problems:
        raise InvalidFields(problems)
    async with request.app[DB].read() as session:
        items = await outbox_admin.list_notifications(session, statuses=statuses, limit=limit, before=before,
                                                      protocol=query.get("protocol"))
    following = None
    if len(items) == limit:
        params = {k: v for k, v in query.items() if k != "before"} | {"before": str(items[-1].id)}
        following = f"/v1/outbox?{urlencode(params)}"
    return web.json_response({"items": [i.as_dict() for i in items], "next": following})


@requires(SCOPE)
async def post_retry(request: web.Request) -> web.Response:
    raw_id = request.match_info["id"]
    if not (raw_id.isascii() and raw_id.isdigit()) or int(raw_id) > MAX_ID:
        raise NotFound(f"no notification {raw_id[:40]!r}")
    body: OutboxRetryRequest = await json_model(request, OutboxRetryRequest)
    reason = _reason(request, body.reason)
    async with request.app[DB].write() as session:
        item = await outbox_admin.retry(session, int(raw_id), now=request.app[CLOCK](), reason=reason)
    request.app[SERVICE].on_enqueued()  # the dispatcher in this process looks now
    return web.json_response(item.as_dict())


@requires(SCOPE)
async def post_requeue(request: web.Request) -> web.Response:
    body: OutboxRequeueRequest = await json_model(request, OutboxRequeueRequest)
    now = request.app[CLOCK]()
    # The schema holds `status` to names that can be requeued, at least one: an empty list or ","
    # would otherwise read as "everything that needs attention".
    statuses = outbox_admin.parse_statuses(",".join(body.status) if isinstance(body.status, list) else body.status)
    async with request.app[DB].write() as session:
        ids = await outbox_admin.requeue(session, statuses=statuses, now=now, reason=_reason(request, body.reason),
                                         since=body.since, limit=body.limit, dry_run=body.dry_run)
    if ids and not body.dry_run:
        request.app[SERVICE].on_enqueued()
    return web.json_response({"requeued": 0 if body.dry_run else len(ids), "ids": ids, "dry_run": body.dry_run})


def _reason(request: web.Request, given: str | None) -> str:
    return f"by API key {current_key(request).name!r}: {given or 'no reason given'}"


def _int(query: Any, name: str, default: int | None, problems: list[FieldProblem], *, low: int,
         high: int | None = None) -> Any:
    raw = query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < low or (high is not None and int(raw) > high):
        problems.append(FieldProblem(name, f"expected a whole number from {low}" + (f" to {high}" if high else "")))
        return default
    return int(raw)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/outbox", list_outbox)
    router.add_post("/v1/outbox/requeue", post_requeue)
    router.add_post("/v1/outbox/{id}/retry", post_retry)
