"""POST /v1/events."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from gateway.api import cloudevents
from gateway.api.auth import current_key, requires
from gateway.api.problems import Problem, problem_body, problem_from_service
from gateway.api.runtime_keys import CLOCK, METRICS, SERVICE
from gateway.errors import InvalidFields, ServiceError
from gateway.protocols.service import IncomingEvent
from gateway.store.outage import database_unavailable

log = logging.getLogger("gateway.api")


@requires("events:write")
async def post_events(request: web.Request) -> web.Response:
    mode, events = await cloudevents.parse(request, current_key(request))
    service = request.app[SERVICE]
    metrics = request.app[METRICS]
    received_at = request.app[CLOCK]()
    if mode == "single":
        (event,) = events
        if isinstance(event, Exception):
            raise event
        assert isinstance(event, IncomingEvent)
        outcome = await service.handle(event, received_at=received_at)
        metrics.child(metrics.events, event.type, "duplicate" if outcome.duplicate else "accepted").inc()
        return web.json_response(outcome.body, status=200 if outcome.duplicate else 202)

    results = [await _batch_entry(request, event, received_at) for event in events]
    return web.json_response({"results": results}, status=200)


async def _batch_entry(request: web.Request, event: IncomingEvent | Exception, received_at: Any) -> dict[str, Any]:
    """One slot of a batch's answer. Whatever one event meets, every event gets its own result:
    the events before it are committed and must be reported, the ones after it still tried."""
    if isinstance(event, Problem):
        return problem_body(event.status, event.detail, errors=event.errors)
    if isinstance(event, InvalidFields):
        return problem_from_service(event)
    assert isinstance(event, IncomingEvent)
    metrics = request.app[METRICS]
    try:
        outcome = await request.app[SERVICE].handle(event, received_at=received_at)
    except ServiceError as exc:
        metrics.events.labels(event.type, "refused").inc()
        return problem_from_service(exc)
    except Exception as exc:
        metrics.events.labels(event.type, "error").inc()
        if database_unavailable(exc):
            log.error("database unavailable", extra={"action": "db_unavailable", "error": type(exc).__name__})
            return problem_body(503, "the database is unavailable; this event was not accepted, retry it")
        log.exception("unhandled error in a batch entry", extra={"action": "http_error", "path": request.path})
        return problem_body(500, "an unexpected error occurred with this event; it has been logged")
    metrics.child(metrics.events, event.type, "duplicate" if outcome.duplicate else "accepted").inc()
    return outcome.body
