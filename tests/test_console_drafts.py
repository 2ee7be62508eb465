"""The console's scratch pad (issue 18): a draft of a template's files rendered in the templates'
sandbox with the sample and data typed in, never saved; errors with file, line and variable."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.app import Runtime
from gateway.web import pages_templates
from tests.console_helpers import csrf_of, sign_in
from tests.helpers import admin_key
from tests.test_console import console  # noqa: F401 (the fixture)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
DRAFT = "/console/templates/protocol_opened/draft"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


async def signed_in(runtime: Runtime, client, scopes: list[str] | None = None) -> str:
    await sign_in(client, await admin_key(runtime, scopes or ["console", "templates:read"]))
    return csrf_of(await (await client.get("/console/templates/protocol_opened")).text())


async def test_the_pad_starts_from_the_files_and_renders_a_draft_never_saved(console) -> None:  # noqa: F811
    runtime, client, _ = console
    before = snapshot(TEMPLATES)
    await sign_in(client, await admin_key(runtime, ["console", "templates:read"]))
    page = await (await client.get("/console/templates/protocol_opened")).text()
    assert 'id="d-sms"' in page and "Assunto: {{ subject }}" in page
    r = await client.post(DRAFT, data={
        "csrf": csrf_of(page), "locale": "pt-BR",
        "subject": "Rascunho: protocolo {{ protocol.number }}",
        "text": "Olá {{ consumer.name }},\nseu assunto: {{ protocol.subject }}",
        "html": "<p>{{ protocol.subject }}</p>",
        "sms": "Protocolo {{ protocol.number }}: " + "é" * 80,
        "data": '{"protocol": {"subject": "Digitado <agora>"}}'})
    html = await r.text()
    assert r.status == 200, html
    draft = html[html.index('id="draft-preview"'):]
    subject = re.search(r'<span class="draft-subject">Rascunho: protocolo (\d+)</span>', draft)
    assert subject and len(subject.group(1)) >= 6
    assert "seu assunto: Digitado &lt;agora&gt;" in draft
    assert "&lt;p&gt;Digitado &amp;lt;agora&amp;gt;&lt;/p&gt;" in draft  # the HTML part autoescapes, as sent
    assert '<strong class="draft-segments">1</strong> (GSM-7' in draft  # é is GSM-7
    r = await client.post(DRAFT, data={"csrf": csrf_of(page), "locale": "pt-BR", "sms": "{{ protocol.number }}" + "中" * 60})  # no GSM-7 form: UCS-2 even transliterated
    assert '<strong class="draft-segments">2</strong> (UCS-2' in await r.text()
    assert snapshot(TEMPLATES) == before  # nothing written where the templates live


async def test_errors_name_the_file_the_line_and_the_variable(console) -> None:  # noqa: F811
    runtime, client, _ = console
    csrf = await signed_in(runtime, client)
    r = await client.post(DRAFT, data={"csrf": csrf, "subject": "ok", "text": "line one\n{{ protocol.numbr }}"})
    html = await r.text()
    assert r.status == 422
    assert "email.txt.j2, line 2: undefined variable &#39;protocol.numbr&#39; (data.protocol.numbr)" in html
    r = await client.post(DRAFT, data={"csrf": csrf, "sms": "{% if %}"})
    assert r.status == 422 and "sms.j2, line 1:" in await r.text()
    # The sandbox holds: no walk to Python's classes, and the answer is a page, not a 500.
    r = await client.post(DRAFT, data={"csrf": csrf, "sms": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
    assert r.status == 422 and "sms.j2" in await r.text()


async def test_bad_input_gets_a_page_naming_the_field(console) -> None:  # noqa: F811
    runtime, client, _ = console
    csrf = await signed_in(runtime, client)
    cases = [
        ({"sms": "", "subject": " "}, "type at least one part of the draft"),
        ({"sms": "x", "data": "{nope"}, "data: is not valid JSON"),
        ({"sms": "x", "data": "[1]"}, "data: expected a JSON object"),
        ({"sms": "x", "data": '{"a":' * 40 + "1" + "}" * 40}, "data: nested deeper than 32 levels"),
        ({"sms": "x", "data": "[" * 20_000 + "]" * 20_000}, "data: "),
        ({"sms": "x" * (64 * 1024 + 1)}, "at most 64 KiB in all"),
        ({"sms": "x", "data": '{"a": "' + "y" * (64 * 1024) + '"}'}, "at most 64 KiB in all"),
    ]
    for fields, message in cases:
        r = await client.post(DRAFT, data={"csrf": csrf, **fields})
        assert (r.status, r.content_type) == (422, "text/html"), fields
        assert message in await r.text(), fields
    # The page's own preview takes the same care: deep JSON was a 500 there.
    r = await client.post("/console/templates/protocol_opened", data={"csrf": csrf, "data": "[" * 20_000})
    assert r.status == 422 and "data: " in await r.text()


async def test_the_pad_needs_templates_read_and_the_form_token(console) -> None:  # noqa: F811
    runtime, client, _ = console
    await sign_in(client, await admin_key(runtime, ["console", "protocols:read"]))
    page = await (await client.get("/console/protocols")).text()
    assert (await client.post(DRAFT, data={"csrf": csrf_of(page), "sms": "x"})).status == 403
    assert (await client.post(DRAFT, data={"sms": "x"})).status == 403
    assert (await client.post("/console/templates/nope/draft", data={"csrf": csrf_of(page), "sms": "x"})).status == 403


async def test_a_draft_past_the_time_cap_is_a_page_saying_so(console, monkeypatch) -> None:  # noqa: F811
    """The scratch pad waits at most RENDER_SECONDS for a render (2 s in the daemon); with the cap
    at zero every render is past it, so the test never waits."""
    runtime, client, _ = console
    csrf = await signed_in(runtime, client)
    monkeypatch.setattr(pages_templates, "RENDER_SECONDS", 0.0)
    r = await client.post(DRAFT, data={"csrf": csrf, "sms": "Protocolo {{ protocol.number }}"})
    html = await r.text()
    assert r.status == 422 and "the preview took longer than 0 s" in html
    # the page's own check is past the cap too: the page says how to run it, not "unavailable"
    assert "run protocol-gateway templates check protocol_opened" in html
    monkeypatch.undo()
    r = await client.post(DRAFT, data={"csrf": csrf, "sms": "Protocolo {{ protocol.number }}"})
    assert r.status == 200  # the pad still works after a render that ran past the cap
