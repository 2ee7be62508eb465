"""GET /v1/templates and POST /v1/templates/{name}/preview (scope templates:read).

A preview renders in a thread of its own, never on the event loop: a large one (a 1 MiB body
took 0.8 s) would otherwise stall every other request, events included. It is capped in size
(the body) and in time (the answer; a render past the cap finishes in its thread, unseen, and
at most `RENDER_THREADS` of them run at once).
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from gateway.api import cloudevents
from gateway.api.auth import requires
from gateway.api.json_body import parse_object
from gateway.api.problems import CONTENT_TYPE, Problem, problem_body
from gateway.api.runtime_keys import SETTINGS, TEMPLATES
from gateway.api.schemas import TemplatePreviewRequest
from gateway.errors import FieldProblem, InvalidFields, NotFound
from gateway.rendering.preview import describe, preview
from gateway.rendering.templates import TemplateError, Templates

RENDER_THREADS = 2
_renderers = ThreadPoolExecutor(max_workers=RENDER_THREADS, thread_name_prefix="template-preview")


@dataclass(frozen=True)
class PreviewLimits:
    max_body: int = 64 * 1024  # bytes: samples and the data a person types in are a few KiB
    seconds: float = 2.0       # a shipped template renders in milliseconds


# Tests may set other limits on the app; the daemon uses the defaults.
PREVIEW_LIMITS = web.AppKey("preview_limits", PreviewLimits)


def _templates(request: web.Request) -> Templates:
    return request.app[TEMPLATES]


@requires("templates:read")
async def list_templates(request: web.Request) -> web.Response:
    templates = _templates(request)
    return web.json_response({"templates": [describe(templates, name) for name in templates.names()]})


@requires("templates:read")
async def post_preview(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    limits = request.app.get(PREVIEW_LIMITS) or PreviewLimits()
    body = await _body(request, limits.max_body)
    try:
        asked = TemplatePreviewRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidFields(cloudevents.field_problems(exc)) from None
    templates = _templates(request)
    if name not in templates.names():
        raise NotFound(f"no template {name[:100]!r}")
    if asked.channel and asked.channel not in _channels(templates, name):
        # A channel the template has in no locale (an operations template by SMS) is not there to
        # render, as an unknown template is not: 404. A locale lacking a file the others have is a
        # broken template, reported as one (422).
        raise NotFound(f"template {name!r} has no {asked.channel} version")

    def render() -> dict[str, Any]:
        return preview(templates, name, locale=asked.locale, channel=asked.channel, data=asked.data,
                       max_segments=request.app[SETTINGS].sms.max_segments)

    try:
        result = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(_renderers, render),
                                        timeout=limits.seconds)
    except TemplateError as exc:
        return _template_problem(exc)
    except TimeoutError:
        field = "data" if asked.data else "template"
        raise InvalidFields([FieldProblem(field, f"the preview took longer than {limits.seconds:g} s to render")]
                            ) from None
    return web.json_response(result, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _channels(templates: Templates, name: str) -> set[str]:
    return {channel for locale in templates.locales(name) for channel in templates.channels(name, locale)}


async def _body(request: web.Request, max_body: int) -> Any:
    if request.content_length is not None and request.content_length > max_body:
        raise _too_large(max_body)
    raw = await request.read()  # held to http.max_body by aiohttp, streamed or not
    if len(raw) > max_body:
        raise _too_large(max_body)
    return parse_object(request, raw, optional=True, stored=False)  # a preview stores nothing: NUL is only text here


def _too_large(max_body: int) -> Problem:
    return Problem(413, f"a preview body has at most {max_body // 1024} KiB",
                   errors=[FieldProblem("data", f"the body is larger than {max_body // 1024} KiB")])


def _template_problem(exc: TemplateError) -> web.Response:
    """422 naming what failed: `data.<variable>` for an undefined one, else the template file."""
    field = f"data.{exc.variable}" if exc.variable else "template"
    where = f"{exc.file}:{exc.line}" if exc.line else exc.file
    body = problem_body(422, f"the template does not render: {where}: {exc.message}",
                        errors=[FieldProblem(field, f"{where}: {exc.message}")])
    body.update(file=exc.file, line=exc.line, variable=exc.variable)
    return web.Response(status=422, text=json.dumps(body, ensure_ascii=False), content_type=CONTENT_TYPE)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/templates", list_templates)
    router.add_post("/v1/templates/{name}/preview", post_preview)
