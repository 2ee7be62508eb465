"""The operations console at /console/: its Jinja environment, sessions, CSRF, headers, errors.

Pages are server-rendered HTML that works without JavaScript; htmx (vendored in static/, with
its licence) swaps parts in place. Every page and action names the scope it needs, read from
the signed-in key at each request. Errors are HTML pages, never problem+json.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from gateway.api.runtime_keys import CLOCK, DB, SETTINGS
from gateway.errors import ServiceError
from gateway.store.outage import database_unavailable
from gateway.web import i18n, sessions, sign_in_limits

log = logging.getLogger("gateway.web")

HERE = Path(__file__).resolve().parent
PREFIX = "/console"
ENV: web.AppKey[jinja2.Environment] = web.AppKey("console_env", jinja2.Environment)
SESSION: web.RequestKey[sessions.Session] = web.RequestKey("console_session", sessions.Session)
# Scripts and styles only from our own files: no inline script, no CDN, nothing framed.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
# Menu entries: path, label, the scope that shows it.
MENU = (("/console/protocols", "Protocols", "protocols:read"), ("/console/outbox", "Outbox", "outbox:admin"),
        ("/console/reports", "Reports", "protocols:read"), ("/console/templates", "Templates", "templates:read"),
        ("/console/schedules", "Schedules", "outbox:admin"), ("/console/keys", "Keys", "admin"))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_environment() -> jinja2.Environment:
    """The console's own environment, apart from the message templates' sandbox: these pages are ours."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = i18n.when
    return env


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    lang = i18n.choose(request, request.app[SETTINGS].gateway.default_locale)
    session = request.get(SESSION)
    menu = [(path, label) for path, label, scope in MENU if session and session.allows(scope)]
    html = request.app[ENV].get_template(template).render(
        _=i18n.translator(lang), lang=lang, session=session, menu=menu, path=request.path,
        zone=request.app[SETTINGS].gateway.timezone,
        csrf=session.csrf if session else context.pop("csrf", ""), **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def page(scope: str | None) -> Callable[[Handler], Handler]:
    """A page or action for a signed-in key with `scope`; every POST must carry the session's token."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = await sessions.find(request.app[DB], request.cookies.get(sessions.COOKIE),
                                          now=request.app[CLOCK]())
            if session is None:
                if request.method == "GET":
                    raise web.HTTPSeeOther(f"{PREFIX}/sign-in?next={quote(request.path_qs, safe='')}")
                raise web.HTTPSeeOther(f"{PREFIX}/sign-in")
            request[SESSION] = session
            if request.method == "POST":
                form = await request.post()
                if not sessions.same(str(form.get("csrf", "")), session.csrf):
                    return render(request, "error.html", status=403, message="The form has expired: reload the page.")
            if scope is not None and not session.allows(scope):
                return render(request, "error.html", status=403,
                              message=f"Your key lacks the scope {scope}.")
            return await handler(request)

        return guarded

    return wrap


def actor(request: web.Request) -> str:
    """How an action is recorded: the console and the signed-in key's name."""
    return f"console:{request[SESSION].key_name}"


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(PREFIX):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:  # a redirect: answered as a plain response, its Location kept
            response = redirect(exc.headers["Location"]) if "Location" in exc.headers else web.Response(
                status=exc.status)
        else:
            response = render(request, "error.html", status=exc.status, message=_reason(exc.status))
    except ServiceError as exc:
        response = render(request, "error.html", status=exc.status, message=exc.detail)
    except Exception as exc:
        if database_unavailable(exc):
            response = render(request, "error.html", status=503, message="The database is unavailable; try again.")
        else:
            log.exception("console error", extra={"action": "console_error", "path": request.path})
            response = render(request, "error.html", status=500, message="An unexpected error occurred; it has been logged.")
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.query.get("lang") in i18n.LANGUAGES:
        set_cookie(response, request, i18n.LANG_COOKIE, request.query["lang"], 365 * 24 * 3600)
    return response


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _reason(status: int) -> str:
    return {404: "There is no such page.", 405: "This page does not take that method."}.get(
        status, "The request was refused.")


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int) -> None:
    secure = request.app[SETTINGS].http.public_url.startswith("https://")
    response.set_cookie(name, value, max_age=max_age, path=PREFIX, httponly=True, samesite="Strict", secure=secure)


async def get_sign_in(request: web.Request) -> web.StreamResponse:
    return _sign_in_page(request, 200, failed=False)


def _sign_in_page(request: web.Request, status: int, **context: Any) -> web.Response:
    token = sessions.new_token()
    response = render(request, "sign_in.html", status=status, csrf=token, next=_next(request), **context)
    set_cookie(response, request, sessions.SIGN_IN_COOKIE, token, 3600)
    return response


async def post_sign_in(request: web.Request) -> web.StreamResponse:
    now = request.app[CLOCK]()
    # Before the key is looked at: past the limit, a guess tells the guesser nothing.
    retry_after = sign_in_limits.blocked(request, now)
    if retry_after is not None:
        log.warning("console sign-in limited", extra={"action": "console_sign_in_limited"})
        response = _sign_in_page(request, 429, failed=False, retry_minutes=math.ceil(retry_after / 60))
        response.headers["Retry-After"] = str(retry_after)
        return response
    form = await request.post()
    if not sessions.same(str(form.get("csrf", "")), request.cookies.get(sessions.SIGN_IN_COOKIE)):
        return await get_sign_in(request)
    settings = request.app[SETTINGS]
    made = await sessions.sign_in(request.app[DB], str(form.get("key", "")), now=now,
                                  ttl=settings.console.session_ttl)
    if made is None:
        sign_in_limits.failed(request, now)
        log.warning("console sign-in refused", extra={"action": "console_sign_in_refused"})
        return _sign_in_page(request, 401, failed=True)
    token, session = made
    log.info("console sign-in", extra={"action": "console_sign_in", "key": session.key_name})
    response = redirect(_next(request, str(form.get("next", ""))))
    set_cookie(response, request, sessions.COOKIE, token, int(settings.console.session_ttl))
    response.del_cookie(sessions.SIGN_IN_COOKIE, path=PREFIX)
    return response


def _next(request: web.Request, given: str | None = None) -> str:
    target = given if given is not None else request.query.get("next", "")
    # Only a path of the console itself: never another site (an open redirect).
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/"


@page(None)
async def post_sign_out(request: web.Request) -> web.StreamResponse:
    await sessions.sign_out(request.app[DB], request.cookies.get(sessions.COOKIE), now=request.app[CLOCK]())
    response = redirect(f"{PREFIX}/sign-in")
    response.del_cookie(sessions.COOKIE, path=PREFIX)
    return response


@page(None)
async def home(request: web.Request) -> web.StreamResponse:
    """The first page the key may see; a key with scope console alone sees only the menu's absence."""
    session = request[SESSION]
    for path, _label, scope in MENU:
        if session.allows(scope):
            return redirect(path)
    return render(request, "error.html", status=403, message="The request was refused.")


def add_console(app: web.Application, schedules: list[Any]) -> None:
    """Routes, static files and the middleware; pages come from their own modules."""
    from gateway.web import pages_keys, pages_outbox, pages_protocols, pages_reports, pages_schedules, pages_templates

    app[ENV] = build_environment()
    sign_in_limits.build(app, app[SETTINGS].console.sign_in_failures)
    app[pages_schedules.SCHEDULES] = schedules
    app.middlewares.append(console_middleware)
    router = app.router
    router.add_get(PREFIX, home)
    router.add_get(PREFIX + "/", home)
    router.add_get(PREFIX + "/sign-in", get_sign_in)
    router.add_post(PREFIX + "/sign-in", post_sign_in)
    router.add_post(PREFIX + "/sign-out", post_sign_out)
    router.add_static(PREFIX + "/static", HERE / "static", append_version=False)
    for module in (pages_protocols, pages_outbox, pages_reports, pages_templates, pages_schedules, pages_keys):
        module.add_routes(router)
