"""List-Unsubscribe (RFC 8058 one-click) on the reminders a consumer did not ask for, never on
the confirmation; the one-click POST recorded as an SMS STOP is and honoured by the sweeps; a
page for the person who follows the link. Real SMTP sink, real HTTP, real databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.config import ConfigError, load_settings
from gateway.protocols.schemas import OpenedData
from gateway.protocols.service import IncomingEvent
from gateway.store.models import EmailOptOut, Notification
from gateway.store.sweep_models import SweepMark
from tests.fakes.smtp_sink import SMTPSink
from tests.helpers import FixedClock, make_settings, opened_event
from tests.sweep_helpers import add, at, hours, protocol_row

SECRET = "unsubscribe-secret-0123456789"
NOON = at(20, 15)  # 12:00 in São Paulo: inside the consumer's window


@pytest.fixture
async def gw(tmp_path: Path, db_url: str, sink: SMTPSink) -> AsyncIterator[Runtime]:
    settings = make_settings(tmp_path, db_url, email={
        "transport": "smtp", "smtp": {"host": sink.host, "port": sink.port, "starttls": False},
        "unsubscribe": {"secret": SECRET}}, http={"public_url": "https://sac.acme.example"})
    runtime = build_runtime(settings, clock=FixedClock(NOON))
    await prepare(runtime)
    yield runtime
    await runtime.aclose()


async def remind(runtime: Runtime, **fields: str) -> list[Notification]:
    """A protocol due in 23 hours, the consumer reminder sweep, the sends."""
    [row] = await add(runtime.db, protocol_row(NOON - hours(72), deadline_at=NOON + hours(23), notify="email", **fields))
    assert runtime.sweeps is not None
    await runtime.sweeps.run("deadline-reminder", at=NOON)
    await runtime.dispatcher.run_until_idle()
    async with runtime.db.read() as session:
        return list((await session.scalars(select(Notification).where(Notification.protocol_id == row.id))).all())


async def test_a_reminder_carries_one_click_unsubscribe_and_the_confirmation_does_not(
        gw: Runtime, sink: SMTPSink) -> None:
    [reminder] = await remind(gw, consumer_email="ana@example.com")
    message = sink.messages[-1]
    link = message["List-Unsubscribe"]
    assert link.startswith(f"<https://sac.acme.example/u/{reminder.id}.") and link.endswith(">")
    assert "ana" not in link and "example.com" not in link.removeprefix("<https://sac.acme.example")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    event = opened_event("c1")
    await gw.service.handle(IncomingEvent(source="urn:test:crm", id="c1", type="protocol.opened", time=NOON,
                                          data=OpenedData.model_validate({**event["data"], "notify": ["email"]})),
                            received_at=NOON)
    await gw.dispatcher.run_until_idle()
    confirmation = sink.messages[-1]
    assert confirmation["List-Unsubscribe"] is None and confirmation["List-Unsubscribe-Post"] is None


async def test_a_one_click_post_is_recorded_and_the_next_reminder_to_that_address_is_not_sent(
        gw: Runtime, sink: SMTPSink) -> None:
    [reminder] = await remind(gw, consumer_email="Ana@Example.com")
    path = sink.messages[-1]["List-Unsubscribe"].strip("<>").removeprefix("https://sac.acme.example")
    async with TestClient(TestServer(web_app(gw, run_dispatcher=False))) as client:
        # As Gmail sends it: a POST with the one-click body and no cookie, no JavaScript.
        answer = await client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert answer.status == 200 and await answer.text() == "unsubscribed\n"
        again = await client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert again.status == 200  # a provider may retry: still fine, nothing more recorded
    async with gw.db.read() as session:
        [opt_out] = (await session.scalars(select(EmailOptOut))).all()
    assert opt_out.via == "one-click" and opt_out.notification_id == reminder.id
    assert "ana" not in opt_out.email_key.lower()  # a hash, not the address
    sent_before = len(sink.messages)
    later = await remind(gw, consumer_email="ana@example.com")  # the same address, another protocol
    assert later == [] and len(sink.messages) == sent_before
    async with gw.db.read() as session:
        outcomes = [m.outcome for m in (await session.scalars(select(SweepMark).order_by(SweepMark.id))).all()]
    assert outcomes == ["sent", "opted_out"]


async def test_the_link_opens_a_page_in_the_consumers_locale_with_a_button_and_a_get_changes_nothing(
        gw: Runtime, sink: SMTPSink) -> None:
    await remind(gw, consumer_email="ana@example.com", consumer_locale="es")
    path = sink.messages[-1]["List-Unsubscribe"].strip("<>").removeprefix("https://sac.acme.example")
    async with TestClient(TestServer(web_app(gw, run_dispatcher=False))) as client:
        page = await client.get(path)
        html = await page.text()
        assert page.status == 200 and page.content_type == "text/html"
        assert 'lang="es"' in html and "Cancelar recordatorios" in html and "<script" not in html
        assert '<form method="post">' in html and 'name="List-Unsubscribe" value="One-Click"' in html
        async with gw.db.read() as session:
            assert (await session.scalars(select(EmailOptOut))).all() == []  # link scanners follow GETs
        pressed = await client.post(path, data={"List-Unsubscribe": "One-Click"}, headers={"Accept": "text/html"})
        assert pressed.status == 200 and "ya no recibirá" in await pressed.text()
        forged = path.rsplit(".", 1)[0] + ".aaaaaaaaaaaaaaaa"
        for bad in (forged, "/u/not-a-token"):
            assert (await client.get(bad)).status == 404
            refused = await client.post(bad, data={"List-Unsubscribe": "One-Click"})
            assert refused.status == 404
    async with gw.db.read() as session:
        [opt_out] = (await session.scalars(select(EmailOptOut))).all()
    assert opt_out.via == "page"


def test_a_short_unsubscribe_secret_stops_start_up_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, discover=False, overrides={"email": {"unsubscribe": {"secret": "short"}}})
    assert str(caught.value).startswith("settings: email.unsubscribe.secret: expected at least 16 characters")


def test_spains_co_official_languages_get_the_spanish_page_not_the_portuguese_default() -> None:
    from gateway.web.unsubscribe import _words

    assert [_words(x)["lang"] for x in ("ca", "eu-ES", "gl", "es-MX", "fr", None)] == \
        ["es", "es", "es", "es", "pt-BR", "pt-BR"]
