"""The consumer's page on a phone, for the README: `.venv/bin/python scripts/consumer_page_screenshot.py`.

Starts the gateway in a temporary folder, opens a protocol, answers it, and has Debian's
chromium (through Playwright, as the tests do) photograph the page at 360 px into
docs/consumer-page.png. Needs `make install-test` (Playwright, chromium).
"""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from playwright.async_api import async_playwright
from sqlalchemy import select

from gateway.protocols.schemas import OpenedData, ResolvedData, UpdatedData
from gateway.protocols.service import IncomingEvent
from gateway.store.models import Notification
from screenshot_gateway import find_chromium, launch, served_gateway  # scripts/, beside this file

OUT = Path(__file__).resolve().parent.parent / "docs" / "consumer-page.png"
NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)  # a fixed "now": the picture does not change by the day


async def seed(runtime) -> str:  # type: ignore[no-untyped-def]
    opened = NOW - timedelta(days=8)
    data = OpenedData.model_validate({"subject": "Cobrança indevida na fatura de outubro", "category": "billing",
                                      "channel": "phone", "opened_at": opened.isoformat(),
                                      "consumer": {"name": "Maria Silva", "email": "maria@example.com",
                                                   "phone": "+5511987654321"}})
    body = (await runtime.service.handle(IncomingEvent("urn:demo:crm", "o1", "protocol.opened", None, data),
                                         received_at=opened)).body
    number = body["protocol"]["number"]
    await runtime.service.handle(IncomingEvent(
        "urn:demo:crm", "u1", "protocol.updated", opened + timedelta(days=2), UpdatedData.model_validate(
            {"number": number, "message": "Enviamos a sua contestação à área financeira."})),
        received_at=opened + timedelta(days=2))
    await runtime.service.handle(IncomingEvent("urn:demo:crm", "r1", "protocol.resolved", None, ResolvedData.model_validate(
        {"number": number, "resolution": "Confirmamos que a cobrança de R$ 39,90 foi indevida. O valor será "
                                         "creditado na fatura de dezembro.",
         "resolved_at": (opened + timedelta(days=4)).isoformat()})), received_at=opened + timedelta(days=4))
    async with runtime.db.read() as session:
        email = (await session.scalars(select(Notification).where(Notification.channel == "email"))).first()
    return re.search(r"/p/([A-Za-z0-9_-]{22})", email.body_text).group(1)  # type: ignore[union-attr]


async def main() -> int:
    chromium = find_chromium("consumer_page_screenshot")
    if chromium is None:
        return 2
    async with served_gateway(NOW, seed, email={"reply_to": "sac@acme.example"},
                              company={"name": "Acme Telecom"}) as (base, token), async_playwright() as p:
        browser = await launch(p, chromium)
        context = await browser.new_context(locale="pt-BR", viewport={"width": 360, "height": 740},
                                            device_scale_factor=2, is_mobile=True)
        page = await context.new_page()
        await page.goto(f"{base}/p/{token}")
        await page.screenshot(path=OUT, full_page=True)
        await browser.close()
    print(f"screenshot in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
