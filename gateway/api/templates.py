"""GET /v1/templates and POST /v1/templates/{name}/preview (scope templates:read)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from gateway.api import cloudevents
from gateway.api.auth import requires
from gateway.api.problems import CONTENT_TYPE, Problem, problem_body
from gateway.api.runtime_keys import SETTINGS, TEMPLATES
from gateway.api.schemas import TemplatePreviewRequest
from gateway.errors import FieldProblem, InvalidFields, NotFound
from gateway.rendering.preview import describe, preview
from gateway.rendering.templates import TemplateError, Templates


def _templates(request: web.Request) -> Templates:
    return request.app[TEMPLATES]


@requires("templates:read")
async def list_templates(request: web.Request) -> web.Response:
    templates = _templates(request)
    return web.json_response({"templates": [describe(templates, name) for name in templates.names()]})


@requires("templates:read")
async def post_preview(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await _body(request)
    try:
        asked = TemplatePreviewRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidFields(cloudevents.field_problems(exc)) from None
    templates = _templates(request)
    if name not in templates.names():
        raise NotFound(f"no template {name[:100]!r}")
    try:
        result = preview(templates, name, locale=asked.locale, channel=asked.channel, data=asked.data,
                         max_segments=request.app[SETTINGS].sms.max_segments)
    except TemplateError as exc:
        return _template_problem(exc)
    return web.json_response(result, dumps=lambda o: json.dumps(o, ensure_ascii=False))


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    if request.content_type != "application/json":
        raise Problem(415, f"expected Content-Type application/json (got {request.content_type or 'none'})")
    body = cloudevents.decode_json(raw)
    if not isinstance(body, dict):
        raise Problem(400, "the body must be a JSON object")
    return body


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
