"""Console: the templates, each rendered with its sample or with data typed in, its SMS cost, the
findings of `templates check`, and a scratch pad for drafts (scope templates:read). Renders run in
threads of their own, at most two at once and for at most two seconds of waiting, as the preview
API's do."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from gateway.api import cloudevents
from gateway.api.problems import Problem
from gateway.api.runtime_keys import SETTINGS, TEMPLATES
from gateway.errors import NotFound
from gateway.rendering.check import check_templates
from gateway.rendering.preview import describe, preview
from gateway.protocols.schemas import MAX_DEPTH, depth
from gateway.rendering.templates import TemplateError
from gateway.web import template_drafts
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
    name, templates = _named(request)
    source = await request.post() if request.method == "POST" else request.query
    locale = str(source.get("locale", "")) or None
    typed = str(source.get("data", "")).strip()
    data, error = _typed_data(typed, MAX_DATA)
    result = None
    max_segments = request.app[SETTINGS].sms.max_segments
    if error is None:
        result, error = await _rendered(lambda: preview(templates, name, locale=locale, data=data,
                                                        max_segments=max_segments))
    return await _template_page(request, name, status=422 if error else 200, result=result, error=error,
                                typed=typed, locale=locale or "")


@page("templates:read")
async def post_draft(request: web.Request) -> web.StreamResponse:
    """The scratch pad: a draft of this template's files rendered with its sample (and data typed in), never saved."""
    name, templates = _named(request)
    form = await request.post()
    locale = _locale(templates, name, str(form.get("locale", "")))
    drafted = {f: str(form.get(f, "")) for f in template_drafts.FIELDS}
    typed = str(form.get("data", "")).strip()
    # One cap for everything typed, the preview API's body size.
    room = MAX_DATA - sum(len(t) for t in drafted.values())
    data, error = _typed_data(typed, room) if room >= 0 else ({}, f"at most {MAX_DATA // 1024} KiB in all")
    result = None
    if error is None:
        max_segments = request.app[SETTINGS].sms.max_segments
        result, error = await _rendered(lambda: template_drafts.render_draft(
            templates, name, locale, drafted, data, max_segments=max_segments))
    return await _template_page(request, name, status=422 if error else 200, draft=drafted, draft_typed=typed,
                                draft_locale=locale, draft_result=result, draft_error=error)


def _named(request: web.Request) -> tuple[str, Any]:
    """The template the path names, with the templates; NotFound when there is none."""
    name = request.match_info["name"]
    templates = request.app[TEMPLATES]
    if name not in templates.names():
        raise NotFound("no such template")
    return name, templates


async def _template_page(request: web.Request, name: str, *, status: int, **context: Any) -> web.Response:
    templates = request.app[TEMPLATES]
    max_segments = request.app[SETTINGS].sms.max_segments
    try:
        findings = (await _in_thread(lambda: check_templates(templates, max_segments=max_segments,
                                                             names=[name]))).findings
    except TimeoutError:  # the page still answers, with the render or the draft asked for
        findings = None
    locale = _locale(templates, name, context.get("draft_locale") or context.get("locale") or "")
    context.setdefault("result", None)
    context.setdefault("error", None)
    context.setdefault("typed", "")
    context.setdefault("locale", "")
    context.setdefault("draft", template_drafts.current_files(templates, name, locale))
    context.setdefault("draft_typed", "")
    context.setdefault("draft_locale", locale)
    context.setdefault("draft_result", None)
    context.setdefault("draft_error", None)
    return render(request, "template.html", status=status, entry=describe(templates, name), findings=findings,
                  **context)


def _locale(templates: Any, name: str, asked: str) -> str:
    """One of the template's locales: the one asked for, else the default's, else its first."""
    locales = templates.locales(name)
    for candidate in (asked, templates.default_locale):
        if candidate in locales:
            return candidate
    return locales[0] if locales else templates.default_locale


def _typed_data(typed: str, room: int) -> tuple[dict[str, Any], str | None]:
    """JSON typed over the sample, as the preview API takes it: an object, at most `room`
    characters and 32 levels deep; else a message naming the field."""
    if not typed:
        return {}, None
    if len(typed) > room:
        return {}, f"data: at most {MAX_DATA // 1024} KiB in all"
    try:
        data = cloudevents.decode_json(typed.encode("utf-8"), stored=False)
    except Problem as exc:
        return {}, f"data: {exc.detail.replace('the body ', '', 1)}"
    if not isinstance(data, dict):
        return {}, "data: expected a JSON object"
    if depth(data) > MAX_DEPTH:
        return {}, f"data: nested deeper than {MAX_DEPTH} levels"
    return data, None


async def _rendered(work: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A render off the event loop, or the message saying where it failed (file, line, variable)."""
    try:
        return await _in_thread(work), None
    except TemplateError as exc:
        where = f"{exc.file.rsplit('/', 1)[-1]}, line {exc.line}" if exc.line else exc.file.rsplit("/", 1)[-1]
        variable = f" (data.{exc.variable})" if exc.variable else ""
        return None, f"{where}: {exc.message}{variable}"
    except template_drafts.DraftRefused as exc:
        return None, str(exc)
    except TimeoutError:
        return None, f"the preview took longer than {RENDER_SECONDS:g} s"


async def _in_thread(work: Any) -> Any:
    return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(_renderers, work), RENDER_SECONDS)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/console/templates", list_templates)
    router.add_get("/console/templates/{name}", show_template)
    router.add_post("/console/templates/{name}", show_template)
    router.add_post("/console/templates/{name}/draft", post_draft)
