"""The aiohttp application: middlewares and routes."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from gateway.api import events, health, protocols
from gateway.api.auth import auth_middleware
from gateway.api.openapi import build_spec
from gateway.api.parser_refusals import answer_parse_errors_as_problems
from gateway.api.problems import problem_middleware
from gateway.api.request_limits import build_limiter


def _version() -> str:
    try:
        return version("protocol-gateway")
    except PackageNotFoundError:
        return "0.0.0"


# API modules beyond the core ones; each has add_routes(router).
ROUTE_MODULES: tuple[str, ...] = ("gateway.api.webhooks", "gateway.api.templates", "gateway.api.outbox_admin",
                                  "gateway.api.export", "gateway.api.legal_hold", "gateway.api.search",
                                  "gateway.api.reports", "gateway.web.unsubscribe", "gateway.api.requests",
                                  "gateway.web.consumer_page")


def build_web_app(max_body: int) -> web.Application:
    # problem_middleware is outermost so that auth refusals and aiohttp's own errors become problems.
    app = web.Application(middlewares=[problem_middleware, auth_middleware], client_max_size=max_body)
    answer_parse_errors_as_problems(app)
    app.on_startup.append(build_limiter)
    spec = build_spec(_version())

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(spec)

    app.router.add_post("/v1/events", events.post_events)
    app.router.add_get("/v1/protocols/{number}", protocols.get_protocol)
    app.router.add_post("/v1/protocols/{number}/resend", protocols.post_resend)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    app.router.add_get("/openapi.json", openapi)
    for name in ROUTE_MODULES:
        importlib.import_module(name).add_routes(app.router)
    return app
