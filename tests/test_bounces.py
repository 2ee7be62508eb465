"""Bounces: a return path unique to each email and unforgeable, RFC 3464 DSNs read, and the
listener (real aiosmtpd, spoken to by the real aiosmtplib) that makes a notification
`undelivered` and starts the fallback. The DSNs in tests/samples are written to RFC 3464 in
the forms Postfix and Exim send."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import aiosmtplib
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.cli import main
from gateway.config import ConfigError, load_settings
from gateway.delivery.dsn import failures
from gateway.delivery.verp import ReturnPaths
from gateway.protocols.schemas import OpenedData
from gateway.protocols.service import IncomingEvent
from gateway.store.models import Notification, ProviderCallback
from tests.fakes.smtp_sink import SMTPSink
from tests.helpers import FixedClock, make_settings, opened_event

T0 = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)
SAMPLES = Path(__file__).parent / "samples"
SECRET = "a-secret-of-at-least-16-chars"
DOMAIN = "bounce.example.com"
RECIPIENT = "maria@example.com"


def sample(name: str, return_path: str, recipient: str = RECIPIENT) -> bytes:
    text = (SAMPLES / name).read_text(encoding="utf-8")
    return text.replace("{return_path}", return_path).replace("{recipient}", recipient).encode()


# Return paths


def test_a_return_path_names_its_notification_and_nothing_personal() -> None:
    paths = ReturnPaths(DOMAIN, SECRET)
    address = paths.for_notification(123)
    assert address.startswith("bounces+n123.") and address.endswith("@bounce.example.com")
    assert paths.notification_of(address) == 123
    assert paths.notification_of(f"<{address.upper()}>") == 123  # MTAs may change the case
    assert "maria" not in address


def test_a_forged_or_borrowed_return_path_names_no_notification() -> None:
    paths = ReturnPaths(DOMAIN, SECRET)
    token = paths.for_notification(123).split(".", 1)[1].split("@")[0]
    assert paths.notification_of(f"bounces+n124.{token}@{DOMAIN}") is None  # another id, a copied token
    assert paths.notification_of(f"bounces+n123.{'a' * 16}@{DOMAIN}") is None  # a guess
    assert paths.notification_of(paths.for_notification(123).replace(DOMAIN, "other.example")) is None
    assert ReturnPaths(DOMAIN, SECRET + "x").notification_of(paths.for_notification(123)) is None


def test_a_bounce_domain_without_a_secret_stops_start_up_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, discover=False, overrides={"email": {"bounces": {"domain": DOMAIN}}})
    assert str(caught.value).startswith("settings: email.bounces.secret: required when domain is set")
    assert "\n" not in str(caught.value)


# Reading DSNs


def test_a_postfix_dsn_gives_the_status_and_the_remote_words() -> None:
    [failure] = failures(sample("dsn_postfix_5.1.1.eml", "bounces+n1.x@" + DOMAIN))
    assert failure.status == "5.1.1" and failure.remote_mta == "mail.example.com"
    assert failure.final_recipient == RECIPIENT
    assert failure.diagnostic is not None and failure.diagnostic.startswith("smtp; 550 5.1.1 <maria@example.com>")


def test_an_exim_dsn_a_delay_and_an_auto_reply() -> None:
    [failure] = failures(sample("dsn_exim_5.2.2.eml", "r@" + DOMAIN))
    assert failure.status == "5.2.2" and failure.diagnostic == "smtp; 552 5.2.2 Mailbox full"
    assert failures(sample("dsn_delayed.eml", "r@" + DOMAIN)) == []  # news, not an outcome
    assert failures(b"From: maria@example.com\r\nSubject: Out of office\r\n\r\nBack on Monday.\r\n") is None


# The listener, end to end


@pytest.fixture
async def gw(tmp_path: Path, db_url: str, sink: SMTPSink) -> AsyncIterator[Runtime]:
    settings = make_settings(tmp_path, db_url, email={
        "transport": "smtp", "smtp": {"host": sink.host, "port": sink.port, "starttls": False},
        "bounces": {"domain": DOMAIN, "secret": SECRET, "port": 0}})
    runtime = build_runtime(settings, clock=FixedClock(T0))
    await prepare(runtime)
    assert runtime.bounces is not None
    await runtime.bounces.start()
    yield runtime
    await runtime.bounces.stop()
    await runtime.aclose()


async def sent_email(runtime: Runtime, sink: SMTPSink) -> tuple[int, str]:
    event = opened_event("b1")
    await runtime.service.handle(IncomingEvent(
        source="urn:test:crm", id="b1", type="protocol.opened", time=T0,
        data=OpenedData.model_validate({**event["data"], "notify": ["email"]})), received_at=T0)
    await runtime.dispatcher.run_until_idle()
    async with runtime.db.read() as session:
        email = await session.scalar(select(Notification).where(Notification.channel == "email"))
    assert email.status == "sent"
    return email.id, sink.received[-1].mail_from


async def bounce(runtime: Runtime, raw: bytes, return_path: str) -> None:
    assert runtime.bounces is not None and runtime.bounces.port
    # MAIL FROM:<>, as an MTA sends a bounce (aiosmtplib.send insists on a sender).
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=runtime.bounces.port, start_tls=False)
    async with client:
        await client.mail("")
        try:
            await client.rcpt(return_path)
        except aiosmtplib.SMTPRecipientRefused as exc:
            raise aiosmtplib.SMTPRecipientsRefused([exc]) from exc
        await client.data(raw)


async def test_a_dsn_to_an_emails_return_path_makes_it_undelivered_and_falls_back_to_sms(
        gw: Runtime, sink: SMTPSink, tmp_path: Path) -> None:
    email_id, mail_from = await sent_email(gw, sink)
    assert mail_from == ReturnPaths(DOMAIN, SECRET).for_notification(email_id)  # MAIL FROM is its own
    await bounce(gw, sample("dsn_postfix_5.1.1.eml", mail_from), mail_from)
    async with gw.db.read() as session:
        email = await session.get(Notification, email_id)
        sms = await session.scalar(select(Notification).where(Notification.channel == "sms"))
        callback = await session.scalar(select(ProviderCallback))
    assert email.status == "undelivered" and email.error_code == "5.1.1"
    assert email.last_error.startswith("bounce: 5.1.1 smtp; 550 5.1.1 <m***@example.com>")
    assert callback.notification_id == email_id and callback.status == "bounced"
    assert "maria@" not in str(callback.payload)  # the remote words are kept, the address masked
    assert sms is not None and sms.fallback_of == email_id and sms.reason.startswith("fallback: email bounced (5.1.1)")
    await gw.dispatcher.run_until_idle()
    assert "+5511987654321" in (tmp_path / "sms.jsonl").read_text()


async def test_a_forged_return_path_is_refused_at_rcpt_and_changes_nothing(gw: Runtime, sink: SMTPSink) -> None:
    email_id, mail_from = await sent_email(gw, sink)
    forged = f"bounces+n{email_id}.{'b' * 16}@{DOMAIN}"
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await bounce(gw, sample("dsn_postfix_5.1.1.eml", forged), forged)
    assert refused.value.recipients[0].code == 550
    await bounce(gw, sample("dsn_delayed.eml", mail_from), mail_from)  # accepted, and only news
    async with gw.db.read() as session:
        email = await session.get(Notification, email_id)
    assert email.status == "sent"


async def test_the_listener_speaks_lmtp_when_asked(tmp_path: Path, sqlite_url: str, sink: SMTPSink) -> None:
    settings = make_settings(tmp_path, sqlite_url, email={
        "transport": "smtp", "smtp": {"host": sink.host, "port": sink.port, "starttls": False},
        "bounces": {"domain": DOMAIN, "secret": SECRET, "port": 0, "protocol": "lmtp"}})
    runtime = build_runtime(settings, clock=FixedClock(T0))
    await prepare(runtime)
    assert runtime.bounces is not None
    await runtime.bounces.start()
    try:
        email_id, mail_from = await sent_email(runtime, sink)
        reader, writer = await asyncio.open_connection("127.0.0.1", runtime.bounces.port)
        replies = []

        async def say(line: bytes) -> None:
            writer.write(line + b"\r\n")
            await writer.drain()
            while True:  # multi-line replies go on while the fourth byte is "-"
                reply = await reader.readline()
                if reply[3:4] != b"-":
                    replies.append(reply[:3])
                    return

        await reader.readline()  # the greeting
        await say(b"LHLO postfix.example")
        await say(b"MAIL FROM:<>")
        await say(f"RCPT TO:<{mail_from}>".encode())
        await say(b"DATA")
        await say(sample("dsn_postfix_5.1.1.eml", mail_from).replace(b"\n", b"\r\n") + b"\r\n.")
        await say(b"QUIT")
        writer.close()
        assert replies == [b"250", b"250", b"250", b"354", b"250", b"221"]
        async with runtime.db.read() as session:
            assert (await session.get(Notification, email_id)).status == "undelivered"
    finally:
        await runtime.bounces.stop()
        await runtime.aclose()


async def test_the_daemon_starts_the_listener_on_loopback_and_stops_it(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, email={"bounces": {"domain": DOMAIN, "secret": SECRET, "port": 0}})
    assert settings.email.bounces.host == "127.0.0.1"  # the default: only this machine's MTA reaches it
    runtime = build_runtime(settings, clock=FixedClock(T0))
    await prepare(runtime)
    assert runtime.bounces is not None
    async with TestClient(TestServer(web_app(runtime))):
        port = runtime.bounces.port
        assert port
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


def test_a_taken_bounce_port_stops_start_up_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = tmp_path / "settings.toml"
        settings.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/gw.db"\n[http]\nport = 0\n'
                            f'[email.bounces]\ndomain = "{DOMAIN}"\nsecret = "{SECRET}"\nport = {port}\n')
        assert main(["--config", str(settings), "run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"email.bounces.port: 127.0.0.1:{port} is already in use by another process")
    assert not (tmp_path / "gw.db").exists()  # stopped before the database was touched
