"""The consumer's page in a real browser (issue 15): Debian's chromium driven by Playwright at a
phone's width (360 px), axe-core on each state of the page, no JavaScript needed, and any
Content-Security-Policy violation the browser reports fails the test."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import async_playwright, expect
from sqlalchemy import select

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.protocols.schemas import OpenedData, ResolvedData
from gateway.protocols.service import IncomingEvent
from gateway.store.models import Notification
from tests.browser_checks import launch, require_browser, serious_findings
from tests.helpers import FixedClock, make_settings, opened_event
from tests.test_console_browser import T0

PHONE = {"width": 360, "height": 740}


@pytest.fixture
async def page_url(tmp_path, sqlite_url) -> AsyncIterator[str]:
    require_browser()
    runtime: Runtime = build_runtime(make_settings(tmp_path, sqlite_url, sweeps={"enabled": False}),
                                     clock=FixedClock(T0 + timedelta(days=2)))
    await prepare(runtime)
    event = opened_event("p1", subject="Cobrança em duplicidade do serviço de streaming Música+ que não contratei")
    outcome = await runtime.service.handle(IncomingEvent(
        source="urn:test:crm", id="p1", type="protocol.opened", time=T0,
        data=OpenedData.model_validate(event["data"])), received_at=T0)
    number = outcome.body["protocol"]["number"]
    await runtime.service.handle(IncomingEvent(
        source="urn:test:crm", id="r1", type="protocol.resolved", time=T0 + timedelta(days=1),
        data=ResolvedData.model_validate({"number": number, "resolution": "Confirmamos a cobrança indevida de "
                                          "R$ 39,90. O valor será creditado na fatura de dezembro."})),
        received_at=T0 + timedelta(days=1))
    async with runtime.db.read() as session:
        email = (await session.scalars(select(Notification).where(Notification.channel == "email"))).first()
    token = re.search(r"/p/([A-Za-z0-9_-]{22})", email.body_text).group(1)  # type: ignore[union-attr]
    server = TestServer(web_app(runtime, run_dispatcher=False), host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}/p/{token}"
    await server.close()
    await runtime.aclose()


async def test_on_a_phone_the_consumer_reads_the_record_and_asks_for_the_history(page_url: str) -> None:
    problems: list[str] = []
    async with async_playwright() as p:
        browser = await launch(p)
        context = await browser.new_context(viewport=PHONE, locale="pt-BR", java_script_enabled=False,
                                            is_mobile=True, has_touch=True)
        page = await context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        await page.goto(page_url)
        await expect(page.get_by_role("heading", name="Protocolo")).to_be_visible()
        await expect(page.get_by_text("Confirmamos a cobrança indevida de R$ 39,90.")).to_be_visible()
        await expect(page.get_by_text("respondido", exact=True)).to_be_visible()
        # The stylesheet applied (the page's own, under its CSP), and nothing wider than the phone.
        background = await page.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor")
        assert background == "rgb(11, 79, 138)"
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        # Selecting the number copies the digits alone, the groups set apart by margins.
        copied = await page.evaluate(
            "(() => { const r = document.createRange(); r.selectNodeContents(document.querySelector('.number'));"
            " return r.toString(); })()")
        assert re.fullmatch(r"\d{17}", copied), copied
        # axe-core needs JavaScript: a second context runs it on the same page.
        js = await browser.new_context(viewport=PHONE, locale="pt-BR")
        checked = await js.new_page()
        await checked.goto(page_url)
        assert await serious_findings(checked) == []

        # The button works without JavaScript: a plain form post, answered in place.
        await page.get_by_role("button", name="Receber por e-mail").click()
        await expect(page.get_by_role("status")).to_contain_text(
            "Enviaremos o histórico completo por e-mail para m***@example.com")
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        await checked.goto(page_url)
        await checked.get_by_role("button", name="Receber por SMS").click()
        await expect(checked.get_by_role("status")).to_contain_text("por SMS para +55119****4321")
        assert await serious_findings(checked) == []

        assert problems == []  # no CSP violation, no failed load
        # A link that does not work says so, in a page of its own (a 404, which chromium logs).
        await page.goto(page_url[:-3] + "xyz")
        await expect(page.get_by_role("heading", name="Este link não é válido ou expirou")).to_be_visible()
        await expect(page.locator("header")).to_have_css("background-color", "rgb(11, 79, 138)")
        await browser.close()
    assert problems == ["Failed to load resource: the server responded with a status of 404 (Not Found)"]
