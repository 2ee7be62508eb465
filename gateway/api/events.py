"""POST /v1/events."""

from __future__ import annotations

from aiohttp import web

from gateway.api import cloudevents
from gateway.api.auth import requires
from gateway.api.problems import Problem, problem_body, problem_from_service
from gateway.api.runtime_keys import CLOCK, METRICS, SERVICE
from gateway.errors import InvalidFields, ServiceError
from gateway.protocols.service import IncomingEvent


@requires("events:write")
async def post_events(request: web.Request) -> web.Response:
    mode, events = await cloudevents.parse(request)
    service = request.app[SERVICE]
    metrics = request.app[METRICS]
    received_at = request.app[CLOCK]()
    if mode == "single":
        (event,) = events
        if isinstance(event, Exception):
            raise event
        assert isinstance(event, IncomingEvent)
        outcome = await service.handle(event, received_at=received_at)
        metrics.events.labels(event.type, "duplicate" if outcome.duplicate else "accepted").inc()
        return web.json_response(outcome.body, status=200 if outcome.duplicate else 202)

    results = []
    for event in events:
        if isinstance(event, Problem):
            results.append(problem_body(event.status, event.detail, errors=event.errors))
            continue
        if isinstance(event, InvalidFields):
            results.append(problem_from_service(event))
            continue
        assert isinstance(event, IncomingEvent)
        try:
            outcome = await service.handle(event, received_at=received_at)
        except ServiceError as exc:
            results.append(problem_from_service(exc))
            metrics.events.labels(event.type, "refused").inc()
        else:
            results.append(outcome.body)
            metrics.events.labels(event.type, "duplicate" if outcome.duplicate else "accepted").inc()
    return web.json_response({"results": results}, status=200)
