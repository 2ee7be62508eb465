"""Bounces from a real MTA: the gateway sends through a private Postfix, the recipient's mail
server (aiosmtpd) refuses the mailbox with 550 5.1.1, Postfix writes its own RFC 3464 DSN to
the email's return path and delivers it to the gateway's bounce listener; the notification
becomes `undelivered` and the SMS fallback is queued. Slow (`make test-all`, which installs
postfix); the fast suite reads DSNs in Postfix's and Exim's form (test_bounces.py)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.app import build_runtime, prepare
from gateway.protocols.schemas import OpenedData
from gateway.protocols.service import IncomingEvent
from gateway.store.models import Notification, ProviderCallback
from tests.fakes.smtp_sink import SMTPSink, free_port
from tests.helpers import FixedClock, make_settings, opened_event
from tests.mta import PrivatePostfix

pytestmark = pytest.mark.slow

T0 = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)
WAIT = 60.0  # seconds for Postfix to try the mailbox, write the DSN and deliver it


async def reachable(port: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            assert loop.time() < deadline, f"nothing listens on {port}"
            await asyncio.sleep(0.1)


async def test_a_dsn_written_by_postfix_makes_the_email_undelivered(tmp_path: Path, sqlite_url: str) -> None:
    assert shutil.which("postfix"), "postfix is missing: make install-mta (make test-all runs it)"
    listener, relay = free_port(), free_port()
    async with SMTPSink() as mailbox_server:
        mailbox_server.refuse(lambda rcpt: f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown")
        settings = make_settings(tmp_path, sqlite_url, email={
            "transport": "smtp", "smtp": {"host": "127.0.0.1", "port": relay, "starttls": False},
            "bounces": {"domain": "bounce.example.com", "secret": "a-secret-of-at-least-16-chars", "port": listener}})
        runtime = build_runtime(settings, clock=FixedClock(T0))
        await prepare(runtime)
        assert runtime.bounces is not None
        await runtime.bounces.start()
        try:
            with PrivatePostfix(relay, {"example.com": mailbox_server.port, "bounce.example.com": listener}) as mta:
                await reachable(relay)
                event = opened_event("pf1")
                await runtime.service.handle(IncomingEvent(
                    source="urn:test:crm", id="pf1", type="protocol.opened", time=T0,
                    data=OpenedData.model_validate({**event["data"], "notify": ["email"]})), received_at=T0)
                await runtime.dispatcher.run_until_idle()
                loop = asyncio.get_running_loop()
                deadline = loop.time() + WAIT
                while True:
                    async with runtime.db.read() as session:
                        email = await session.scalar(select(Notification).where(Notification.channel == "email"))
                    if email.status != "sent":
                        break
                    assert loop.time() < deadline, f"no bounce arrived; Postfix's log:\n{mta.log()[-3000:]}"
                    await asyncio.sleep(0.2)
        finally:
            await runtime.bounces.stop()
            await runtime.aclose()
    assert email.status == "undelivered" and email.error_code == "5.1.1"
    assert "Recipient address rejected: User unknown" in email.last_error and "maria@" not in email.last_error
    async with runtime.db.read() as session:
        callback = await session.scalar(select(ProviderCallback))
        sms = await session.scalar(select(Notification).where(Notification.channel == "sms"))
    assert callback.payload["remote_mta"] == "127.0.0.1" and callback.payload["status"] == "5.1.1"
    assert sms is not None and sms.fallback_of == email.id
