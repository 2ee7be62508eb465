"""Nobody reads or acts without the right key, nothing trusts an unsigned webhook, templates
cannot reach Python, outbound webhooks are signed, and secrets stay out of logs and answers.

The /v1 routes are read from the app's own router, so a route added later is covered (or
this file fails, naming it). Keys, webhooks and templates run on SQLite and PostgreSQL; the
secrets check starts the daemon as a user does, with every secret set, and provokes errors.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import json
import shutil
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text
from twilio.request_validator import RequestValidator

from gateway.api import keys
from gateway.api.auth import SCOPE_ATTR
from gateway.api.keys import SCOPES
from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.delivery.channels.webhook import verify
from gateway.rendering.templates import TemplateError, Templates
from gateway.store.models import ApiKey, Event, InboundMessage, Notification, ProviderCallback
from tests.fakes.smtp_sink import SMTPSink
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import admin_key, free_port, make_settings, opened_event
from tests.test_e2e import start_daemon, wait_for

CE = "application/cloudevents+json"
PUBLIC_URL = "https://gw.example.com"
TWILIO_TOKEN = "twilio-auth-token-for-webhooks"


@pytest.fixture
async def gw(tmp_path: Path, db_url: str) -> AsyncIterator[Runtime]:
    settings = make_settings(tmp_path, db_url, http={"public_url": PUBLIC_URL}, sweeps={"enabled": False},
                             sms={"twilio": {"auth_token": TWILIO_TOKEN}})
    runtime = build_runtime(settings)
    await prepare(runtime)
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def client(gw: Runtime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(web_app(gw, run_dispatcher=False))) as c:
        yield c


async def count(runtime: Runtime, model) -> int:
    async with runtime.db.read() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


# Keys and scopes on every /v1 endpoint


def protected_routes(app: web.Application) -> list[tuple[str, str, str | None]]:
    """(method, path template, scope) of every /v1 route but Twilio's webhooks, from the router."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix", "")  # static files: a prefix
        if route.method == "HEAD" or not path.startswith("/v1/") or path.startswith("/v1/webhooks/"):
            continue
        found.append((route.method, path, getattr(route.handler, SCOPE_ATTR, None)))
    return sorted(found)


def concrete(path: str, number: str) -> str:
    return path.format(number=number, name="protocol_opened", id="1")


def body_for(path: str) -> bytes:
    """What a legitimate caller would send: if auth were skipped, the handler would act on it."""
    if path == "/v1/events":
        return json.dumps(opened_event("unauthorised")).encode()
    if path.endswith("/resend"):
        return json.dumps({"channel": "email"}).encode()
    if path.endswith("/requeue"):
        return json.dumps({"status": "dead"}).encode()
    return b""


async def test_every_v1_endpoint_refuses_a_missing_wrong_revoked_or_underscoped_key(gw, client):
    routes = protected_routes(client.server.app)
    assert len(routes) >= 10, routes
    unscoped = [(m, p) for m, p, scope in routes if scope is None]
    assert unscoped == [], "a /v1 handler without a required scope lets any valid key in"

    admin = await admin_key(gw)
    r = await client.post("/v1/events", data=json.dumps(opened_event("seed")),
                          headers={"Authorization": f"Bearer {admin}", "Content-Type": CE})
    number = (await r.json())["protocol"]["number"]
    revoked = await admin_key(gw, ["admin"], name="revoked")
    await keys.revoke(gw.db, "revoked", now=datetime.now(timezone.utc))
    key_id = admin.split("_")[1]
    wrong = {
        "missing": None,
        "empty bearer": "Bearer ",
        "not bearer": f"Basic {base64.b64encode(f'x:{admin}'.encode()).decode()}",
        "garbage": "Bearer not-a-key",
        "right id, wrong secret": f"Bearer pgw_{key_id}_{'A' * 43}",
        "one character off": f"Bearer {admin[:-1]}{'B' if admin[-1] != 'B' else 'C'}",
        "revoked": f"Bearer {revoked}",
        "key in the query instead": None,
    }
    events_before, notifications_before = await count(gw, Event), await count(gw, Notification)
    checked = 0
    for method, path, scope in routes:
        url = concrete(path, number)
        for label, header in wrong.items():
            headers = {"Content-Type": CE if path == "/v1/events" else "application/json"}
            if header is not None:
                headers["Authorization"] = header
            target = f"{url}?key={admin}" if label == "key in the query instead" else url
            r = await client.request(method, target, data=body_for(path), headers=headers)
            body = await r.text()
            assert r.status == 401, (method, path, label, body)
            assert r.content_type == "application/problem+json" and "WWW-Authenticate" in r.headers
            assert admin not in body and revoked not in body
            checked += 1
        others = [s for s in SCOPES if s not in (scope, "admin")]
        narrow = await admin_key(gw, others)  # every scope but the one needed
        r = await client.request(method, url, data=body_for(path),
                                 headers={"Authorization": f"Bearer {narrow}",
                                          "Content-Type": CE if path == "/v1/events" else "application/json"})
        assert r.status == 403, (method, path, await r.text())
        assert (await r.json())["type"] == "/problems/forbidden"
        checked += 1
    # Every refusal left the record as it was.
    assert (await count(gw, Event), await count(gw, Notification)) == (events_before, notifications_before)
    for method, path, scope in routes:  # and the scope alone is enough
        exact = await admin_key(gw, [scope])
        r = await client.request(method, concrete(path, number), data=body_for(path),
                                 headers={"Authorization": f"Bearer {exact}",
                                          "Content-Type": CE if path == "/v1/events" else "application/json"})
        assert r.status not in (401, 403), (method, path, await r.text())
    print(f"\nauth: {len(routes)} /v1 routes, {checked} refusals checked")


async def test_keys_are_stored_as_hashes_and_compared_in_constant_time(gw):
    key = await admin_key(gw, ["events:write"], name="crm")
    prefix, key_id, secret = key.split("_", 2)
    async with gw.db.read() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.name == "crm"))
        # Every column of every key row, as the database holds it: no plaintext secret anywhere.
        dump = json.dumps([list(map(str, r)) for r in (await session.execute(text("SELECT * FROM api_keys"))).all()])
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in dump and key not in dump
    assert row.key_id == key_id  # the id finds the row; it is not the secret
    assert "compare_digest" in inspect.getsource(keys.verify)  # no early exit on the first differing byte
    assert await keys.verify(gw.db, key) is not None
    assert await keys.verify(gw.db, f"{prefix}_{key_id}_{secret[:-1]}x") is None


# Twilio's webhooks


def signed(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


async def test_twilio_webhooks_refuse_a_missing_or_bad_signature_and_nothing_happens(gw, client):
    inbound = {"From": "+5511987654321", "To": "+15005550006", "Body": "PROTOCOLO", "MessageSid": "SM" + "1" * 32}
    status = {"MessageSid": "SM" + "2" * 32, "MessageStatus": "delivered"}
    cases = [("/v1/webhooks/twilio/inbound", inbound), ("/v1/webhooks/twilio/status?notification=1", status)]
    for path, form in cases:
        url = PUBLIC_URL + path
        bad = {
            "missing": None,
            "empty": "",
            "garbage": "bm90IGEgc2lnbmF0dXJl",
            "another token": signed(url, form, "someone-elses-token"),
            "another URL": signed("http://127.0.0.1" + path, form),  # what aiohttp sees behind a proxy
            "other parameters": signed(url, {**form, "Body": "STOP", "MessageStatus": "failed"}),
            "other query": signed(PUBLIC_URL + (path.replace("notification=1", "notification=2")
                                                if "?" in path else path + "?notification=2"), form),
        }
        for label, signature in bad.items():
            headers = {} if signature is None else {"X-Twilio-Signature": signature}
            r = await client.post(path, data=form, headers=headers)
            assert r.status == 403, (path, label, await r.text())
            assert r.content_type == "application/problem+json"
            assert TWILIO_TOKEN not in await r.text()
    assert await count(gw, InboundMessage) == 0 and await count(gw, ProviderCallback) == 0
    assert await count(gw, Notification) == 0
    # The right signature is let in (so the refusals above were for the signature, not the form).
    path, form = cases[0]
    r = await client.post(path, data=form, headers={"X-Twilio-Signature": signed(PUBLIC_URL + path, form)})
    assert r.status == 200, await r.text()
    assert await count(gw, InboundMessage) == 1


async def test_twilio_webhooks_are_refused_when_no_token_is_configured(tmp_path, sqlite_url):
    runtime = build_runtime(make_settings(tmp_path, sqlite_url, http={"public_url": PUBLIC_URL}))
    await prepare(runtime)
    try:
        async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as c:
            form = {"From": "+5511987654321", "Body": "oi", "MessageSid": "SM" + "3" * 32}
            path = "/v1/webhooks/twilio/inbound"
            r = await c.post(path, data=form, headers={"X-Twilio-Signature": signed(PUBLIC_URL + path, form, "")})
            assert r.status == 403
    finally:
        await runtime.aclose()


# Templates run in Jinja2's sandbox

ESCAPES = {
    "class walk": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals via cycler": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "globals via lipsum": "{{ lipsum.__globals__['os'].system('id') }}",
    "globals via a filter": "{{ (protocol.number|attr('__class__')).__mro__ }}",
    "template internals": "{{ self._TemplateReference__context }}",
    "context's class": "{{ protocol.__class__.__init__.__globals__ }}",
    "mutating the context": "{{ protocol.update({'number': '0'}) }}{{ [].append(1) }}",
    "format string": "{{ '{0.__class__.__init__.__globals__}'.format(protocol) }}",
    "a huge range": "{% for i in range(10**9) %}{% endfor %}",
    "a file outside": "{% include '../../../../../../etc/passwd' %}",
    "an absolute file": "{% include '/etc/passwd' %}",
    "no such global": "{{ config.items() }}{{ request }}",
}


@pytest.mark.parametrize("attack", ESCAPES.values(), ids=ESCAPES.keys())
def test_a_template_cannot_reach_python_objects_or_files(tmp_path, attack):
    root = tmp_path / "templates"
    shutil.copytree(Path(__file__).resolve().parent.parent / "gateway" / "templates" / "protocol_opened",
                    root / "evil")
    (root / "evil" / "en" / "sms.j2").write_text(f"Protocolo {{{{ protocol.number }}}} {attack}\n")
    templates = Templates(root, "en")
    context = {"protocol": {"number": "20261122000000017", "subject": "x"}, "consumer": {"name": "M"},
               "company": {"name": "ACME"}}
    with pytest.raises(TemplateError) as refused:
        templates.render("evil", "sms", "en", context)
    assert "root:" not in str(refused.value)  # /etc/passwd was not read into the message


async def test_a_hostile_template_is_a_422_in_preview_not_a_500(tmp_path, sqlite_url):
    root = tmp_path / "templates"
    shutil.copytree(Path(__file__).resolve().parent.parent / "gateway" / "templates", root)
    (root / "protocol_opened" / "en" / "sms.j2").write_text(ESCAPES["class walk"])
    runtime = build_runtime(make_settings(tmp_path, sqlite_url, templates={"dir": str(root)}))
    await prepare(runtime)
    key = await admin_key(runtime, ["templates:read"])
    try:
        async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as c:
            r = await c.post("/v1/templates/protocol_opened/preview", data=json.dumps({"locale": "en", "channel": "sms"}),
                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            assert r.status == 422, await r.text()
            assert "subclasses" not in (await r.text()).replace(ESCAPES["class walk"], "")
    finally:
        await runtime.aclose()


# Outbound webhooks are signed


async def test_outbound_webhooks_are_signed_and_carry_no_contacts(tmp_path, db_url):
    received: list[tuple[dict[str, str], str]] = []

    async def upstream(request: web.Request) -> web.Response:
        received.append((dict(request.headers), (await request.read()).decode()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", upstream)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    secret = "whsec-upstream-shared-secret"
    runtime = build_runtime(make_settings(tmp_path, db_url, sweeps={"enabled": False},
                                          webhooks={"url": f"http://127.0.0.1:{port}/hooks", "secret": secret}))
    await prepare(runtime)
    try:
        from gateway.protocols.schemas import OpenedData
        from gateway.protocols.service import IncomingEvent

        event = opened_event("signed")
        await runtime.service.handle(IncomingEvent(source=event["source"], id=event["id"], type=event["type"],
                                                   time=None, data=OpenedData.model_validate(event["data"])),
                                     received_at=datetime.now(timezone.utc))
        await runtime.dispatcher.run_until_idle()
        await wait_for(lambda: len(received) >= 2)
    finally:
        await runtime.aclose()
        await runner.cleanup()
    assert len(received) == 2  # notification.sent for the email and for the SMS
    for headers, body in received:
        assert headers["Content-Type"].startswith("application/cloudevents+json")
        signature = headers["Webhook-Signature"]
        assert verify(secret, body, signature, now=time.time())
        assert not verify(secret, body.replace("sent", "failed"), signature, now=time.time())  # tampered
        assert not verify("another-secret", body, signature, now=time.time())
        assert not verify(secret, body, signature, now=time.time() + 3600)  # a replay an hour later
        assert headers["Webhook-Id"]
        assert json.loads(body)["type"] == "notification.sent"
        for contact in ("maria@example.com", "5511987654321", "Maria Silva"):
            assert contact not in body
        assert secret not in body and secret not in json.dumps(headers)


# Secrets never in logs or answers


@pytest.mark.postgres
@pytest.mark.parametrize("engine_name", ["postgresql"])  # a database URL with a password in it
async def test_secrets_never_appear_in_logs_or_answers(tmp_path: Path, db_url: str):
    """Every secret set, every provider refusing: the logs and every answer are searched for them."""
    smtp_password = "smtp-password-7f3a9c0e"
    twilio_token = "twilio-token-5e1d2b88"
    webhook_secret = "webhook-secret-9b8c7d11"
    db_password = "db-password-1a2b3c4d"  # the test server trusts loopback: any password connects
    user, _, rest = db_url.partition("://")[2].partition("@")
    url_with_password = f"postgresql+asyncpg://{user}:{db_password}@{rest}"

    async def refusing(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, text=f"upstream broke (it got {request.headers.get('Webhook-Signature')})")

    app = web.Application()
    app.router.add_post("/hooks", refusing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    port = free_port()
    answers: list[str] = []
    async with SMTPSink() as sink, FakeTwilio() as twilio:  # the sink offers no AUTH; Twilio expects another token
        env = {
            "GATEWAY_DATABASE__URL": url_with_password, "GATEWAY_HTTP__PORT": str(port),
            "GATEWAY_EMAIL__TRANSPORT": "smtp", "GATEWAY_EMAIL__FROM": "gw@example.com",
            "GATEWAY_EMAIL__SMTP__HOST": sink.host, "GATEWAY_EMAIL__SMTP__PORT": str(sink.port),
            "GATEWAY_EMAIL__SMTP__STARTTLS": "false", "GATEWAY_EMAIL__SMTP__USERNAME": "gateway",
            "GATEWAY_EMAIL__SMTP__PASSWORD": smtp_password,
            "GATEWAY_SMS__TRANSPORT": "twilio", "GATEWAY_SMS__TWILIO__ACCOUNT_SID": twilio.account_sid,
            "GATEWAY_SMS__TWILIO__AUTH_TOKEN": twilio_token, "GATEWAY_SMS__TWILIO__FROM": "+15005550006",
            "GATEWAY_SMS__TWILIO__API_BASE_URL": twilio.base_url,
            "GATEWAY_WEBHOOKS__URL": f"http://127.0.0.1:{hook_port}/hooks", "GATEWAY_WEBHOOKS__SECRET": webhook_secret,
            "GATEWAY_DISPATCH__POLL_INTERVAL": "100ms", "GATEWAY_DISPATCH__RETRY_BASE": "100ms",
            "GATEWAY_AUTH__BOOTSTRAP_KEY_FILE": "admin.key", "GATEWAY_SWEEPS__ENABLED": "false",
        }
        daemon = await start_daemon(tmp_path, port, env=env)
        try:
            key = (tmp_path / "admin.key").read_text().strip()
            auth = {"Authorization": f"Bearer {key}"}
            async with aiohttp.ClientSession() as http:
                async def call(method: str, path: str, **kwargs) -> None:
                    async with http.request(method, daemon.url + path, **kwargs) as r:
                        answers.append(f"{r.status} {dict(r.headers)} {await r.text()}")

                await call("POST", "/v1/events", data=json.dumps(opened_event("s1")),
                           headers={**auth, "Content-Type": CE})
                number = json.loads(answers[-1].split(" ", 1)[1].split("} ", 1)[1])["protocol"]["number"]
                # Let both providers refuse a few times, so their errors are in the record and the logs.
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                while True:
                    async with http.get(f"{daemon.url}/v1/protocols/{number}", headers=auth) as r:
                        tries = [n["attempts"] for n in (await r.json())["notifications"]]
                    if len(tries) == 2 and min(tries) >= 2:
                        break
                    assert loop.time() < deadline, tries
                    await asyncio.sleep(0.1)
                for method, path, kwargs in [
                    ("GET", f"/v1/protocols/{number}", {"headers": auth}),
                    ("GET", f"/v1/protocols/{number}/export", {"headers": auth}),
                    ("GET", "/v1/outbox?status=all", {"headers": auth}),
                    ("GET", "/metrics", {}), ("GET", "/readyz", {}), ("GET", "/openapi.json", {}),
                    ("POST", "/v1/events", {"data": b"\xff", "headers": {**auth, "Content-Type": CE}}),
                    ("POST", "/v1/events", {"data": "{}", "headers": {"Authorization": f"Bearer {key}x",
                                                                     "Content-Type": CE}}),
                    ("POST", "/v1/events", {"data": json.dumps(opened_event("s2", subject="a\nb")),
                                            "headers": {**auth, "Content-Type": CE}}),
                    ("POST", "/v1/webhooks/twilio/inbound", {"data": {"From": "+5511987654321", "Body": "x"},
                                                             "headers": {"X-Twilio-Signature": "bad"}}),
                    ("GET", "/nowhere", {}),
                ]:
                    await call(method, path, **kwargs)
            assert len(twilio.messages) >= 1 and twilio.messages[0].answer.status == 401
        finally:
            assert await daemon.stop() == 0
    await runner.cleanup()
    logs = daemon.stderr_path.read_text()
    record = "\n".join(answers)
    assert "Twilio refused the SMS: HTTP 401" in record  # the record does show the refusals...
    assert "cannot open an SMTP session" in record
    basic = base64.b64encode(f"{twilio.account_sid}:{twilio_token}".encode()).decode()
    for secret in (smtp_password, twilio_token, webhook_secret, db_password, key, basic):
        assert secret not in logs, secret  # ...and never a secret, in the logs
        assert secret not in record, secret  # nor in any answer
    # Personal data is masked in the logs too.
    for personal in ("maria@example.com", "+5511987654321", "Maria Silva", "Cobrança indevida"):
        assert personal not in logs


def test_a_settings_error_never_shows_a_secret(tmp_path: Path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"GATEWAY_DATABASE__URL": "mysql://gateway:db-password-55aa@db.internal/gw",
                "GATEWAY_EMAIL__SMTP__PASSWORD": "smtp-password-66bb", "GATEWAY_HTTP__PORT": "eighty"})
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "run"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "db-password-55aa" not in result.stderr and "smtp-password-66bb" not in result.stderr
    assert "database.url" in result.stderr or "http.port" in result.stderr
