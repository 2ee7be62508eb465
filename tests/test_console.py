"""The operations console (issue 18), read as HTML: sessions, CSRF, scopes, every page and action."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update
from yarl import URL

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.protocols.schemas import OpenedData, ResendData
from gateway.protocols.service import IncomingEvent
from gateway.store.models import ConsumerRequest, Event, Notification
from gateway.store.sweep_models import RetentionAudit
from gateway.web import i18n
from tests.console_helpers import csrf_of, sign_in
from tests.helpers import FixedClock, admin_key, make_settings, opened_event

T0 = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "gateway/web/templates"


async def open_protocol(runtime: Runtime, event_id: str = "c1", **consumer: str) -> str:
    event = opened_event(event_id, consumer={"name": "Maria Silva", "email": "maria@example.com",
                                             "phone": "+5511987654321", **consumer}, category="billing")
    outcome = await runtime.service.handle(IncomingEvent(
        source="urn:test:crm", id=event_id, type="protocol.opened", time=T0,
        data=OpenedData.model_validate(event["data"])), received_at=T0)
    return outcome.body["protocol"]["number"]


def client_for(runtime: Runtime) -> TestClient:
    # The cookie jar must accept cookies from 127.0.0.1, as a browser does; pages in English
    # (gateway.default_locale is pt-BR) unless a test asks otherwise.
    return TestClient(TestServer(web_app(runtime, run_dispatcher=False)),
                      cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": "en"})


@pytest.fixture
async def console(tmp_path, sqlite_url) -> AsyncIterator[tuple[Runtime, TestClient, FixedClock]]:
    clock = FixedClock(T0 + timedelta(hours=1))
    runtime = build_runtime(make_settings(tmp_path, sqlite_url, sweeps={"enabled": False}), clock=clock)
    await prepare(runtime)
    async with client_for(runtime) as client:
        yield runtime, client, clock
    await runtime.aclose()


async def test_sign_in_gives_a_strict_cookie_that_ends_at_sign_out_and_expiry(tmp_path, db_url) -> None:
    clock = FixedClock(T0)
    runtime = build_runtime(make_settings(tmp_path, db_url, sweeps={"enabled": False},
                                          console={"session_ttl": "1h"}), clock=clock)
    await prepare(runtime)
    key = await admin_key(runtime, ["console", "protocols:read"], name="ana")
    async with client_for(runtime) as client:
        r = await client.get("/console/protocols?phone=%2B5511987654321", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/console/sign-in?")
        assert URL(r.headers["Location"]).query["next"] == "/console/protocols?phone=%2B5511987654321"
        page = await (await client.get("/console/sign-in")).text()
        r = await client.post("/console/sign-in", data={"csrf": csrf_of(page), "key": key, "next": "/console/reports"},
                              allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/console/reports"
        cookie = next(c for c in r.headers.getall("Set-Cookie") if c.startswith("pgw_console="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # http.public_url is http: a Secure cookie would never come back
        r = await client.get("/console/protocols")
        assert r.status == 200 and "ana" in await r.text()
        token = client.session.cookie_jar.filter_cookies(client.make_url("/console/"))["pgw_console"].value
        # Expiry is the runtime's clock: an hour later the same cookie signs nobody in.
        clock.advance(timedelta(minutes=59))
        assert (await client.get("/console/protocols", allow_redirects=False)).status == 200
        clock.advance(timedelta(minutes=2))
        assert (await client.get("/console/protocols", allow_redirects=False)).status == 303
        # A new session, then sign out: the cookie it had is dead even if replayed.
        csrf = await sign_in(client, key)
        old = client.session.cookie_jar.filter_cookies(client.make_url("/console/"))["pgw_console"].value
        assert old != token
        r = await client.post("/console/sign-out", data={"csrf": csrf}, allow_redirects=False)
        assert r.status == 303
        client.session.cookie_jar.update_cookies({"pgw_console": old}, client.make_url("/console/"))
        assert (await client.get("/console/protocols", allow_redirects=False)).status == 303
    await runtime.aclose()


async def test_only_a_console_or_admin_key_signs_in_and_https_makes_the_cookie_secure(tmp_path, sqlite_url) -> None:
    runtime = build_runtime(make_settings(tmp_path, sqlite_url, sweeps={"enabled": False},
                                          http={"public_url": "https://gw.example.com"}))
    await prepare(runtime)
    reader = await admin_key(runtime, ["protocols:read"])
    admin = await admin_key(runtime, ["admin"])
    async with client_for(runtime) as client:
        async def attempt(key: str, *, forged: bool = False) -> aiohttp.ClientResponse:
            # The sign-in cookie is Secure (https): this plain-http client hands it back itself.
            r = await client.get("/console/sign-in")
            token = next(c for c in r.headers.getall("Set-Cookie") if c.startswith("pgw_console_signin="))
            assert "Secure" in token
            csrf = "forged" if forged else csrf_of(await r.text())
            return await client.post("/console/sign-in", data={"csrf": csrf, "key": key}, allow_redirects=False,
                                     headers={"Cookie": token.split(";")[0]})

        for wrong in (reader, "pgw_nope_nope", ""):
            r = await attempt(wrong)
            assert r.status == 401 and "cannot sign in" in await r.text()
            assert not any(c.startswith("pgw_console=") for c in r.headers.getall("Set-Cookie", []))
        # Without the sign-in form's own token (a cross-site form), nothing happens.
        r = await attempt(admin, forged=True)
        assert r.status == 200 and not any(c.startswith("pgw_console=") for c in r.headers.getall("Set-Cookie", []))
        r = await attempt(admin)
        assert r.status == 303
        cookie = next(c for c in r.headers.getall("Set-Cookie") if c.startswith("pgw_console="))
        assert "Secure" in cookie and "HttpOnly" in cookie
    await runtime.aclose()


async def test_every_page_has_a_strict_policy_and_errors_are_pages(console) -> None:
    runtime, client, _ = console
    await sign_in(client, await admin_key(runtime))
    for path in ("/console/protocols", "/console/outbox", "/console/reports", "/console/templates", "/console/keys",
                 "/console/schedules",
                 "/console/sign-in", "/console/nowhere", "/console/protocols/123456789"):
        r = await client.get(path)
        assert r.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self'"), path
        assert r.headers["X-Frame-Options"] == "DENY" and r.content_type == "text/html", path
        html = await r.text()
        # No inline script anywhere: every <script> has a src of our own.
        assert all('src="/console/static/' in tag for tag in re.findall(r"<script[^>]*>", html)), path
        assert " on" not in " ".join(re.findall(r"<[^>]+>", html)).replace(" one", ""), path
    assert (await client.get("/console/nowhere")).status == 404
    assert (await client.get("/console/protocols/123456789")).status == 404
    r = await client.get("/console/static/htmx.min.js")
    assert r.status == 200 and "htmx" in (await r.text())[:200]


async def test_a_form_without_the_session_token_changes_nothing(console) -> None:
    runtime, client, _ = console
    number = await open_protocol(runtime)
    await sign_in(client, await admin_key(runtime))
    r = await client.post(f"/console/protocols/{number}/legal-hold", data={"action": "place", "csrf": "forged"})
    assert r.status == 403
    async with runtime.db.read() as session:
        assert (await session.scalars(select(RetentionAudit))).all() == []


async def test_pages_and_actions_follow_the_keys_scopes(console) -> None:
    runtime, client, _ = console
    number = await open_protocol(runtime)
    await sign_in(client, await admin_key(runtime, ["console", "protocols:read"]))
    html = await (await client.get("/console/protocols")).text()
    assert 'href="/console/protocols"' in html and 'href="/console/outbox"' not in html
    assert (await client.get("/console/outbox")).status == 403
    assert (await client.get("/console/keys")).status == 403
    page = await (await client.get(f"/console/protocols/{number}")).text()
    assert "/resend" not in page  # no button it could not use
    r = await client.post(f"/console/protocols/{number}/resend", data={"csrf": csrf_of(page), "channel": "email"})
    assert r.status == 403


async def test_search_by_phone_then_the_timeline_as_sent_then_resend_and_hold(console) -> None:
    runtime, client, _ = console
    number = await open_protocol(runtime)
    await open_protocol(runtime, "c2", email="joao@example.com", phone="+5511912345678")
    await sign_in(client, await admin_key(runtime, ["console", "protocols:read", "protocols:write"], name="ana"))
    html = await (await client.get("/console/protocols", params={"phone": "(11) 98765-4321"})).text()
    assert re.findall(r'href="/console/protocols/(\d+)"', html) == [number]
    r = await client.get("/console/protocols", params={"phone": "abc", "email": ""})
    assert r.status == 422 and "phone:" in await r.text()
    page = await (await client.get(f"/console/protocols/{number}")).text()
    async with runtime.db.read() as session:
        sent = (await session.scalars(select(Notification).where(Notification.channel == "sms"))).first()
    assert sent.body_text.split("\n")[0].replace("&", "&amp;")[:40] in page
    r = await client.post(f"/console/protocols/{number}/resend",
                          data={"csrf": csrf_of(page), "channel": "email", "history": "on"})
    assert r.status == 200 and "/console/protocols/" in str(r.url)
    async with runtime.db.read() as session:
        resend = (await session.scalars(select(Event).where(Event.type == "protocol.resend_requested"))).one()
    assert resend.key_name == "ana" and resend.data["history"] is True
    r = await client.post(f"/console/protocols/{number}/legal-hold",
                          data={"csrf": csrf_of(page), "action": "place", "reason": "Procon 123"})
    assert r.status == 200 and "Lift the legal hold" in await r.text()
    async with runtime.db.read() as session:
        audit = (await session.scalars(select(RetentionAudit))).one()
    assert audit.actor == "console:ana"
    r = await client.get(f"/console/protocols/{number}/export")
    assert r.headers["Content-Disposition"] == f'attachment; filename="protocol-{number}.json"'
    assert (await r.json())["record"]["protocol"]["number"] == number


async def test_a_postal_request_is_marked_sent_by_post_by_the_signed_in_key(console) -> None:
    runtime, client, clock = console
    number = await open_protocol(runtime)
    await sign_in(client, await admin_key(runtime, ["console", "protocols:read", "protocols:write"], name="ana"))
    page = await (await client.get(f"/console/protocols/{number}")).text()
    assert "Mark as sent by post" not in page  # nothing to mark yet
    r = await client.post(f"/console/protocols/{number}/resend",
                          data={"csrf": csrf_of(page), "channel": "mail", "history": "on"})
    page = await r.text()
    (form,) = re.findall(r'action="(/console/protocols/\d+/requests/(\d+)/fulfilled)"', page)
    action, request_id = form
    r = await client.post(action, data={"csrf": csrf_of(page), "note": "AR BR123456789"})
    page = await r.text()
    assert r.status == 200 and "Mark as sent by post" not in page and "by ana · AR BR123456789" in page
    async with runtime.db.read() as session:
        done = await session.get(ConsumerRequest, int(request_id))
    assert (done.fulfilled_by, done.note) == ("ana", "AR BR123456789")
    assert done.fulfilled_at.replace(tzinfo=timezone.utc) == clock()  # the runtime's clock, not the wall's
    # Marking again changes nothing; an email request is the gateway's to fulfil: 409, as a page.
    assert (await client.post(action, data={"csrf": csrf_of(page), "note": "again"})).status == 200
    async with runtime.db.read() as session:
        assert (await session.get(ConsumerRequest, int(request_id))).note == "AR BR123456789"
    await client.post(f"/console/protocols/{number}/resend", data={"csrf": csrf_of(page), "channel": "email"})
    async with runtime.db.read() as session:
        email = (await session.scalars(select(ConsumerRequest).where(ConsumerRequest.channel == "email"))).one()
    r = await client.post(f"/console/protocols/{number}/requests/{email.id}/fulfilled", data={"csrf": csrf_of(page)})
    assert r.status == 409 and r.content_type == "text/html" and "when its message leaves" in await r.text()
    r = await client.post(f"/console/protocols/{number}/requests/99999/fulfilled", data={"csrf": csrf_of(page)})
    assert r.status == 404 and r.content_type == "text/html"


async def test_marking_a_postal_request_needs_protocols_write(console) -> None:
    runtime, client, _ = console
    number = await open_protocol(runtime)
    await runtime.service.handle(IncomingEvent(
        source="urn:test:crm", id="m1", type="protocol.resend_requested", time=T0,
        data=ResendData.model_validate({"number": number, "channel": "mail", "history": True})), received_at=T0)
    await sign_in(client, await admin_key(runtime, ["console", "protocols:read"]))
    page = await (await client.get(f"/console/protocols/{number}")).text()
    assert "mail" in page and "Mark as sent by post" not in page
    async with runtime.db.read() as session:
        (mail,) = (await session.scalars(select(ConsumerRequest))).all()
    r = await client.post(f"/console/protocols/{number}/requests/{mail.id}/fulfilled", data={"csrf": csrf_of(page)})
    assert r.status == 403
    async with runtime.db.read() as session:
        assert (await session.get(ConsumerRequest, mail.id)).fulfilled_at is None


async def test_outbox_explains_and_retries_a_dead_message(console) -> None:
    runtime, client, _ = console
    await open_protocol(runtime)
    async with runtime.db.write() as session:
        sms = (await session.scalars(select(Notification).where(Notification.channel == "sms"))).one()
        await session.execute(update(Notification).where(Notification.id == sms.id).values(
            status="dead", error_code="30003", last_error="Unreachable destination handset", attempts=9))
    await sign_in(client, await admin_key(runtime, ["console", "outbox:admin"], name="ops"))
    page = await (await client.get("/console/outbox")).text()
    assert f'id="item-{sms.id}"' in page and "The phone was unreachable" in page
    r = await client.post(f"/console/outbox/{sms.id}/retry", data={"csrf": csrf_of(page)})
    assert r.status == 200 and "Nothing needs attention." in await r.text()
    async with runtime.db.read() as session:
        again = await session.get(Notification, sms.id)
    assert again.status == "queued"


async def test_reports_show_a_chart_and_download_csv(console) -> None:
    runtime, client, _ = console
    await open_protocol(runtime)
    await sign_in(client, await admin_key(runtime, ["console", "protocols:read"]))
    html = await (await client.get("/console/reports", params={"from": "2026-11-01", "to": "2026-11-30"})).text()
    assert "<svg" in html and "<title id=\"chart-title\">" in html and ">billing</th>" in html
    r = await client.get("/console/reports.csv", params={"from": "2026-11-01", "to": "2026-11-30"})
    assert r.content_type == "text/csv" and (await r.text()).splitlines()[1].startswith("billing,1,")
    r = await client.get("/console/reports", params={"from": "2026-11-31"})
    assert r.status == 422 and "from:" in await r.text()


async def test_a_template_renders_with_typed_data_and_shows_its_sms_cost(console) -> None:
    runtime, client, _ = console
    await sign_in(client, await admin_key(runtime, ["console", "templates:read"]))
    assert 'href="/console/templates/protocol_opened"' in await (await client.get("/console/templates")).text()
    page = await (await client.get("/console/templates/protocol_opened")).text()
    assert 'class="segments"' in page
    # WhatsApp: its length against Meta's limit, and the body to submit for approval.
    assert 'class="whatsapp-characters"' in page and "/ 1,024" in page and "Protocolo: *{{1}}*" in page
    r = await client.post("/console/templates/protocol_opened",
                          data={"csrf": csrf_of(page), "locale": "pt-BR",
                                "data": '{"protocol": {"subject": "Assunto digitado agora"}}'})
    typed = await r.text()
    assert r.status == 200 and "Assunto digitado agora" in typed
    assert typed.count("Assunto digitado agora") >= 3  # the email, the SMS and the WhatsApp text
    r = await client.post("/console/templates/protocol_opened", data={"csrf": csrf_of(page), "data": "{nope"})
    assert r.status == 422 and "data:" in await r.text()


async def test_keys_are_created_once_shown_and_revoked(console) -> None:
    runtime, client, _ = console
    await sign_in(client, await admin_key(runtime))
    page = await (await client.get("/console/keys")).text()
    r = await client.post("/console/keys", data={"csrf": csrf_of(page), "name": "crm", "scope-events:write": "on"})
    created = re.search(r'<code id="new-key">([^<]+)</code>', await r.text()).group(1)
    assert created.startswith("pgw_") and created not in await (await client.get("/console/keys")).text()
    r = await client.post("/console/keys/revoke", data={"csrf": csrf_of(page), "name": "crm"})
    assert r.status == 200 and re.search(
        r"crm</td><td>events:write</td><td>[^<]+</td>\s*<td>never</td>\s*<td>revoked", await r.text())


async def test_a_revoked_key_ends_its_sessions(console) -> None:
    runtime, client, _ = console
    from gateway.api import keys

    await sign_in(client, await admin_key(runtime, ["console", "protocols:read"], name="temp"))
    await keys.revoke(runtime.db, "temp", now=T0)
    assert (await client.get("/console/protocols", allow_redirects=False)).status == 303


async def test_pages_speak_portuguese_or_english(console) -> None:
    runtime, client, _ = console
    await sign_in(client, await admin_key(runtime))
    html = await (await client.get("/console/protocols", headers={"Accept-Language": "pt-BR,pt;q=0.9"})).text()
    assert '<html lang="pt-BR">' in html and "Buscar protocolos" in html
    html = await (await client.get("/console/protocols?lang=en")).text()
    assert '<html lang="en">' in html and "Find protocols" in html
    # The choice is kept in a cookie, whatever the browser says next.
    html = await (await client.get("/console/outbox", headers={"Accept-Language": "pt-BR"})).text()
    assert '<html lang="en">' in html


def test_every_text_the_templates_translate_has_its_portuguese() -> None:
    texts = {m for f in TEMPLATES_DIR.glob("*.html") for m in re.findall(r'_\("([^"]+)"\)', f.read_text("utf-8"))}
    texts |= {m for f in TEMPLATES_DIR.glob("*.html") for m in re.findall(r"_\('([^']+)'\)", f.read_text("utf-8"))}
    assert texts and sorted(texts - set(i18n.PT_BR)) == []


def test_every_reason_the_outbox_gives_has_its_portuguese() -> None:
    from gateway.web import reasons

    assert sorted({*reasons.CODES.values(), *reasons.STATUSES.values()} - set(i18n.PT_BR)) == []


async def test_schedules_show_their_next_runs_and_what_the_last_did(console) -> None:
    from gateway.store.sweep_models import SweepRun

    runtime, client, clock = console
    name = next(iter(runtime.sweeps.schedules))
    async with runtime.db.write() as session:
        session.add(SweepRun(schedule=name, kind=runtime.sweeps.schedules[name].kind, at=T0, finished_at=T0,
                             outcome="done", result={"reminders": 7}))
    await sign_in(client, await admin_key(runtime, ["console", "outbox:admin"]))
    html = await (await client.get("/console/schedules")).text()
    assert f">{name}" in html and "reminders: 7" in html and "2026-11-22 11:43 -03" in html
    assert html.count("Next runs") == len(runtime.sweeps.schedules)
