"""What reaches the consumer is true, whole and cheap (issue 13): each message names only what
is set up and possible for this consumer, the history by SMS is whole, fallbacks go only where
the first channel could have failed, Message-IDs never repeat across installations, and postal
requests can be marked fulfilled. Real SQLite and PostgreSQL, the real Twilio SDK on the fake."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from gateway.app import build_runtime, prepare, web_app
from gateway.config import ConfigError, load_settings
from gateway.rendering.check import check_templates
from gateway.rendering.split import split_history
from gateway.rendering.templates import Templates
from gateway.store.models import Installation, Notification
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import admin_key, make_settings, opened_event
from tests.test_consumer_asks import PUBLIC, _gateway, gateway_settings

SHIPPED = Path(__file__).resolve().parent.parent / "gateway" / "templates"
SAYS_SMS = "por SMS para"


def settings_with(**sections: Any):
    return load_settings(environ={}, discover=False, overrides=sections)


# Settings: [company], public_url


def test_company_name_per_locale_falls_back_through_language_and_default():
    s = settings_with(company={"name": {"pt-BR": "Atendimento ACME", "es": "Atención ACME"}})
    assert s.company_name("es-ES") == "Atención ACME" and s.company_name("pt-BR") == "Atendimento ACME"
    assert s.company_name("en") == "Atendimento ACME"  # gateway.default_locale's
    assert s.company_name("ca-ES") == "Atención ACME"  # Spain's co-official languages: the Spanish name first
    legacy = settings_with(gateway={"company_name": "Antiga"})
    assert legacy.company_name("es") == "Antiga"
    unset = settings_with()  # a generic name in the reader's language, not Portuguese for all
    assert [unset.company_name(x) for x in ("pt-BR", "es-ES", "en", "fr")] == [
        "Atendimento ao Cliente", "Atención al Cliente", "Customer Service", "Atendimento ao Cliente"]
    assert ("setting_deprecated", legacy.warnings()[0][1]) == legacy.warnings()[0]


@pytest.mark.parametrize(("section", "expected"), [
    ({"sms_number": "11 4000-4000"}, "company.sms_number: expected a phone number in E.164"),
    ({"support_email": "not an address"}, "company.support_email: expected an email address"),
    ({"website": "acme.example"}, "company.website: expected an absolute http(s) URL"),
    ({"name": {"xx-YY-zz": "A"}}, "company.name: expected a locale"),
])
def test_a_wrong_company_setting_names_its_key(section, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        settings_with(company=section)


def test_public_url_follows_the_port_unless_set_and_a_loopback_one_is_a_warning_with_twilio():
    assert settings_with(http={"port": 9191}).http.public_url == "http://127.0.0.1:9191"
    assert settings_with(http={"host": "0.0.0.0", "port": 9191}).http.public_url == "http://127.0.0.1:9191"
    assert settings_with(http={"port": 9191, "public_url": "https://gw.example.com"}).http.public_url == \
        "https://gw.example.com"
    twilio = {"transport": "twilio", "twilio": {"account_sid": "AC1", "auth_token": "t", "from": "+15005550006"}}
    assert [a for a, _ in settings_with(sms=twilio).warnings()] == ["public_url_loopback"]
    assert settings_with(sms=twilio, http={"public_url": "https://gw.example.com"}).warnings() == []
    assert settings_with().warnings() == []  # the file transport needs no callbacks


# What each message names


def _email_and_sms(notifications: list[Notification]) -> tuple[str, str]:
    email = next(n for n in notifications if n.channel == "email")
    sms = next(n for n in notifications if n.channel == "sms")
    return email.body_text + (email.body_html or ""), sms.body_text


async def test_text_us_is_offered_only_with_inbound_sms_set_up_and_a_phone_we_may_text(tmp_path, db_url, twilio):
    company = {"name": "Acme", "sms_number": "+551140004000"}
    gateway, client = await _gateway(gateway_settings(tmp_path, db_url, twilio, company=company), twilio)
    try:
        await gateway.open("br")  # a Brazilian mobile: texting works
        email, _ = _email_and_sms(await gateway.notifications())
        assert SAYS_SMS in email and "+55 11 4000-4000" in email
        number = (await gateway.notifications())[0]
        # The number the message tells them to text is the protocol's own: texting it returns its history.
        protocol_number = email.split("envie ")[1].split(" ")[0]
        await gateway.sms_in("+5511987654321", protocol_number, "SMx")
        (reply,) = await gateway.notifications(template="protocol_history")
        assert reply.channel == "sms" and protocol_number in reply.body_text and number.id < reply.id
    finally:
        await client.close()


async def test_without_inbound_sms_or_addresses_no_message_names_them(tmp_path, db_url):
    # The quick start's SMS file: no Twilio auth token, so nobody can text the gateway.
    settings = make_settings(tmp_path, db_url, company={"name": "Acme", "sms_number": "+551140004000"},
                             email={"reply_to": None})
    runtime = build_runtime(settings)
    await prepare(runtime)
    try:
        key = await admin_key(runtime)
        async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
            r = await client.post("/v1/events", data=json.dumps(opened_event()),
                                  headers={"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"})
            assert r.status == 202
        async with runtime.db.read() as session:
            rows = list((await session.scalars(select(Notification).order_by(Notification.id))).all())
        email, sms = _email_and_sms(rows)
        for text in (email, sms):
            assert "None" not in text and SAYS_SMS not in text and "4000-4000" not in text
            assert "escreva para" not in text and "responda a este e-mail" not in text
        assert "peça pelos nossos canais de atendimento" in email
    finally:
        await runtime.aclose()


async def test_a_phone_outside_allowed_countries_is_not_told_to_text(tmp_path, db_url, twilio):
    company = {"name": "Acme", "sms_number": "+551140004000"}
    gateway, client = await _gateway(gateway_settings(tmp_path, db_url, twilio, company=company), twilio)  # BR only
    try:
        await gateway.open("es", notify=["email"], consumer={"name": "Ana", "email": "ana@example.com",
                                                              "phone": "+34612345678", "locale": "es"})
        (email,) = await gateway.notifications()
        assert "por SMS" not in email.body_text and "responda a este correo" in email.body_text
    finally:
        await client.close()


def test_templates_check_reports_placeholders_and_instructions_without_their_condition(tmp_path: Path):
    folder = tmp_path / "templates"
    (folder / "t" / "pt-BR").mkdir(parents=True)
    (folder / "t" / "template.toml").write_text(
        'audience = "consumer"\n[sample]\nlocale = "pt-BR"\ntimezone = "UTC"\n'
        '[sample.company]\nname = "Acme"\nsupport_email = "sac@acme.example"\nwebsite = false\n'
        '[sample.ask]\nsms_number = "+55 11 4000-4000"\nreply = true\nemail = false\nwebsite = false\n', "utf-8")
    # The old sentences: written whatever is set up.
    (folder / "t" / "pt-BR" / "sms.j2").write_text(
        "Historico: envie PROTOCOLO por SMS para o nosso número ou escreva para {{ company.support_email }}.\n",
        "utf-8")
    report = check_templates(Templates(folder, "pt-BR"), max_segments=3)
    errors = [f.message for f in report.findings if f.level == "error"]
    assert any("placeholder 'None'" in e and "no way to ask" in e for e in errors)
    assert any("'por sms para'" in e and "ask.sms_number" in e for e in errors)
    assert any("'escreva para'" in e and "ask.email" in e for e in errors)


def test_the_shipped_templates_pass_the_strict_check_and_the_opening_sms_is_cheap():
    settings = load_settings(environ={}, discover=False)
    templates = Templates(SHIPPED, "pt-BR", sms_transliterate=settings.sms.transliterate)
    report = check_templates(templates, max_segments=settings.sms.max_segments)
    assert [f for f in report.findings if f.level in ("error", "warning")] == []
    opening = [s for s in report.sms if s.template == "protocol_opened"]
    assert len(opening) == 6  # pt-BR, es, en, and ca, eu, gl (Ley 10/2025)
    for sms in opening:  # a 40-character subject: 1 GSM-7 segment transliterated, 2 in UCS-2 as written
        assert sms.transliterated.encoding == "GSM-7" and sms.transliterated.segments == 1
        assert sms.written.segments <= 2
    for sms in report.sms:
        if sms.template in ("protocol_updated", "protocol_resolved", "protocol_reopened", "deadline_reminder"):
            assert sms.sent.segments <= 2, sms


# The history by SMS: whole


def test_split_history_keeps_every_word_and_names_the_protocol_in_each_part():
    templates = Templates(SHIPPED, "pt-BR", sms_transliterate=True)
    sample = templates.manifest("protocol_history").sample
    long_text = " ".join(f"palavra{i:03d}" for i in range(300))  # one entry of ~3,000 characters
    entries = [*sample["history"][:2], {**sample["history"][2], "text": long_text}, *sample["history"][3:]]

    def render(run, part, parts):
        return templates.render("protocol_history", "sms", "pt-BR",
                                {**sample, "history": run, "part": part, "parts": parts})

    parts = split_history(render, entries, 4)
    assert len(parts) > 3 and all(p.sms.segments <= 4 for p in parts)
    number = sample["protocol"]["number"]
    assert all(number in p.text and f"parte {i} de {len(parts)}" in p.text for i, p in enumerate(parts, 1))
    joined = " ".join(p.text for p in parts)
    assert all(f"palavra{i:03d}" in joined for i in range(300)) and "..." not in joined
    assert joined.count("(cont.)") >= 1


async def test_history_by_sms_is_whole_even_for_a_consumer_with_an_email(gw_twilio):
    gateway = gw_twilio
    number = await gateway.open()
    long = "Detalhe " + "muito longo " * 120
    status, _ = await gateway.event({"specversion": "1.0", "id": "u1", "source": "urn:test:crm",
                                     "type": "protocol.updated", "data": {"number": number, "message": long}})
    assert status == 202
    r = await gateway.resend(number, channel="sms", history=True)
    assert r.status == 202
    parts = await gateway.notifications(template="protocol_history")
    assert len(parts) >= 2 and all(p.channel == "sms" and number in p.body_text for p in parts)
    assert not await gateway.notifications(template="protocol_history", channel="email")
    words = " ".join(p.body_text for p in parts).split()  # a part may end between "muito" and "longo"
    assert words.count("muito") == 120 and words.count("longo") == 120


@pytest.fixture
async def gw_twilio(tmp_path: Path, db_url: str, twilio: FakeTwilio):
    gateway, client = await _gateway(gateway_settings(tmp_path, db_url, twilio), twilio)
    yield gateway
    await client.close()


# Fallback only where the first channel could have failed


async def test_the_sms_file_never_triggers_no_receipt_in_time(tmp_path, db_url):
    runtime = build_runtime(make_settings(tmp_path, db_url))
    await prepare(runtime)
    try:
        key = await admin_key(runtime)
        async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
            await client.post("/v1/events", data=json.dumps(opened_event(notify=["sms"])),
                              headers={"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"})
        await runtime.dispatcher.run_until_idle()
        later = runtime.clock() + timedelta(days=2)
        fallback = runtime.hooks.chains
        assert await runtime.db.transact(lambda s: fallback.sweep(s, at=later)) == 0
        async with runtime.db.read() as session:
            assert [n.channel for n in (await session.scalars(select(Notification))).all()] == ["sms"]
    finally:
        await runtime.aclose()


async def test_an_sms_that_failed_is_not_sent_again_by_email_when_the_email_carried_it(gw_twilio):
    gateway = gw_twilio
    gateway.twilio.stopped_numbers.add("987654321")  # 21610: the consumer's STOP at the carrier, for good
    await gateway.open()  # email and SMS
    await gateway.deliver()
    sms = (await gateway.notifications(channel="sms"))[0]
    assert sms.status == "failed"
    assert await gateway.notifications(template="sms_fallback") == []


# Message-IDs


async def test_message_ids_carry_the_installation_key_and_differ_across_databases(tmp_path, sink, sqlite_url):
    from tests.conftest import _migrate_url

    other = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    await _migrate_url(other)
    keys = []
    for url in (sqlite_url, other):
        runtime = build_runtime(make_settings(tmp_path / url[-8:], url))
        try:
            keys.append(await runtime.db.query(lambda s: s.scalar(select(Installation.key))))
        finally:
            await runtime.aclose()
    assert keys[0] != keys[1] and all(len(k) == 16 for k in keys)


# CloudEvents binary mode: percent-decoded headers


async def test_binary_mode_percent_decodes_ce_headers(gw_twilio):
    gateway = gw_twilio
    event = opened_event("crm ação/1")
    headers = {"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json",
               "ce-specversion": "1.0", "ce-id": "crm%20a%C3%A7%C3%A3o%2F1", "ce-source": "urn:test:crm",
               "ce-type": "protocol.opened", "ce-time": "2026-11-22T14:43:00Z"}
    first = await gateway.client.post("/v1/events", data=json.dumps(event["data"]), headers=headers)
    assert first.status == 202
    again = await gateway.client.post("/v1/events", data=json.dumps(event), headers=gateway.headers())
    assert again.status == 200 and (await again.json())["duplicate"] is True
    bad = await gateway.client.post("/v1/events", data=json.dumps(event["data"]),
                                    headers={**headers, "ce-id": "x%FF"})
    assert bad.status == 400 and "ce-id" in (await bad.json())["detail"]


# Postal requests


async def test_a_postal_request_is_listed_and_marked_fulfilled_by_a_key(gw_twilio):
    gateway = gw_twilio
    number = await gateway.open()
    assert (await gateway.resend(number, channel="mail", history=True)).status == 202
    assert (await gateway.resend(number, channel="email")).status == 202
    document = await (await gateway.client.get(f"/v1/protocols/{number}", headers=gateway.headers())).json()
    mail, email = document["requests"]
    assert mail["channel"] == "mail" and mail["history"] is True and mail["fulfilled_at"] is None
    assert document["consumer"]["phone"] == "+5511987654321" and document["channel"] == "phone"
    url = f"/v1/protocols/{number}/requests/{mail['id']}/fulfilled"
    r = await gateway.client.post(url, data=json.dumps({"note": "carta registrada AR123"}),
                                  headers=gateway.headers("application/json"))
    body = await r.json()
    assert r.status == 200 and body["changed"] is True and body["note"] == "carta registrada AR123"
    assert body["fulfilled_by"].startswith("test-") and body["fulfilled_at"]
    again = await (await gateway.client.post(url, headers=gateway.headers("application/json"))).json()
    assert again["changed"] is False and again["fulfilled_at"] == body["fulfilled_at"]
    not_postal = await gateway.client.post(f"/v1/protocols/{number}/requests/{email['id']}/fulfilled",
                                           headers=gateway.headers("application/json"))
    assert not_postal.status == 409 and not_postal.content_type == "application/problem+json"
    missing = await gateway.client.post(f"/v1/protocols/{number}/requests/999999/fulfilled",
                                        headers=gateway.headers("application/json"))
    assert missing.status == 404
    too_long = await gateway.client.post(url, data=json.dumps({"note": "x" * 1001}),
                                         headers=gateway.headers("application/json"))
    assert too_long.status == 422 and (await too_long.json())["errors"][0]["field"] == "note"


async def test_only_a_writing_key_marks_a_request(gw_twilio):
    gateway = gw_twilio
    number = await gateway.open()
    await gateway.resend(number, channel="mail")
    reader = await admin_key(gateway.runtime, ["protocols:read"])
    r = await gateway.client.post(f"/v1/protocols/{number}/requests/1/fulfilled",
                                  headers={"Authorization": f"Bearer {reader}"})
    assert r.status == 403
