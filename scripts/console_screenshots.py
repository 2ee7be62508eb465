"""Screenshots of the operations console for the README: `.venv/bin/python scripts/console_screenshots.py`.

Starts the gateway in a temporary folder (SQLite, files for email and SMS), opens a few sample
protocols, fails one SMS for good, and has Debian's chromium (through Playwright, as the tests
do) photograph each page into docs/console/. Needs `make install-test` (Playwright, chromium).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from playwright.async_api import async_playwright
from sqlalchemy import select, update

from gateway.api import keys

from gateway.protocols.schemas import OpenedData, ResolvedData
from gateway.protocols.service import IncomingEvent
from gateway.store.models import Notification
from screenshot_gateway import find_chromium, launch, served_gateway  # scripts/, beside this file

OUT = Path(__file__).resolve().parent.parent / "docs" / "console"
NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)  # a fixed "now": the pictures do not change by the day
SAMPLES = [
    ("Cobrança indevida na fatura de outubro", "billing", "phone", "maria@example.com", "+5511987654321", 20),
    ("Entrega atrasada do pedido 4471", "delivery", "chat", "joao@example.com", "+5511912345678", 12),
    ("Cancelamento não processado", "billing", "web", "ana@example.com", "+5511955554444", 9),
    ("Produto com defeito", "product", "phone", "rui@example.com", "+5511944443333", 3),
]
PAGES = [("protocols", "/console/protocols?phone=%2B5511987654321"), ("protocol", None),
         ("outbox", "/console/outbox"), ("reports", "/console/reports?from=2026-11-01&to=2026-11-30"),
         ("template", "/console/templates/protocol_opened")]


async def seed(runtime) -> str:
    first = ""
    for i, (subject, category, channel, email, phone, days_ago) in enumerate(SAMPLES):
        opened = NOW - timedelta(days=days_ago)
        data = OpenedData.model_validate({"subject": subject, "category": category, "channel": channel,
                                          "consumer": {"name": "Cliente", "email": email, "phone": phone},
                                          "opened_at": opened.isoformat()})
        body = (await runtime.service.handle(IncomingEvent("urn:demo:crm", f"s{i}", "protocol.opened", None, data),
                                             received_at=NOW)).body
        first = first or body["protocol"]["number"]
        if i == 1:
            await runtime.service.handle(IncomingEvent(
                "urn:demo:crm", f"r{i}", "protocol.resolved", None,
                ResolvedData.model_validate({"number": body["protocol"]["number"], "resolution": "Entregue",
                                             "resolved_at": (opened + timedelta(days=3)).isoformat()})),
                received_at=NOW)
    async with runtime.db.write() as session:
        sms = (await session.scalars(select(Notification).where(Notification.channel == "sms"))).first()
        await session.execute(update(Notification).where(Notification.id == sms.id).values(
            status="dead", error_code="30003", last_error="Unreachable destination handset", attempts=9))
    return first


async def main() -> int:
    chromium = find_chromium("console_screenshots")
    if chromium is None:
        return 2

    async def seeded(runtime) -> tuple[str, str]:  # type: ignore[no-untyped-def]
        return await seed(runtime), await keys.create_key(runtime.db, "operadora", ["admin"], now=NOW)

    OUT.mkdir(parents=True, exist_ok=True)
    async with served_gateway(NOW, seeded) as (base, (number, key)), async_playwright() as p:
        browser = await launch(p, chromium)
        page = await (await browser.new_context(locale="pt-BR", viewport={"width": 1280, "height": 860})).new_page()
        await page.goto(f"{base}/console/sign-in")
        await page.screenshot(path=OUT / "sign-in.png")
        await page.locator("#key").fill(key)
        await page.locator("#key").press("Enter")
        await page.wait_for_url("**/console/protocols")
        for name, path in PAGES:
            await page.goto(base + (path or f"/console/protocols/{number}"))
            await page.screenshot(path=OUT / f"{name}.png", full_page=name != "protocol")
        await browser.close()
    print(f"screenshots in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
