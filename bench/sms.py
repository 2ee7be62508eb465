"""Scenario 4, SMS drain (and scenario "whatsapp", the same for WhatsApp): how fast the
dispatcher empties an outbox of SMS, or of WhatsApp messages, through Twilio's SDK.

WhatsApp messages go as the approved template, as a business-initiated opening does: the bench's
templates give protocol_opened a Content SID, and both the gateway and the raw SDK send
`content_sid` with the message's `content_variables` to `whatsapp:` addresses.

As the email drain (bench/drain.py): the outbox is filled once per database through the
service (one protocol.opened with `notify: ["sms"]` per notification, rendered from the
real templates) into a template database, and each round times
`Dispatcher.run_until_idle()` on a fresh copy, with the real `TwilioTransport` (the
official SDK's async client) pointed at the fake Messages API of bench/twilio_fake.py,
a child process. W dispatcher workers means W sends in flight.

Baseline, same run, same fake: the raw SDK as its documentation shows it,
`Client(sid, token, http_client=AsyncTwilioHttpClient())` and
`await client.messages.create_async(to=..., from_=..., body=..., status_callback=...)`,
the same messages (the rendered bodies read from the outbox, the same status-callback
URL), W concurrent senders. Both build their client inside the timing (the SDK's HTTP
client needs the running loop) and open their connections there. The order turns each
round; after each round the bench checks that the fake received every message.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from bench.databases import PostgresStore, SQLiteStore
from bench.drain import prefill
from bench.progress import say
from bench.settings import bench_settings
from bench.twilio_fake import TwilioFakeProcess
from gateway.app import build_runtime
from gateway.config import PACKAGE_DIR, DispatchSettings, HTTPSettings
from gateway.delivery.channels.base import Message
from gateway.store.database import Database
from gateway.store.models import Notification

Store = SQLiteStore | PostgresStore
FROM = "+15005550006"
WHATSAPP_FROM = "whatsapp:+15005550006"
CONTENT_SID = "HX" + "b" * 32
RAW = "raw Twilio SDK (create_async)"


def whatsapp_templates(folder: Path) -> Path:
    """The shipped templates, protocol_opened with a Content SID in every locale (as a company registers)."""
    templates = folder / "whatsapp-templates"
    if not templates.exists():
        shutil.copytree(PACKAGE_DIR / "templates", templates)
        sids = "\n".join(f'{loc} = "{CONTENT_SID}"' for loc in ("pt-BR", "es", "en", "ca", "eu", "gl"))
        with open(templates / "protocol_opened" / "template.toml", "a", encoding="utf-8") as f:
            f.write(f"\n[whatsapp.content_sid]\n{sids}\n")
    return templates


async def queued(url: str, channel: str) -> list[Message]:
    """The queued messages as the dispatcher hands them to its transport (same body or template, same callback URL)."""
    public_url = HTTPSettings().public_url
    db = Database(url)
    try:
        async with db.read() as session:
            rows = (await session.execute(
                select(Notification.id, Notification.recipient, Notification.body_text, Notification.whatsapp_content)
                .where(Notification.channel == channel).order_by(Notification.id)
            )).all()
    finally:
        await db.dispose()
    return [Message(notification_id=r.id, channel=channel, to=r.recipient, text=r.body_text,
                    status_callback=f"{public_url}/v1/webhooks/twilio/status?notification={r.id}",
                    content_sid=(r.whatsapp_content or {}).get("content_sid"),
                    content_variables=(r.whatsapp_content or {}).get("variables")) for r in rows]


def figures(database: str, what: str, workers: int, count: int, elapsed: float, received: int, size: int,
            scenario: str = "sms", **extra: Any) -> dict[str, Any]:
    return {"scenario": scenario, "database": database, "what": what, "concurrency": workers, "workers": workers,
            "count": count, "elapsed_s": elapsed, "rate": count / elapsed, "fake_received": received,
            "bytes_per_message": size / received if received else 0, **extra}


async def raw_round(fake: TwilioFakeProcess, messages: list[Message], *, workers: int,
                    database: str, channel: str = "sms") -> dict[str, Any]:
    before, before_bytes = await fake.count()
    queue = iter(messages)
    started = time.perf_counter()
    http = AsyncTwilioHttpClient()
    try:
        client = Client(fake.account_sid, fake.auth_token, http_client=http)
        client.api.base_url = fake.base_url

        async def sender() -> None:
            for m in queue:
                if channel == "whatsapp":  # as Twilio's WhatsApp examples send an approved template
                    await client.messages.create_async(
                        to=f"whatsapp:{m.to}", from_=WHATSAPP_FROM, content_sid=m.content_sid,
                        content_variables=json.dumps(m.content_variables, ensure_ascii=False),
                        status_callback=m.status_callback)
                else:
                    await client.messages.create_async(to=m.to, from_=FROM, body=m.text,
                                                       status_callback=m.status_callback)

        await asyncio.gather(*(sender() for _ in range(workers)))
        elapsed = time.perf_counter() - started
    finally:
        await http.close()
    after, after_bytes = await fake.count()
    return figures(database, RAW, workers, len(messages), elapsed, after - before, after_bytes - before_bytes,
                   scenario=channel, role="baseline")


async def gateway_round(store: Store, template: str, folder: Path, fake: TwilioFakeProcess, *, workers: int,
                        count: int, channel: str = "sms") -> dict[str, Any]:
    url = await store.clone(template)
    whatsapp = ({"whatsapp": {"transport": "twilio", "twilio": {"from": WHATSAPP_FROM}},
                 "templates": {"dir": str(whatsapp_templates(folder))}} if channel == "whatsapp" else {})
    settings = bench_settings(
        folder, url,
        sms={"transport": "twilio", "twilio": {"account_sid": fake.account_sid, "auth_token": fake.auth_token,
                                               "from": FROM, "api_base_url": fake.base_url}},
        dispatch={"workers": workers}, **whatsapp,
    )
    runtime = build_runtime(settings)
    try:
        before, before_bytes = await fake.count()
        started = time.perf_counter()
        await runtime.dispatcher.run_until_idle()
        elapsed = time.perf_counter() - started
        async with runtime.db.read() as session:
            sent = await session.scalar(select(func.count()).where(Notification.status == "sent"))
        after, after_bytes = await fake.count()
    finally:
        await runtime.aclose()
        await store.drop(url)
    return figures(store.name, "gateway", workers, count, elapsed, after - before, after_bytes - before_bytes,
                   scenario=channel, role="gateway", recorded_sent=sent)


async def run_sms(stores: list[Store], folder: Path, *, notifications: int, rounds: int,
                  workers: int | None, channel: str = "sms") -> list[dict[str, Any]]:
    workers = workers or DispatchSettings().workers
    what_ = "WhatsApp messages" if channel == "whatsapp" else "SMS"
    templates = whatsapp_templates(folder) if channel == "whatsapp" else None
    results = []
    async with TwilioFakeProcess() as fake:
        for store in stores:
            say(f"{channel} {store.name}: filling a template outbox with {notifications} {what_} (not timed)")
            template = await store.template(channel, fill=lambda url: prefill(url, folder, notifications,
                                                                              channel=channel, templates=templates))
            messages = await queued(template, channel)
            variants = ["raw", "gateway"]
            for r in range(1, rounds + 1):
                turn = (r - 1) % len(variants)
                for what in variants[turn:] + variants[:turn]:
                    label = f"{channel}-{store.name}-w{workers}-r{r}-{what}"
                    say(f"{label}: {notifications} {what_}, {workers} in flight")
                    if what == "gateway":
                        row = await gateway_round(store, template, folder, fake, workers=workers, count=notifications,
                                                  channel=channel)
                    else:
                        row = await raw_round(fake, messages, workers=workers, database=store.name, channel=channel)
                    row["round"] = r
                    _check(label, row)
                    say(f"{label}: {row['rate']:.0f} notifications/s ({row['elapsed_s']:.2f} s)")
                    results.append(row)
    return results


def _check(label: str, row: dict[str, Any]) -> None:
    if row["fake_received"] != row["count"]:
        say(f"{label}: the fake received {row['fake_received']} of {row['count']} messages")
    if row.get("recorded_sent", row["count"]) != row["count"]:
        say(f"{label}: only {row['recorded_sent']} of {row['count']} notifications were recorded as sent")
