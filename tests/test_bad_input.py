"""Bad input gets a clear answer, never a 500, and never reaches an email header or a template.

Oversized bodies (413), wrong content types (415), bytes that are not UTF-8 or not JSON (400),
line breaks in fields that could reach an email header (422, or harmless), HTML and Jinja
syntax in what consumers and upstreams write (rendered as text, escaped in HTML, never run).
Through real HTTP to the app, on SQLite and PostgreSQL; emails read back from a real SMTP server.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.delivery.channels.base import Message
from gateway.delivery.channels.email_message import build_email
from gateway.delivery.errors import PermanentDeliveryError
from gateway.protocols.page_links import TOKEN
from gateway.store.installation import installation_key
from gateway.store.models import Notification
from tests.fakes.smtp_sink import SMTPSink
from tests.helpers import admin_key, make_settings, opened_event

CE = "application/cloudevents+json"
JSON = "application/json"
MAX_BODY = 16384  # http.max_body for these tests: small, so an oversized body is cheap to send
PACKAGED_TEMPLATES = Path(__file__).resolve().parent.parent / "gateway" / "templates"
BASE_HEADERS = {"from", "to", "subject", "message-id", "date", "reply-to", "mime-version", "content-type",
                "content-transfer-encoding"}


@pytest.fixture
async def gw(tmp_path: Path, db_url: str, sink: SMTPSink) -> AsyncIterator[Runtime]:
    """Email to the real SMTP sink; the templates a copy whose email subject carries the consumer's
    own text, as an operator might write it: the worst case for header injection."""
    templates = tmp_path / "templates"
    shutil.copytree(PACKAGED_TEMPLATES, templates)
    for subject in templates.glob("protocol_opened/*/email.subject.j2"):
        subject.write_text("{{ protocol.subject }} | {{ consumer.name or '' }} | {{ protocol.number }}\n")
    settings = make_settings(
        tmp_path, db_url,
        email={"transport": "smtp", "smtp": {"host": sink.host, "port": sink.port, "starttls": False}},
        http={"max_body": str(MAX_BODY)}, templates={"dir": str(templates)}, sweeps={"enabled": False},
    )
    runtime = build_runtime(settings)
    await prepare(runtime)
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def client(gw: Runtime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(web_app(gw, run_dispatcher=False))) as c:
        yield c


@pytest.fixture
async def key(gw: Runtime) -> str:
    return await admin_key(gw)


@pytest.fixture
async def number(client: TestClient, key: str) -> str:
    r = await client.post("/v1/events", data=json.dumps(opened_event("existing")), headers=auth(key))
    assert r.status == 202
    return (await r.json())["protocol"]["number"]


def auth(key: str, content_type: str | None = CE) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if content_type:
        headers["Content-Type"] = content_type
    return headers


async def problem(response, status: int, kind: str) -> dict:
    body = await response.text()
    assert response.status == status, body
    assert response.content_type == "application/problem+json"
    document = json.loads(body)
    assert document["type"] == f"/problems/{kind}" and document["status"] == status and document["detail"]
    return document


# Endpoints that read a JSON body: (method, path template, content type that works).
BODY_ENDPOINTS = [
    ("POST", "/v1/events", CE),
    ("POST", "/v1/protocols/{number}/resend", JSON),
    ("POST", "/v1/protocols/{number}/legal-hold", JSON),
    ("DELETE", "/v1/protocols/{number}/legal-hold", JSON),
    ("POST", "/v1/templates/protocol_opened/preview", JSON),
    ("POST", "/v1/outbox/requeue", JSON),
    ("POST", "/v1/outbox/1/retry", JSON),
]


@pytest.mark.parametrize("engine_name", ["sqlite"])  # aiohttp refuses before any database is asked
async def test_a_body_over_max_body_is_413(client, key, number):
    big = json.dumps({"reason": "x" * MAX_BODY})

    async def chunks():  # no Content-Length: the limit holds for a streamed body too
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    for method, path, content_type in BODY_ENDPOINTS:
        url = path.format(number=number)
        await problem(await client.request(method, url, data=big, headers=auth(key, content_type)), 413, "too-large")
        await problem(await client.request(method, url, data=chunks(), headers=auth(key, content_type)), 413,
                      "too-large")
        # 401 comes before 413: a stranger learns nothing about the limits.
        await problem(await client.request(method, url, data=big, headers={"Content-Type": content_type}), 401,
                      "unauthorized")


WRONG_TYPES = ["text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
               "application/octet-stream"]
NOT_UTF8_JSON = {
    "latin1": b'{"channel": "email", "x": "\xff\xfe"}',  # not UTF-8
    "cut": b'{"channel": "em\xc3',                         # cut inside a character
    "surrogate": b'{"channel": "\xed\xa0\x80"}',           # an encoded surrogate: not UTF-8 either
    "truncated": b'{"channel": "email"',                    # not JSON
    "nan": b'{"channel": NaN}', "infinity": b'{"channel": -Infinity}', "huge-float": b'{"channel": 1e400}',
    "huge-int": b'{"channel": ' + b"9" * 5000 + b"}",       # past Python's integer parsing limit
    "deep": b"[" * 1500 + b"]" * 1500,                      # nested past the parser's depth
    "nul": b'{"channel": "email\\u0000"}',                 # NUL: no text column can hold it
}


async def test_a_wrong_content_type_is_415_and_bytes_that_are_not_utf8_json_are_400(client, key, number):
    for method, path, content_type in BODY_ENDPOINTS:
        url = path.format(number=number)
        body = json.dumps(opened_event("ct") if path == "/v1/events" else {"channel": "email"})
        for wrong in WRONG_TYPES:
            await problem(await client.request(method, url, data=body, headers=auth(key, wrong)), 415,
                          "unsupported-media-type")
        for name, raw in NOT_UTF8_JSON.items():
            if name == "nul" and path.endswith("/preview"):
                continue  # a preview stores nothing: a NUL is only text there (tests/test_spec_agreement.py)
            document = await problem(await client.request(method, url, data=raw, headers=auth(key, content_type)),
                                     400, "malformed")
            assert "Traceback" not in document["detail"], (path, name)


async def test_an_event_needs_json_not_a_form_or_nothing(client, key):
    await problem(await client.post("/v1/events", data=b"", headers=auth(key)), 400, "malformed")
    await problem(await client.post("/v1/events", data=b"[]", headers=auth(key)), 400, "malformed")
    await problem(await client.post("/v1/events", data=b"{}", headers=auth(key, JSON)), 400, "malformed")
    await problem(await client.post("/v1/events", data=b"{}", headers=auth(key, None)), 415,
                  "unsupported-media-type")


async def test_an_overlong_idempotency_key_is_refused_not_a_500(client, key, number):
    r = await client.post(f"/v1/protocols/{number}/resend", data=json.dumps({"channel": "email"}),
                          headers={**auth(key, JSON), "Idempotency-Key": "k" * 501})
    document = await problem(r, 422, "invalid-fields")
    assert document["errors"][0]["field"] == "Idempotency-Key"


async def test_an_outbox_filter_that_is_no_number_is_422_not_a_500(client, key):
    for bad in ("%00abc", "abc", "1" * 31):
        await problem(await client.get(f"/v1/outbox?protocol={bad}", headers=auth(key, None)), 422, "invalid-fields")
    r = await client.get("/v1/outbox?before=99999999999999999999999999", headers=auth(key, None))
    await problem(r, 422, "invalid-fields")
    await problem(await client.post("/v1/outbox/99999999999999999999999999/retry", headers=auth(key, None)), 404,
                  "not-found")


# Line breaks and fields that reach email headers

CRLF = ["\r\nBcc: evil@example.net", "\nBcc: evil@example.net", "\rBcc: evil@example.net"]


HEADER_BOUND = [
    ({"subject": "Cobrança{}"}, "data.subject"),
    ({"consumer": {"name": "Maria{}", "email": "maria@example.com"}}, "data.consumer.name"),
    ({"consumer": {"email": "maria@example.com{}"}}, "data.consumer.email"),
]


async def test_line_breaks_in_header_bound_fields_are_422_naming_the_field(client, key, number):
    for injection in CRLF:
        for where, field in HEADER_BOUND:
            data = json.loads(json.dumps(where).replace("{}", json.dumps(injection)[1:-1]))
            r = await client.post("/v1/events", data=json.dumps(opened_event("crlf", notify=["email"], **data)),
                                  headers=auth(key))
            document = await problem(r, 422, "invalid-fields")
            assert field in [e["field"] for e in document["errors"]]
        # A resend to an address given now: by REST and by event.
        to = "maria@example.com" + injection
        r = await client.post(f"/v1/protocols/{number}/resend", data=json.dumps({"channel": "email", "to": to}),
                              headers=auth(key, JSON))
        assert [e["field"] for e in (await problem(r, 422, "invalid-fields"))["errors"]] == ["to"]
        event = {"specversion": "1.0", "id": "resend-crlf", "source": "urn:test:crm",
                 "type": "protocol.resend_requested", "data": {"number": number, "channel": "email", "to": to}}
        r = await client.post("/v1/events", data=json.dumps(event), headers=auth(key))
        assert [e["field"] for e in (await problem(r, 422, "invalid-fields"))["errors"]] == ["data.to"]


def received_headers(message: EmailMessage) -> set[str]:
    return {name.lower() for name in message.keys()}


# Characters some software treats as line breaks, and encoded-word tricks: accepted as text, but
# they never end a header (the subject template here puts them in the Subject line).
ODD_BREAKS = ["\u2028Bcc: evil@example.net", "\u2029Bcc: evil@example.net", "\x85Bcc: evil@example.net",
              "\x0bBcc: evil@example.net", "\x0cBcc: evil@example.net",
              "=?utf-8?q?x=0D=0ABcc:_evil@example.net?=", "\tBcc: evil@example.net"]


async def test_odd_line_breaks_in_consumer_text_never_add_an_email_header(client, key, gw, sink):
    for i, odd in enumerate(ODD_BREAKS):
        for field, data in (("data.subject", {"subject": f"Assunto{odd}"}),
                            ("data.consumer.name", {"consumer": {"name": f"Maria{odd}",
                                                                 "email": f"maria{i}@example.com"}})):
            r = await client.post("/v1/events", data=json.dumps(opened_event(
                f"odd-{i}-{field}", notify=["email"], **data)), headers=auth(key))
            if len(odd.splitlines()) > 1:  # a line break of some kind: refused, naming the field
                assert [e["field"] for e in (await problem(r, 422, "invalid-fields"))["errors"]] == [field]
            else:
                assert r.status == 202, await r.text()
    await gw.dispatcher.run_until_idle()
    assert sink.messages, "nothing was accepted: the test proves nothing"
    for received in sink.received:
        assert received.rcpt_tos == [received.message["To"]]  # the one consumer, no Bcc smuggled in
        assert received_headers(received.message) <= BASE_HEADERS
        assert "evil@example.net" not in received.rcpt_tos


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=80))
def test_no_text_in_a_subject_can_add_a_header(text):
    """build_email refuses CR and LF outright; anything else stays inside the Subject when serialized."""
    message = Message(notification_id=1, channel="email", to="maria@example.com", text="corpo",
                      subject=f"Protocolo {text}", message_id="<notification-1@example.com>")
    try:
        email = build_email(message, "Atendimento <gw@example.com>")
    except PermanentDeliveryError:
        # Any str.splitlines() break (CR, LF, U+2028, \x85, \x1e...): the API refuses them all (422).
        assert len(f"x{text}x".splitlines()) > 1
        return
    from email import message_from_bytes
    from email.policy import default

    wire = email.as_bytes()
    parsed = message_from_bytes(wire, policy=default)
    assert {k.lower() for k in parsed.keys()} == {"from", "to", "subject", "message-id", "date", "mime-version",
                                                  "content-type", "content-transfer-encoding"}
    assert parsed["To"] == "maria@example.com"


# HTML and Jinja in what consumers and upstreams write

HOSTILE = {
    "subject": "<script>alert('x')</script> {{ 7*7 }} {% if true %}SIM{% endif %} ${7*7} #{7*7}",
    "name": "<b onmouseover=alert(1)>Maria</b> {{ config }} {{ ''.__class__.__mro__ }}",
    "message": "<img src=x onerror=alert(1)> {{ self.__init__.__globals__ }} {% for x in range(3) %}L{% endfor %}",
}


async def test_html_and_jinja_in_consumer_text_are_shown_as_text_never_run(client, key, gw, sink):
    r = await client.post("/v1/events", data=json.dumps(opened_event(
        "hostile", notify=["email"], subject=HOSTILE["subject"],
        consumer={"name": HOSTILE["name"], "email": "maria@example.com"})), headers=auth(key))
    assert r.status == 202, await r.text()
    number = (await r.json())["protocol"]["number"]
    update = {"specversion": "1.0", "id": "hostile-update", "source": "urn:test:crm", "type": "protocol.updated",
              "data": {"number": number, "message": HOSTILE["message"]}}
    assert (await client.post("/v1/events", data=json.dumps(update), headers=auth(key))).status == 202
    await gw.dispatcher.run_until_idle()

    async with gw.db.read() as session:
        stored = list((await session.scalars(select(Notification).order_by(Notification.id))).all())
    assert [n.status for n in stored] == ["sent", "sent"]
    opened, updated = stored
    # The stored text holds the consumer's words as written: nothing evaluated, nothing dropped.
    assert HOSTILE["subject"] in opened.body_text and HOSTILE["name"] in opened.body_text
    assert HOSTILE["message"] in updated.body_text
    for written in (opened.body_text, updated.body_text, opened.body_html, updated.body_html):
        # The page's link is random: its token may hold a 49, a SIM or an LLL of its own (it did, once).
        rendered = re.sub(r"/p/" + TOKEN.pattern, "/p/", written)
        assert rendered != written  # every message links to the consumer's page
        # {{ 7*7 }} was not computed. Times ("15:49") and the number may hold a 49 of their own.
        assert "49" not in re.sub(r"\d{1,2}:\d{2}", "", rendered.replace(number, ""))
        assert "SIM" not in rendered.replace("{% if true %}SIM{% endif %}", "")
        assert "LLL" not in rendered and "<class" not in rendered  # no loop ran, no Python object reached
    # In HTML every tag the consumer wrote is escaped: no script, no handler attribute, no image.
    for html in (opened.body_html, updated.body_html):
        assert "<script" not in html and "<img" not in html and "<b " not in html
    assert "&lt;script&gt;" in opened.body_html and "&lt;img src=x onerror=alert(1)&gt;" in updated.body_html
    assert "{{ 7*7 }}" in opened.body_html and "{% for x in range(3) %}L{% endfor %}" in updated.body_html

    # And the emails the consumer got say the same.
    by_id = {str(m["Message-ID"]): m for m in sink.messages}
    installation = await gw.db.query(installation_key)
    for row in stored:
        email = by_id[f"<notification-{row.id}.{installation}@example.com>"]
        text = email.get_body(("plain",)).get_content()
        html = email.get_body(("html",)).get_content()
        assert text.replace("\r\n", "\n").strip() == row.body_text.replace("\r\n", "\n").strip()
        assert "<script" not in html and "<img" not in html
    opened_email = by_id[f"<notification-{opened.id}.{installation}@example.com>"]
    assert HOSTILE["subject"] in str(opened_email["Subject"])  # the subject template put it in the header, as text
