"""RFC 9457 problem details for every 4xx and 5xx, aiohttp's own 404/405/413 included."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from gateway.errors import FieldProblem, InvalidFields, RateLimited, ServiceError
from gateway.store.outage import database_unavailable

log = logging.getLogger("gateway.api")

CONTENT_TYPE = "application/problem+json"
# Types are relative URI references; each is described in the README's "Errors" section.
TYPES = {400: "malformed", 401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
         408: "request-timeout", 409: "conflict", 413: "too-large", 415: "unsupported-media-type", 422: "invalid-fields",
         429: "rate-limited", 431: "headers-too-large", 500: "internal", 503: "unavailable", 504: "timeout"}


def problem_body(status: int, detail: str, *, title: str | None = None,
                 errors: list[FieldProblem] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"/problems/{TYPES.get(status, 'error')}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return body


def problem(status: int, detail: str, *, title: str | None = None, errors: list[FieldProblem] | None = None,
            headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(problem_body(status, detail, title=title, errors=errors), ensure_ascii=False),
        content_type=CONTENT_TYPE,
        headers=headers,
    )


class Problem(Exception):
    """Raised by handlers and middlewares to answer with a problem."""

    def __init__(self, status: int, detail: str, *, errors: list[FieldProblem] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors, self.headers = status, detail, errors, headers

    def response(self) -> web.Response:
        return problem(self.status, self.detail, errors=self.errors, headers=self.headers)


def problem_from_service(exc: ServiceError) -> dict[str, Any]:
    errors = exc.problems if isinstance(exc, InvalidFields) else None
    body = problem_body(exc.status, exc.detail, errors=errors)
    if isinstance(exc, RateLimited):
        body["retry_after"] = exc.retry_after  # a batch entry has no header of its own
    return body


_AIOHTTP_DETAIL = {
    404: "no such endpoint",
    405: "this endpoint does not accept this method",
    413: "the request body is larger than http.max_body",
}


@web.middleware
async def problem_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                             ) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as exc:
        return exc.response()
    except ServiceError as exc:
        errors = exc.problems if isinstance(exc, InvalidFields) else None
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return problem(exc.status, exc.detail, errors=errors, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        detail = _AIOHTTP_DETAIL.get(exc.status, exc.reason)
        return problem(exc.status, detail, headers=headers)
    except Exception as exc:
        if database_unavailable(exc):  # refused, dropped, restarting (57P), or a session it left unusable
            log.error("database unavailable", extra={"action": "db_unavailable", "error": type(exc).__name__})
            return problem(503, "the database is unavailable; nothing was accepted, retry later",
                           headers={"Retry-After": "5"})
        log.exception("unhandled error", extra={"action": "http_error", "path": request.path})
        return problem(500, "an unexpected error occurred; it has been logged")
