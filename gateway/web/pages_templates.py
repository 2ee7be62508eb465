"""Console: the templates, each rendered with its sample or with data typed in, its SMS cost and the
findings of `templates check` (scope templates:read). Renders run in threads of their own, at
most two at once and for at most two seconds of waiting, as the preview API's do."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from gateway.api.runtime_keys import SETTINGS, TEMPLATES
from gateway.errors import NotFound
from gateway.rendering.check import check_templates
from gateway.rendering.preview import describe, preview
from gateway.rendering.templates import TemplateError
from gateway.web.console import page, render

RENDER_SECONDS = 2.0
MAX_DATA = 64 * 1024  # characters of typed data, as the preview API's body
_renderers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="console-preview")


@page("templates:read")
async def list_templates(request: web.Request) -> web.StreamResponse:
    templates = request.app[TEMPLATES]
    return render(request, "templates.html", entries=[describe(templates, n) for n in templates.names()])


@page("templates:read")
async def show_template(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    templates = request.app[TEMPLATES]
    if name not in templates.names():
        raise NotFound("no such template")
    source = await request.post() if request.method == "POST" else request.query
    locale = str(source.get("locale", "")) or None
    typed = str(source.get("data", "")).strip()
    error, result, data = None, None, {}
    if len(typed) > MAX_DATA:
        error = f"at most {MAX_DATA // 1024} KiB of data"
    elif typed:
        try:
            data = json.loads(typed)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
        except ValueError as exc:
            error = f"data: {exc}"
    max_segments = request.app[SETTINGS].sms.max_segments
    if error is None:
        try:
            result = await _in_thread(lambda: preview(templates, name, locale=locale, data=data,
                                                      max_segments=max_segments))
        except TemplateError as exc:
            error = f"{exc.file}:{exc.line or ''} {exc.message}"
        except TimeoutError:
            error = f"the preview took longer than {RENDER_SECONDS:g} s"
    findings = (await _in_thread(lambda: check_templates(templates, max_segments=max_segments, names=[name]))).findings
    return render(request, "template.html", status=422 if error else 200, entry=describe(templates, name),
                  result=result, error=error, typed=typed, locale=locale or "", findings=findings)


async def _in_thread(work: Any) -> Any:
    return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(_renderers, work), RENDER_SECONDS)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/console/templates", list_templates)
    router.add_get("/console/templates/{name}", show_template)
    router.add_post("/console/templates/{name}", show_template)
