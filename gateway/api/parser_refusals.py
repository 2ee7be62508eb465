"""Requests aiohttp refuses while parsing them, answered as problem+json like every other refusal.

A header line over 8,190 bytes (a bloated `Authorization`), more than 128 headers, or bytes
that are not HTTP never reach a handler or a middleware: aiohttp's protocol answers them
itself, in plain text (`RequestHandler.handle_error`). The contract is problem+json for every
4xx and 5xx, so the app's server makes its connections with a handler that builds that answer
as a problem instead. Nothing of the refused request is logged or echoed: the line aiohttp
complains about may hold a key.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from gateway.api.problems import problem

log = logging.getLogger("gateway.api")

TOO_MANY_HEADERS = "Too many headers received"  # aiohttp's message; it has no exception of its own


class ProblemRequestHandler(RequestHandler):
    __slots__ = ()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer is under way: aiohttp closes the connection
            return super().handle_error(request, status, exc, message)
        if isinstance(exc, HttpProcessingError):
            status, detail = refusal(exc)
            log.warning("request refused while parsing", extra={
                "action": "http_request_refused", "status": status, "error": type(exc).__name__})
        else:
            self.log_exception("Error handling request", exc_info=exc)
            detail = "the request timed out" if status == 504 else "an unexpected error occurred; it has been logged"
        response = problem(status, detail)
        response.force_close()
        return response


def refusal(exc: HttpProcessingError) -> tuple[int, str]:
    """The status and the words for what the parser refused (431 for headers, else 400)."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else "8190"
        return 431, f"the request line or a header field is longer than {limit} bytes"
    if isinstance(exc, BadHttpMessage) and exc.message == TOO_MANY_HEADERS:
        return 431, "the request has too many header fields"
    return 400, "the request is not valid HTTP/1.1"


class ProblemServer(web.Server):
    """aiohttp's connection factory, making connections that answer parse errors as problems."""

    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


def answer_parse_errors_as_problems(app: web.Application) -> None:
    """Every runner of `app` (AppRunner, TestServer, run_app) asks the app for its server here."""
    make_server = app._make_handler  # noqa: SLF001 (aiohttp has no public hook for this answer)

    def make_problem_server(**kwargs: Any) -> web.Server:
        server = make_server(**kwargs)
        server.__class__ = ProblemServer  # the same object, whose connections answer in problem+json
        return server

    app._make_handler = make_problem_server  # type: ignore[method-assign]  # noqa: SLF001
