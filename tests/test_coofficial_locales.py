"""Spain's co-official languages (Ley 10/2025: an answer in the consumer's language): every
consumer template ships in Catalan (`ca`), Basque (`eu`) and Galician (`gl`), chosen by
`consumer.locale`; operations templates stay pt-BR, es and en.

Each new locale renders every consumer template from its own sample, shows no placeholder,
writes its SMS in GSM-7 letters only (so only the consumer's data can make one UCS-2), costs
no more segments than the Spanish text for the same sample, and reads dates as a consumer of
that language does.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

import gateway
from gateway.app import build_runtime, prepare, web_app
from gateway.rendering.check import PLACEHOLDER, check_templates
from gateway.rendering.dates import formatted
from gateway.rendering.page_link import render_consumer
from gateway.rendering.sms import is_gsm7, sms_info, transliterate_gsm7
from gateway.rendering.split import split_history
from gateway.rendering.templates import Templates
from gateway.store.models import Notification
from tests.helpers import admin_key, make_settings, opened_event

SHIPPED = Path(gateway.__file__).parent / "templates"
NEW = ("ca", "eu", "gl")
CONSUMER = ("protocol_opened", "protocol_updated", "protocol_resolved", "protocol_reopened", "protocol_history",
            "protocol_deadline_extended", "deadline_reminder", "inbound_reply", "history_sent_elsewhere",
            "sms_fallback")
OPERATIONS = ("overdue_alert", "deadline_warning", "operations_digest", "retention_notice", "confirmation_overdue")
NUMBER = "2026112200000017"
NOVEMBER = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)
JULY = datetime(2026, 7, 22, 14, 43, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def shipped() -> Templates:
    return Templates(SHIPPED, "pt-BR")


def sample(shipped: Templates, name: str) -> dict[str, Any]:
    return dict(shipped.manifest(name).sample)


def plain_data(value: Any) -> Any:
    """The sample with the consumer's texts in GSM-7 letters ("Cobranca"): what is left that
    is not GSM-7 can only be the template's own words."""
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_data(v) for v in value]
    return transliterate_gsm7(value) if isinstance(value, str) else value


def channels(shipped: Templates, name: str) -> list[str]:
    return sorted(shipped.channels(name, "es"))


# Which templates, in which locales


def test_every_consumer_template_and_only_those_ship_in_ca_eu_gl(shipped: Templates) -> None:
    consumer = [n for n in shipped.names() if shipped.manifest(n).audience == "consumer"]
    assert sorted(consumer) == sorted(CONSUMER)
    for name in CONSUMER:
        assert set(NEW) <= set(shipped.locales(name)), name
        for locale in NEW:  # the same files as the Spanish text
            assert shipped.channels(name, locale) == shipped.channels(name, "es"), (name, locale)
            assert sorted(p.name for p in (SHIPPED / name / locale).iterdir()) == \
                sorted(p.name for p in (SHIPPED / name / "es").iterdir()), (name, locale)
    for name in OPERATIONS:
        assert shipped.manifest(name).audience == "operations"
        assert shipped.locales(name) == ["en", "es", "pt-BR"], name
    for locale in NEW:
        assert (SHIPPED / "_partials" / locale / "ask.j2").is_file()


@pytest.mark.parametrize(("asked", "resolved"), [
    ("ca", "ca"), ("ca-ES", "ca"), ("ca_ES", "ca"), ("ca-AD", "ca"), ("eu", "eu"), ("eu-ES", "eu"),
    ("gl", "gl"), ("gl-ES", "gl"), ("es-ES", "es"), ("pt-BR", "pt-BR"),
])
def test_consumer_locale_picks_the_language_folder(shipped: Templates, asked: str, resolved: str) -> None:
    for name in CONSUMER:
        assert shipped.resolve_locale(name, asked) == resolved, name
    # An operations template has no Catalan: it falls back to the default, never to Spanish by guess.
    assert shipped.resolve_locale("overdue_alert", asked) == (resolved if resolved in ("es", "pt-BR") else "pt-BR")


# Every render: whole, no placeholder, GSM-7 words in the SMS


@pytest.mark.parametrize("locale", NEW)
@pytest.mark.parametrize("name", CONSUMER)
def test_renders_from_the_sample_in_its_language_without_placeholders(shipped: Templates, name: str,
                                                                      locale: str) -> None:
    context = sample(shipped, name)
    spanish = {ch: shipped.render(name, ch, "es", context) for ch in channels(shipped, name)}
    for channel, es in spanish.items():
        rendered = shipped.render(name, channel, locale, context)  # type: ignore[arg-type]
        assert rendered.locale == locale
        for part in (rendered.subject or "", rendered.text, rendered.html or ""):
            assert PLACEHOLDER.search(part) is None, (name, locale, part)
        assert rendered.text != es.text  # written in its own language, not the Spanish fallback
        if channel == "email":
            assert rendered.html is not None and f'<html lang="{locale}">' in rendered.html
            assert rendered.subject is not None and "\n" not in rendered.subject
            if "protocol" in context:
                assert NUMBER in rendered.subject


@pytest.mark.parametrize("locale", NEW)
@pytest.mark.parametrize("name", [n for n in CONSUMER if n != "sms_fallback"])
def test_sms_words_are_gsm7_and_cost_no_more_than_the_spanish(shipped: Templates, name: str, locale: str) -> None:
    manifest = shipped.manifest(name)
    for sample_name, data in manifest.all_samples().items():
        plain = render_consumer(shipped, name, "sms", locale, plain_data(dict(data)))
        assert is_gsm7(plain.text), (name, locale, sample_name, [c for c in plain.text if not is_gsm7(c)])
        for transliterate in (False, True):
            templates = Templates(SHIPPED, "pt-BR", sms_transliterate=transliterate)
            ours = render_consumer(templates, name, "sms", locale, dict(data)).sms
            spanish = render_consumer(templates, name, "sms", "es", dict(data)).sms
            assert ours is not None and spanish is not None
            assert ours.segments <= spanish.segments, (name, locale, sample_name, transliterate, ours, spanish)


@pytest.mark.parametrize("name", [n for n in CONSUMER if n != "sms_fallback"])
def test_no_shipped_sms_words_force_ucs2_in_any_locale(shipped: Templates, name: str) -> None:
    """README, "SMS cost": with the consumer's data in GSM-7, every SMS is GSM-7 (es inbound_reply
    once wrote "últimos días", 5 segments instead of 2 as written)."""
    for locale in shipped.locales(name):
        for sample_name, data in shipped.manifest(name).all_samples().items():
            text = render_consumer(shipped, name, "sms", locale, plain_data(dict(data))).text
            assert is_gsm7(text), (name, locale, sample_name, sorted({c for c in text if not is_gsm7(c)}))


@pytest.mark.parametrize("locale", NEW)
def test_the_opening_sms_is_one_gsm7_segment_transliterated(locale: str) -> None:
    templates = Templates(SHIPPED, "pt-BR", sms_transliterate=True)
    sms = render_consumer(templates, "protocol_opened", "sms", locale, sample(templates, "protocol_opened"))
    assert sms.sms == sms_info(sms.text) and (sms.sms.encoding, sms.sms.segments) == ("GSM-7", 1)
    assert NUMBER in sms.text and "Cobranca indevida na fatura de outubro" in sms.text


# What the messages say, in each language


OPENING = {
    # language: (email's sentence, the email's way to ask by reply, the SMS's word for the request)
    "ca": ("Hem registrat la vostra sol·licitud. Guardeu el número de referència:", "responeu aquest correu",
           "sol.licitud"),
    "eu": ("Zure eskaera erregistratu dugu. Gorde erreferentzia-zenbakia:", "erantzun mezu honi", "eskaera"),
    "gl": ("Rexistramos a súa solicitude. Garde o número de referencia:", "responda a este correo", "solicitude"),
}


@pytest.mark.parametrize("locale", NEW)
def test_the_opening_in_madrid_shows_cet_and_how_to_ask(shipped: Templates, locale: str) -> None:
    context = {**sample(shipped, "protocol_opened"), "timezone": "Europe/Madrid"}
    email = shipped.render("protocol_opened", "email", locale, context)
    sms = render_consumer(shipped, "protocol_opened", "sms", locale, context)
    sentence, reply, word = OPENING[locale]
    opened = {"ca": "22/11/2026 15:43 (CET)", "eu": "2026/11/22 15:43 (CET)", "gl": "22/11/2026, 15:43 (CET)"}[locale]
    assert sentence in email.text and opened in email.text and reply in email.text and NUMBER in email.text
    assert f"{word} {NUMBER}" in sms.text or f"{NUMBER} {word}" in sms.text
    assert opened in sms.text and "Cobrança indevida na fatura de outubro" in sms.text


@pytest.mark.parametrize("locale", NEW)
def test_without_any_way_to_ask_the_email_names_none(shipped: Templates, locale: str) -> None:
    context = {**sample(shipped, "protocol_opened"),
               "ask": {"sms_number": None, "reply": False, "email": None, "website": None}}
    text = shipped.render("protocol_opened", "email", locale, context).text
    _, reply, _ = OPENING[locale]
    assert reply not in text and "+55" not in text and "SMS" not in text
    fallback = {"ca": "demaneu-lo pels nostres canals d'atenció", "eu": "eskatu gure ohiko arreta-kanalen bidez",
                "gl": "pídao polas nosas canles de atención"}[locale]
    assert fallback in text


@pytest.mark.parametrize("locale", NEW)
def test_templates_check_catches_a_way_to_ask_shown_without_its_setting(tmp_path: Path, locale: str) -> None:
    """The check knows each language's sentences: drop a condition from the shared partial and
    every consumer email that offers it is reported."""
    folder = tmp_path / "templates"
    shutil.copytree(SHIPPED, folder)
    partial = folder / "_partials" / locale / "ask.j2"
    text = partial.read_text("utf-8")
    conditions = [line for line in text.splitlines() if line.strip().startswith('"') and "if ask.reply else" in line]
    assert conditions, "the reply way is conditional"
    for line in conditions:
        text = text.replace(line, line.replace(' if ask.reply else ""', ""))
    partial.write_text(text, "utf-8")
    report = check_templates(Templates(folder, "pt-BR"), max_segments=3, names=["protocol_opened"])
    errors = [f for f in report.findings if f.level == "error"]
    assert errors and all(f.locale == locale for f in errors)
    assert any("ask.reply" in f.message and "no way to ask" in f.message for f in errors), errors


# Dates and zones as each language reads them


@pytest.mark.parametrize(("locale", "zone", "value", "long", "short", "day"), [
    ("ca", "Europe/Madrid", NOVEMBER, "22/11/2026 15:43 (CET)", "22/11/2026 15:43 (CET)", "22/11/2026"),
    ("ca", "Europe/Madrid", JULY, "22/7/2026 16:43 (CEST)", "22/7/2026 16:43 (CEST)", "22/7/2026"),
    ("ca", "America/Sao_Paulo", NOVEMBER, "22/11/2026 11:43 (hora de Brasília)", "22/11/2026 11:43 (Brasilia)",
     "22/11/2026"),
    ("gl", "Europe/Madrid", NOVEMBER, "22/11/2026, 15:43 (CET)", "22/11/2026, 15:43 (CET)", "22/11/2026"),
    ("gl", "Atlantic/Canary", JULY, "22/7/2026, 15:43 (WEST)", "22/7/2026, 15:43 (WEST)", "22/7/2026"),
    ("gl", "America/Sao_Paulo", NOVEMBER, "22/11/2026, 11:43 (hora de Brasilia)", "22/11/2026, 11:43 (Brasilia)",
     "22/11/2026"),
    # Basque writes the year first, numerically: not CLDR's "2026 aza. 22(a) (15:43)".
    ("eu", "Europe/Madrid", NOVEMBER, "2026/11/22 15:43 (CET)", "2026/11/22 15:43 (CET)", "2026/11/22"),
    ("eu", "Europe/Madrid", JULY, "2026/7/22 16:43 (CEST)", "2026/7/22 16:43 (CEST)", "2026/7/22"),
    ("eu", "America/Sao_Paulo", NOVEMBER, "2026/11/22 11:43 (Brasiliako ordua)", "2026/11/22 11:43 (Brasilia)",
     "2026/11/22"),
    ("eu-ES", "America/New_York", NOVEMBER, "2026/11/22 09:43 (GMT-05:00)", "2026/11/22 09:43 (GMT-05:00)",
     "2026/11/22"),
    # Unchanged for the languages that were there.
    ("es", "Europe/Madrid", NOVEMBER, "22/11/2026, 15:43 (CET)", "22/11/2026, 15:43 (CET)", "22/11/2026"),
    ("es", "America/Sao_Paulo", JULY, "22/7/2026, 11:43 (hora de Brasilia)", "22/7/2026, 11:43 (Brasilia)",
     "22/7/2026"),
    ("pt-BR", "Europe/Madrid", NOVEMBER, "22/11/2026 15:43 (GMT+01:00)", "22/11/2026 15:43 (GMT+01:00)", "22/11/2026"),
    ("en", "Europe/Madrid", JULY, "Jul 22, 2026, 4:43\u202fPM (GMT+02:00)", "Jul 22, 2026, 4:43\u202fPM (GMT+02:00)",
     "Jul 22, 2026"),
])
def test_dates_read_naturally(locale: str, zone: str, value: datetime, long: str, short: str, day: str) -> None:
    assert formatted(value, "datetime", timezone=zone, locale=locale) == long
    assert formatted(value, "datetime", timezone=zone, locale=locale, short=True) == short
    assert formatted(value, "date", timezone=zone, locale=locale) == day
    assert is_gsm7(short.replace("\u202f", " "))  # an SMS's date and zone never cost UCS-2


# End to end: the consumer's locale on the event chooses the language


@pytest.mark.parametrize(("locale", "says"), [
    ("ca-ES", "Hem registrat la vostra sol·licitud"), ("eu-ES", "Zure eskaera erregistratu dugu"),
    ("gl-ES", "Rexistramos a súa solicitude"),
])
async def test_an_opening_with_a_co_official_locale_is_answered_in_it(tmp_path: Path, sqlite_url: str, locale: str,
                                                                     says: str) -> None:
    runtime = build_runtime(make_settings(tmp_path, sqlite_url, sweeps={"enabled": False}))
    await prepare(runtime)
    try:
        headers = {"Authorization": f"Bearer {await admin_key(runtime)}",
                   "Content-Type": "application/cloudevents+json"}
        consumer = {"name": "Maria Silva", "email": "maria@example.com", "phone": "+5511987654321",
                    "locale": locale, "timezone": "Europe/Madrid"}
        async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
            response = await client.post("/v1/events", data=json.dumps(opened_event(consumer=consumer)),
                                         headers=headers)
            assert response.status == 202, await response.text()
        async with runtime.db.read() as session:
            rows = list((await session.scalars(select(Notification).order_by(Notification.id))).all())
        email = next(n for n in rows if n.channel == "email")
        sms = next(n for n in rows if n.channel == "sms")
        language = locale.split("-")[0]
        assert {email.locale, sms.locale} == {language}
        assert says in email.body_text and "15:43 (CET)" in email.body_text
        (number,) = re.findall(r"\d{14,}", email.subject)
        assert number in sms.body_text and "15:43 (CET)" in sms.body_text
    finally:
        await runtime.aclose()


@pytest.mark.parametrize(("locale", "place", "cont"), [("ca", "(part {} de {})", "(cont.)"),
                                                        ("eu", "(zatia: {}/{})", "(jarraipena)"),
                                                        ("gl", "(parte {} de {})", "(cont.)")])
def test_the_history_by_sms_is_whole_in_parts_that_say_their_place(locale: str, place: str, cont: str) -> None:
    templates = Templates(SHIPPED, "pt-BR", sms_transliterate=True)
    data = templates.manifest("protocol_history").sample
    long_text = " ".join(f"paraula{i:03d}" for i in range(300))  # one entry of ~3,000 characters
    entries = [*data["history"][:2], {**data["history"][2], "text": long_text}, *data["history"][3:]]

    def render(run: list[dict[str, Any]], part: int, parts: int) -> Any:
        return templates.render("protocol_history", "sms", locale, {**data, "history": run, "part": part, "parts": parts})

    parts = split_history(render, entries, 4)
    assert len(parts) > 3 and all(p.sms.segments <= 4 and p.sms.encoding == "GSM-7" for p in parts)
    assert all(NUMBER in p.text and place.format(i, len(parts)) in p.text for i, p in enumerate(parts, 1))
    joined = " ".join(p.text for p in parts)
    assert all(f"paraula{i:03d}" in joined for i in range(300)) and "..." not in joined
    assert cont in joined
