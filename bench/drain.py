"""Scenario 2, drain: how fast the dispatcher empties an outbox of email over SMTP.

The outbox is filled once per database through the service (`ProtocolService.handle`,
one protocol.opened with `notify: ["email"]` per notification, so every message is
rendered from the real templates) into a template database; each round drains a fresh
copy of it. Timed: `Dispatcher.run_until_idle()` with the real `SMTPTransport`
(`pool_size` = K connections) to the sink of bench/sink.py in its own process.

Baseline, same run, same sink: raw aiosmtplib sending the same messages, built before
the clock starts with the gateway's own `build_email` (same headers, same sizes), by K
concurrent senders each reusing one connection (`send_message`). A reference row does
the same but builds each email inside the loop, as any sender must: the gap between the
two is the cost of the stdlib `email` package, the gap to the gateway is the outbox.
All include opening their K connections; none includes QUIT. The order of the variants
turns each round and the report gives the median of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
from sqlalchemy import func, select

from bench.databases import PostgresStore, SQLiteStore
from bench.ingest import NullTransport
from bench.loadgen import opened_event
from bench.progress import Ticker, say
from bench.settings import REPLY_TO, SENDER, bench_settings
from bench.sink import SinkProcess
from gateway.api.cloudevents import to_incoming
from gateway.app import build_runtime
from gateway.config import DispatchSettings
from gateway.delivery.channels.base import Message
from gateway.delivery.channels.email_message import build_email
from gateway.delivery.dispatcher import message_id_for
from gateway.store.installation import installation_key
from gateway.store.database import Database
from gateway.store.models import Notification

Store = SQLiteStore | PostgresStore
PREFILL_TASKS = 8  # concurrent service calls while filling the template (not timed)
PROGRESS_EVERY = 1.0  # seconds between progress lines during a timed drain
SMTP_TIMEOUT = 30.0  # seconds per command, as the gateway's default


async def prefill(url: str, folder: Path, count: int, *, channel: str = "email", templates: Path | None = None) -> None:
    """Queue `count` rendered emails (or SMS, or WhatsApp messages) through the service, as POST /v1/events would."""
    sections = {"templates": {"dir": str(templates)}} if templates else {}
    runtime = build_runtime(bench_settings(folder, url, **sections),
                            transports={"email": NullTransport(), "sms": NullTransport(), "whatsapp": NullTransport()})
    ticker = Ticker(f"{channel} prefill", count)
    queue = iter(range(count))

    async def worker() -> None:
        for n in queue:
            envelope = opened_event(f"prefill-{n}", n)
            envelope["data"]["notify"] = [channel]
            await runtime.service.handle(to_incoming(envelope), received_at=datetime.now(timezone.utc))
            ticker.add()

    try:
        await asyncio.gather(*(worker() for _ in range(PREFILL_TASKS)))
    finally:
        await runtime.aclose()


async def rendered_messages(url: str) -> list[Message]:
    """The queued notifications as the dispatcher hands them to its transport (same Message-ID)."""
    db = Database(url)
    try:
        installation = await db.query(installation_key)  # every Message-ID carries it
        async with db.read() as session:
            rows = (await session.execute(
                select(Notification.id, Notification.recipient, Notification.subject, Notification.body_text,
                       Notification.body_html).where(Notification.channel == "email").order_by(Notification.id)
            )).all()
    finally:
        await db.dispose()
    return [
        Message(notification_id=r.id, channel="email", to=r.recipient, text=r.body_text, subject=r.subject,
                html=r.body_html, message_id=message_id_for(r.id, SENDER, installation), reply_to=REPLY_TO)
        for r in rows
    ]


@contextlib.asynccontextmanager
async def sink_progress(sink: SinkProcess, label: str, total: int) -> AsyncIterator[None]:
    """Say every second how many messages the sink has taken since the block began."""
    start, _ = await sink.count()

    async def tick() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            now, _ = await sink.count()
            say(f"{label}: {now - start}/{total}")

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def figures(database: str, what: str, connections: int, count: int, elapsed: float, received: int,
            size: int, **extra: Any) -> dict[str, Any]:
    return {"scenario": "drain", "database": database, "what": what, "connections": connections, "count": count,
            "elapsed_s": elapsed, "rate": count / elapsed, "sink_received": received,
            "bytes_per_message": size / received if received else 0, **extra}


RAW = "raw aiosmtplib, emails built beforehand"
RAW_BUILDING = "raw aiosmtplib, building each email (build_email)"


async def raw_round(sink: SinkProcess, messages: list[Message], emails: list[EmailMessage] | None, *,
                    connections: int, label: str, database: str) -> dict[str, Any]:
    """K senders, one connection each; `emails` given: send those, else build each from `messages` first."""
    before, before_bytes = await sink.count()
    queue = iter(emails if emails is not None else messages)
    finished: list[float] = []

    async def sender() -> None:
        client = aiosmtplib.SMTP(hostname=sink.host, port=sink.port, start_tls=False, timeout=SMTP_TIMEOUT)
        await client.connect()
        try:
            for item in queue:
                email = item if isinstance(item, EmailMessage) else build_email(item, SENDER)
                await client.send_message(email)
            finished.append(time.perf_counter())
        finally:
            await client.quit()

    async with sink_progress(sink, label, len(messages)):
        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(connections)))
    elapsed = max(finished) - started
    after, after_bytes = await sink.count()
    what, role = (RAW, "baseline") if emails is not None else (RAW_BUILDING, "reference")
    return figures(database, what, connections, len(messages), elapsed, after - before,
                   after_bytes - before_bytes, role=role)


async def gateway_round(store: Store, template: str, folder: Path, sink: SinkProcess, *, connections: int,
                        count: int, workers: int, label: str) -> dict[str, Any]:
    url = await store.clone(template)
    settings = bench_settings(
        folder, url,
        email={"transport": "smtp", "smtp": {"host": sink.host, "port": sink.port, "starttls": False,
                                              "pool_size": connections}},
        dispatch={"workers": workers},
    )
    runtime = build_runtime(settings)
    try:
        before, before_bytes = await sink.count()
        async with sink_progress(sink, label, count):
            started = time.perf_counter()
            await runtime.dispatcher.run_until_idle()
            elapsed = time.perf_counter() - started
        async with runtime.db.read() as session:
            sent = await session.scalar(select(func.count()).where(Notification.status == "sent"))
        after, after_bytes = await sink.count()
    finally:
        await runtime.aclose()
        await store.drop(url)
    if sent != count:
        say(f"{label}: only {sent} of {count} notifications were recorded as sent")
    return figures(store.name, "gateway", connections, count, elapsed, after - before, after_bytes - before_bytes,
                   role="gateway", recorded_sent=sent, workers=workers)


async def run_drain(stores: list[Store], folder: Path, *, notifications: int, connections: int, rounds: int,
                    workers: int | None) -> list[dict[str, Any]]:
    workers = workers or DispatchSettings().workers
    results = []
    async with SinkProcess() as sink:
        for store in stores:
            say(f"drain {store.name}: filling a template outbox with {notifications} emails (not timed)")
            template = await store.template("drain", fill=lambda url: prefill(url, folder, notifications))
            messages = await rendered_messages(template)
            emails = [build_email(m, SENDER) for m in messages]
            variants = ["raw", "gateway", "raw-building"]
            for r in range(1, rounds + 1):
                turn = (r - 1) % len(variants)
                for what in variants[turn:] + variants[:turn]:  # each variant takes each place in turn
                    label = f"drain-{store.name}-k{connections}-r{r}-{what}"
                    say(f"{label}: {notifications} emails over {connections} connections")
                    if what == "gateway":
                        row = await gateway_round(store, template, folder, sink, connections=connections,
                                                  count=notifications, workers=workers, label=label)
                    else:
                        row = await raw_round(sink, messages, emails if what == "raw" else None,
                                              connections=connections, label=label, database=store.name)
                    row["round"] = r
                    say(f"{label}: {row['rate']:.0f} notifications/s ({row['elapsed_s']:.2f} s)")
                    results.append(row)
    return results
