"""`/u/{token}`: unsubscribing from the emails the consumer did not ask for.

POST is RFC 8058's one-click, made by mail providers (Gmail, Yahoo...) when the reader presses
their "unsubscribe": 200 with a tiny body. GET is for the person who follows the link: a
small page in the email's locale with one button that POSTs the same form (no JavaScript);
a GET never unsubscribes, since link scanners and previews follow links.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

from gateway.api.runtime_keys import CLOCK, DB, SETTINGS, UNSUBSCRIBE
from gateway.config.languages import reads_spanish
from gateway.protocols.email_opt_outs import notification_for, unsubscribe

PAGES = {
    "pt-BR": {"title": "Cancelar lembretes por email",
              "ask": "Deixar de receber lembretes e avisos por email? Os avisos que a lei exige e o que você pedir continuam chegando.",
              "button": "Cancelar lembretes", "done": "Pronto: você não receberá mais lembretes por email.",
              "unknown": "Este link não é válido."},
    "es": {"title": "Cancelar recordatorios por email",
           "ask": "¿Dejar de recibir recordatorios y avisos por email? Los avisos que exige la ley y lo que usted pida seguirán llegando.",
           "button": "Cancelar recordatorios", "done": "Listo: ya no recibirá recordatorios por email.",
           "unknown": "Este enlace no es válido."},
    "en": {"title": "Stop email reminders",
           "ask": "Stop receiving reminders and notices by email? The notices the law requires and anything you ask for will still arrive.",
           "button": "Stop reminders", "done": "Done: you will get no more reminders by email.",
           "unknown": "This link is not valid."},
}


def _words(locale: str | None) -> dict[str, str]:
    lang = locale if locale in PAGES else (locale or "").split("-")[0]
    lang = "es" if reads_spanish(lang) else lang  # rather than the Portuguese default
    lang = lang if lang in PAGES else "pt-BR"
    return {**PAGES[lang], "lang": lang}


def _page(words: dict[str, str], body: str, status: int = 200) -> web.Response:
    html = (f'<!doctype html><html lang="{escape(words.get("lang", ""))}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(words["title"])}</title></head><body><main><h1>{escape(words["title"])}</h1>'
            f"{body}</main></body></html>")
    return web.Response(text=html, status=status, content_type="text/html", headers={"Cache-Control": "no-store"})


def _unknown(request: web.Request) -> web.Response:
    words = _words(request.app[SETTINGS].gateway.default_locale)
    return _page(words, f"<p>{escape(words['unknown'])}</p>", status=404)


def _notification_id(request: web.Request) -> int | None:
    links = request.app[UNSUBSCRIBE]
    return links.notification_of(request.match_info["token"]) if links is not None else None


async def show(request: web.Request) -> web.Response:
    notification_id = _notification_id(request)
    notification = None
    if notification_id is not None:
        async with request.app[DB].read() as session:
            notification = await notification_for(session, notification_id)
    if notification is None:
        return _unknown(request)
    words = _words(notification.locale)
    form = (f'<p>{escape(words["ask"])}</p><form method="post">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            f'<button type="submit">{escape(words["button"])}</button></form>')
    return _page(words, form)


async def one_click(request: web.Request) -> web.Response:
    notification_id = _notification_id(request)
    person = "text/html" in request.headers.get("Accept", "")  # the page's button, not a mail provider
    done = None
    if notification_id is not None:
        async with request.app[DB].write() as session:
            done = await unsubscribe(session, notification_id, via="page" if person else "one-click",
                                     now=request.app[CLOCK]())
    if done is None:
        if person:
            return _unknown(request)
        return web.Response(text="unknown link\n", status=404)
    if person:
        return _page(_words(done.locale), f"<p>{escape(_words(done.locale)['done'])}</p>")
    return web.Response(text="unsubscribed\n")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/u/{token}", show)
    router.add_post("/u/{token}", one_click)
