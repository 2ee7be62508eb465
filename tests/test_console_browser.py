"""The console in a real browser (issue 18): Debian's chromium driven by Playwright, axe-core on every page.

`make test` installs both (the Makefile: apt for chromium when missing, npm for axe-core); the
test does not skip without them, it fails saying what is missing. The pages keep their CSP:
axe runs through the DevTools protocol, which the page's policy does not govern, and any CSP
violation the browser reports fails the test.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, async_playwright, expect
from sqlalchemy import select, update

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.protocols.schemas import OpenedData
from gateway.protocols.service import IncomingEvent
from gateway.rendering.numbers import grouped
from gateway.store.models import Notification
from tests.browser_checks import launch, require_browser, serious_findings
from tests.helpers import FixedClock, admin_key, make_settings, opened_event

T0 = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)


@pytest.fixture
async def served(tmp_path, sqlite_url) -> AsyncIterator[tuple[str, str, str, int]]:
    require_browser()
    runtime: Runtime = build_runtime(make_settings(tmp_path, sqlite_url, sweeps={"enabled": False}),
                                     clock=FixedClock(T0 + timedelta(hours=1)))
    await prepare(runtime)
    event = opened_event("b1", category="billing")
    outcome = await runtime.service.handle(IncomingEvent(
        source="urn:test:crm", id="b1", type="protocol.opened", time=T0,
        data=OpenedData.model_validate(event["data"])), received_at=T0)
    async with runtime.db.write() as session:
        sms = (await session.scalars(select(Notification).where(Notification.channel == "sms"))).one()
        await session.execute(update(Notification).where(Notification.id == sms.id).values(
            status="dead", error_code="30003", last_error="Unreachable destination handset", attempts=9))
    key = await admin_key(runtime, name="operadora")
    server = TestServer(web_app(runtime, run_dispatcher=False), host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", key, outcome.body["protocol"]["number"], sms.id
    await server.close()
    await runtime.aclose()


async def accessible(page: Page, label: str, found: dict[str, list[str]]) -> None:
    serious = await serious_findings(page)
    if serious:
        found[label] = serious


async def test_an_operator_finds_reads_retries_previews_and_downloads(served, tmp_path) -> None:
    base, key, number, dead_id = served
    problems: list[str] = []
    axe: dict[str, list[str]] = {}
    async with async_playwright() as p:
        browser = await launch(p)
        context = await browser.new_context(locale="en-US", accept_downloads=True)
        page = await context.new_page()
        # A 422 is how a form with an error answers (the scratch pad's draft): chromium logs every 4xx.
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" and not m.text.startswith(
            "Failed to load resource: the server responded with a status of 422") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        # Sign in, from a link that needs a session: back to it afterwards.
        await page.goto(f"{base}/console/protocols")
        await expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
        await accessible(page, "sign-in", axe)
        await page.get_by_label("API key").fill(key)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Find protocols")).to_be_visible()
        await expect(page.get_by_text("operadora")).to_be_visible()

        # Search by phone, in national form; the results swap in place.
        await page.get_by_label("Phone").fill("(11) 98765-4321")
        await page.get_by_role("button", name="Search").click()
        await expect(page.get_by_role("link", name=number)).to_be_visible()
        await expect(page).to_have_url(re.compile(r"phone="))
        await accessible(page, "protocols", axe)

        # The timeline, with each notification as it was sent.
        await page.get_by_role("link", name=number).click()
        await expect(page.get_by_role("heading", name=f"Protocol {number}")).to_be_visible()
        await page.get_by_text("as sent").first.click()
        await expect(page.locator("pre").first).to_contain_text(grouped(number))  # as the consumer read it
        await accessible(page, "protocol", axe)

        # The consumer asked for the history by post: the letter went, the request is marked.
        await page.get_by_label("Channel").select_option("mail")
        await page.get_by_label("with the full history").check()
        await page.get_by_role("button", name="Send again").click()
        await expect(page.get_by_role("status")).to_have_text("Done.")
        await page.get_by_label("Note (no personal data)").fill("AR BR123456789")
        await accessible(page, "protocol with a postal request", axe)
        await page.get_by_role("button", name="Mark as sent by post").click()
        await expect(page.get_by_text("AR BR123456789")).to_be_visible()
        await expect(page.get_by_role("button", name="Mark as sent by post")).to_have_count(0)

        # The dead SMS, explained, retried.
        await page.get_by_role("link", name="Outbox").click()
        await expect(page.get_by_text("The phone was unreachable")).to_be_visible()
        await accessible(page, "outbox", axe)
        await page.get_by_role("button", name=f"Retry #{dead_id}").click()
        await expect(page.get_by_text("Nothing needs attention.")).to_be_visible()

        # A template with data typed in.
        await page.get_by_role("link", name="Templates").click()
        await accessible(page, "templates", axe)
        await page.get_by_role("link", name="protocol_opened").click()
        await page.locator("#t-data").fill('{"protocol": {"subject": "Escrito agora no console"}}')
        await page.get_by_role("button", name="Render", exact=True).click()
        await expect(page.locator("#preview")).to_contain_text("Escrito agora no console")
        await accessible(page, "template", axe)

        # The scratch pad: a draft rendered in place, never saved; an error says where.
        await page.get_by_label("SMS", exact=True).fill("Rascunho {{ protocol.number }}: {{ protocol.subject }}")
        await page.get_by_label("Email text").fill("Linha um\n{{ protocol.numbr }}")
        await page.get_by_role("button", name="Render the draft").click()
        await expect(page.locator("#draft-preview [role=alert]")).to_contain_text(
            "email.txt.j2, line 2: undefined variable 'protocol.numbr'")
        await page.get_by_label("Email text").fill("Linha um\n{{ protocol.number }}")
        await page.get_by_role("button", name="Render the draft").click()
        await expect(page.locator("#draft-preview .draft-sms")).to_contain_text("Rascunho 2026112200000017: ")
        await expect(page.locator("#draft-preview .draft-segments")).to_have_text("1")
        await expect(page.locator("#draft-preview [role=alert]")).to_have_count(0)
        await accessible(page, "scratch pad", axe)

        # The report, and its CSV.
        await page.goto(f"{base}/console/reports?from=2026-11-01&to=2026-11-30")
        await expect(page.locator("svg")).to_be_visible()
        await accessible(page, "reports", axe)
        async with page.expect_download() as download:
            await page.get_by_role("link", name="Download CSV").click()
        saved = tmp_path / "report.csv"
        await (await download.value).save_as(saved)
        assert saved.read_text("utf-8").splitlines()[1].startswith("billing,1,")

        await page.get_by_role("link", name="Schedules").click()
        await expect(page.get_by_role("heading", name="Schedules", exact=True)).to_be_visible()
        await accessible(page, "schedules", axe)
        await page.get_by_role("link", name="Keys").click()
        await accessible(page, "keys", axe)
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        await browser.close()
    assert axe == {}, f"serious or critical axe-core findings: {axe}"
    assert problems == [], f"the browser reported errors (a CSP violation?): {problems}"


async def test_the_console_is_usable_from_the_keyboard(served) -> None:
    base, key, number, _ = served
    async with async_playwright() as p:
        browser = await launch(p)
        page = await (await browser.new_context(locale="pt-BR")).new_page()
        await page.goto(f"{base}/console/sign-in")
        # Tab to the key field, type, Enter: signed in, in Portuguese.
        for _ in range(10):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.id") == "key":
                break
        await page.keyboard.type(key)
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Buscar protocolos")).to_be_visible()
        await page.get_by_label("Número").focus()
        await page.keyboard.type(number)
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(re.compile(r"number="))  # htmx has swapped and settled
        await expect(page.get_by_role("link", name=number)).to_be_visible()
        await page.get_by_role("link", name=number).focus()
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name=f"Protocolo {number}")).to_be_visible()
        await browser.close()
