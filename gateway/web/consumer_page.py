"""`/p/{token}`: the consumer's page (README "The consumer's page").

The protocol a link names, in the consumer's locale: number, status, subject, opened and
deadline with their zone, every event with its text, contacts masked; and buttons that send
the whole history by email or SMS to the contacts on record, each a consumer request with its
legal clock and the resend limits. No session and no form token: the unguessable link is the
only credential, and a form elsewhere cannot know it. A wrong, expired or revoked link gets
the same 404 page. Pages are rendered from `templates/_page/` (operations restyle them as they
do the messages), with nothing loaded from elsewhere and no script.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from gateway.api.runtime_keys import CLOCK, DB, METRICS, SERVICE, SETTINGS, TEMPLATES
from gateway.config.settings import PACKAGE_DIR
from gateway.errors import RateLimited
from gateway.observability import mask
from gateway.protocols.contacts import may_text
from gateway.protocols.links import history_events
from gateway.protocols.page_links import digest, well_formed
from gateway.protocols.profiles import get_profile
from gateway.protocols.schemas import ResendData
from gateway.protocols.service import IncomingEvent, Requester
from gateway.rendering.context import company, history_entries, protocol_fields
from gateway.rendering.numbers import groups
from gateway.rendering.templates import PAGES, Templates
from gateway.store.models import Protocol
from gateway.store.outage import database_unavailable

log = logging.getLogger(__name__)

SOURCE = "urn:protocol-gateway:consumer-page"
REQUESTER = Requester("consumer-page", may_send_elsewhere=False)
# The page asks the browser to keep nothing, send no referrer (the link is the credential) and
# load nothing but its own stylesheet.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}


def for_people(handler: Callable[[web.Request], Awaitable[web.Response]]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Whatever goes wrong, a person gets a page in their language, never problem+json or a trace."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except Exception as exc:
            unavailable = database_unavailable(exc)
            if not unavailable:
                log.exception("consumer page error", extra={"action": "consumer_page_error"})
            settings = request.app[SETTINGS]
            locale = settings.gateway.default_locale
            context = {"timezone": settings.gateway.timezone, "company": company(settings, locale)}
            response = _html(request, "error.html.j2", locale, context, 503 if unavailable else 500)
            if unavailable:
                response.headers["Retry-After"] = "30"
            return response

    return wrapped


@for_people
async def show(request: web.Request) -> web.Response:
    protocol = await _protocol(request)
    if protocol is None:
        return _not_found(request)
    return await _page(request, protocol)


@for_people
async def ask_for_history(request: web.Request) -> web.Response:
    protocol = await _protocol(request)
    if protocol is None:
        return _not_found(request)
    form = await request.post()
    channel = str(form.get("channel", ""))
    if channel not in _channels(request, protocol):
        return await _page(request, protocol, status=422)  # only the contacts on record, shown as buttons
    metrics = request.app[METRICS]
    now = request.app[CLOCK]()
    event = IncomingEvent(source=SOURCE, id=str(uuid.uuid4()), type="protocol.resend_requested", time=None,
                          data=ResendData(number=protocol.number, channel=channel, history=True),  # type: ignore[arg-type]
                          field_prefix="", requester=REQUESTER)
    try:
        await request.app[SERVICE].handle(event, received_at=now)
    except RateLimited as exc:
        metrics.consumer_page_requests.labels(channel, "limited").inc()
        response = await _page(request, protocol, status=429,
                               answer={"queued": False, "limited": True,
                                       "minutes": max(1, -(-exc.retry_after // 60))})
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    metrics.consumer_page_requests.labels(channel, "queued").inc()
    log.info("history asked for on the consumer's page", extra={"action": "consumer_page_request",
                                                                "protocol": protocol.number, "channel": channel})
    to = protocol.consumer_email if channel == "email" else protocol.consumer_phone
    due = get_profile(protocol.profile, request.app[SETTINGS]).history_due(now)
    return await _page(request, protocol, answer={"queued": True, "limited": False, "channel": channel, "to": mask(to),
                                                "due_at": due})


async def stylesheet(request: web.Request) -> web.Response:
    path = _templates(request).folder / PAGES / "page.css"
    try:
        css = path.read_text("utf-8")
    except FileNotFoundError:
        css = ""
    return web.Response(text=css, content_type="text/css", headers={"Cache-Control": "public, max-age=3600",
                                                                     "X-Content-Type-Options": "nosniff"})


async def _protocol(request: web.Request) -> Protocol | None:
    """The protocol the link names while it works: not anonymized, and not past
    consumer_page.link_ttl after its last event."""
    token = request.match_info["token"]
    settings = request.app[SETTINGS]
    if not settings.consumer_page.enabled or not well_formed(token):
        return None
    async with request.app[DB].read() as session:
        protocol = await session.scalar(select(Protocol).where(Protocol.page_token_hash == digest(token)))
    if protocol is None or protocol.status == "anonymized":
        return None
    last = protocol.last_event_at or protocol.received_at
    if request.app[CLOCK]() > last + timedelta(seconds=settings.consumer_page.link_ttl):
        return None
    return protocol


def _channels(request: web.Request, protocol: Protocol) -> list[str]:
    allowed = tuple(request.app[SETTINGS].sms.allowed_countries)
    return [c for c, ok in (("email", bool(protocol.consumer_email)),
                            ("sms", may_text(protocol.consumer_phone, allowed))) if ok]


async def _page(request: web.Request, protocol: Protocol, *, status: int = 200,
                answer: dict[str, Any] | None = None) -> web.Response:
    async with request.app[DB].read() as session:
        events = (await session.scalars(history_events(protocol.id))).all()
    channels = _channels(request, protocol)
    context = {
        "timezone": protocol.consumer_timezone,
        "company": company(request.app[SETTINGS], protocol.consumer_locale),
        "protocol": protocol_fields(protocol),
        "number_groups": groups(protocol.number),
        "history": history_entries(events),
        "contacts": {"email": mask(protocol.consumer_email), "phone": mask(protocol.consumer_phone)},
        "can": {"email": "email" in channels, "sms": "sms" in channels},
        "answer": answer,
    }
    request.app[METRICS].consumer_pages.labels("shown").inc()
    return _html(request, "protocol.html.j2", protocol.consumer_locale, context, status)


def _not_found(request: web.Request) -> web.Response:
    request.app[METRICS].consumer_pages.labels("not_found").inc()
    settings = request.app[SETTINGS]
    locale = settings.gateway.default_locale
    context = {"timezone": settings.gateway.timezone, "company": company(settings, locale)}
    return _html(request, "not_found.html.j2", locale, context, 404)


def _templates(request: web.Request) -> Templates:
    """The configured templates where they have the pages; else the packaged ones (a templates
    folder copied from a version before the consumer's page has none)."""
    templates = request.app[TEMPLATES]
    if (templates.folder / PAGES).is_dir():
        return templates
    folder = PACKAGE_DIR / "templates"
    packaged = _PACKAGED.get(folder)
    if packaged is None:
        packaged = _PACKAGED[folder] = Templates(folder, templates.default_locale)
    return packaged


_PACKAGED: dict[Path, Templates] = {}


def _html(request: web.Request, file: str, locale: str, context: dict[str, Any], status: int) -> web.Response:
    body = _templates(request).render_page(file, locale, context)
    return web.Response(text=body, status=status, content_type="text/html", headers=HEADERS)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/p/page.css", stylesheet)
    router.add_get("/p/{token}", show)
    router.add_post("/p/{token}", ask_for_history)
