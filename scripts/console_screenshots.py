"""Screenshots of the operations console for the README: `.venv/bin/python scripts/console_screenshots.py`.

Starts the gateway in a temporary folder (SQLite, files for email and SMS), opens a few sample
protocols, fails one SMS for good, and has Debian's chromium (through Playwright, as the tests
do) photograph each page into docs/console/. Needs `make install-test` (Playwright, chromium).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aiohttp import web
from playwright.async_api import async_playwright
from sqlalchemy import select, update

from gateway.api import keys
from gateway.app import build_runtime, prepare, web_app
from gateway.config import load_settings
from gateway.protocols.schemas import OpenedData, ResolvedData
from gateway.protocols.service import IncomingEvent
from gateway.store.models import Notification

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
    chromium = shutil.which("chromium")
    if chromium is None:
        print("console_screenshots: chromium is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="pgw-shots-"))
    settings = load_settings(environ={}, discover=False, overrides={
        "database": {"url": f"sqlite+aiosqlite:///{folder / 'gateway.db'}"}, "sweeps": {"enabled": False},
        "email": {"maildir": str(folder / "mail"), "from": "Atendimento <atendimento@example.com>"},
        "sms": {"file": str(folder / "sms.jsonl")}})
    runtime = build_runtime(settings, clock=lambda: NOW)
    await prepare(runtime)
    number = await seed(runtime)
    key = await keys.create_key(runtime.db, "operadora", ["admin"], now=NOW)
    runner = web.AppRunner(web_app(runtime, run_dispatcher=False), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium,
                                              args=["--no-sandbox"] if os.geteuid() == 0 else [])
            page = await (await browser.new_context(locale="pt-BR", viewport={"width": 1280, "height": 860})
                          ).new_page()
            await page.goto(f"{base}/console/sign-in")
            await page.screenshot(path=OUT / "sign-in.png")
            await page.locator("#key").fill(key)
            await page.locator("#key").press("Enter")
            await page.wait_for_url("**/console/protocols")
            for name, path in PAGES:
                await page.goto(base + (path or f"/console/protocols/{number}"))
                await page.screenshot(path=OUT / f"{name}.png", full_page=name != "protocol")
            await browser.close()
    finally:
        await runner.cleanup()
        await runtime.aclose()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"screenshots in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
