"""Readiness says what is wrong: a transport that cannot send (probed at start and, cached, by
/readyz), a disk running out under the database or the file transports; and the log says it
too: retries at warning with the provider's words, refusals for good at error.

Real parts: the aiosmtpd server requiring STARTTLS, the Twilio SDK against the fake answering
401, the daemon as a subprocess, real free-space figures from the file system.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import build_runtime, prepare, web_app
from gateway.config import SMTPSettings
from gateway.delivery.channels.smtp import SMTPTransport
from gateway.delivery.errors import TransientDeliveryError
from gateway.delivery.probes import TransportProbes
from gateway.observability import JSONFormatter
from tests.fakes.smtp_sink import SMTPSink
from tests.fakes.twilio_api import FakeTwilio
from tests.fault_helpers import smtp_env
from tests.helpers import admin_key, free_port, make_settings, opened_event
from tests.test_e2e import wait_for
from tests.test_outages import post_events, start
from tests.tls_helpers import make_certificate

SENDER = "gw@example.com"


@pytest.fixture
async def tls_sink(tmp_path: Path) -> Iterator[SMTPSink]:
    """The real aiosmtpd server offering STARTTLS and refusing mail before it (530)."""
    certificate = make_certificate(tmp_path / "tls")
    async with SMTPSink(tls_context=certificate.server_context(), require_starttls=True) as sink:
        yield sink


async def test_a_relay_requiring_starttls_is_a_warning_at_start_a_503_at_readyz_and_retries_say_why(
        tmp_path: Path, sqlite_url: str, tls_sink: SMTPSink) -> None:
    port = free_port()  # email.smtp.starttls = false against a relay that insists on it
    daemon, key = await start(tmp_path, smtp_env(sqlite_url, tls_sink, port, GATEWAY_DISPATCH__RETRY_BASE="100ms",
                                                 GATEWAY_DISPATCH__RETRY_MAX="200ms"))
    try:
        probed = [line for line in daemon.log_lines() if line.get("action") == "transport_probe_failed"]
        assert len(probed) == 1 and probed[0]["level"] == "warning" and probed[0]["channel"] == "email"
        assert "530 Must issue a STARTTLS command first" in probed[0]["error"]
        async with aiohttp.ClientSession() as http, http.get(f"{daemon.url}/readyz") as r:
            assert r.status == 503 and r.content_type == "application/problem+json"
            body = await r.json()
        assert body["checks"]["transports"].startswith("email: the SMTP server 127.0.0.1:")
        assert "530" in body["checks"]["transports"] and "transports: email:" in body["detail"]

        await post_events(daemon, key, [opened_event("tls-1", notify=["email"])])  # accepted: the outbox keeps it
        await wait_for(lambda: sum(1 for line in daemon.log_lines() if line.get("action") == "outbox_retry") >= 2)
    finally:
        assert await daemon.stop() == 0
    retries = [line for line in daemon.log_lines() if line.get("action") == "outbox_retry"]
    assert all(line["level"] == "warning" for line in retries)
    assert all("530 Must issue a STARTTLS command first" in line["error"] for line in retries)
    assert tls_sink.messages == []
    text = daemon.stderr_path.read_text()
    assert "maria@example.com" not in text and "m***@example.com" in text  # the address masked, in "to"


async def test_starttls_asked_of_a_relay_that_does_not_offer_it_fails_the_probe(sink: SMTPSink) -> None:
    transport = SMTPTransport(SMTPSettings(host=sink.host, port=sink.port, starttls=True), SENDER)
    with pytest.raises(TransientDeliveryError, match="STARTTLS extension not supported"):
        await transport.probe()
    plain = SMTPTransport(SMTPSettings(host=sink.host, port=sink.port, starttls=False), SENDER)
    await plain.probe()  # as far as MAIL FROM, then RSET: nothing is sent
    assert sink.received == []
    await transport.aclose()
    await plain.aclose()


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_twilio_refusing_our_credentials_is_a_503_and_the_probe_is_cached(
        tmp_path: Path, sqlite_url: str, twilio: FakeTwilio) -> None:
    settings = make_settings(tmp_path, sqlite_url, sweeps={"enabled": False}, sms={
        "transport": "twilio", "twilio": {"account_sid": twilio.account_sid, "auth_token": "not-the-token",
                                          "from": "+15005550006", "api_base_url": twilio.base_url}})
    runtime = build_runtime(settings)
    ticks = Ticks()
    runtime.probes.clock = ticks
    await prepare(runtime)
    problems = await runtime.probes.check()
    assert problems["sms"] == (f"Twilio at {twilio.base_url} refused our credentials: HTTP 401, error 20003 "
                               "(check sms.twilio.account_sid and .auth_token)")
    assert problems["email"] is None  # the Maildir's folder is writable
    async with TestClient(TestServer(web_app(runtime))) as client:
        for _ in range(5):
            r = await client.get("/readyz")
            assert r.status == 503
            assert (await r.json())["checks"]["transports"].startswith("sms: Twilio at ")
        assert twilio.account_fetches == 1  # cached: five /readyz, one probe
        assert twilio.messages == []

        twilio.auth_token = "not-the-token"  # the operator fixes the token (here: the fake accepts it)
        ticks.now += settings.dispatch.probe_interval  # the answer is now as old as dispatch.probe_interval
        assert (await client.get("/readyz")).status == 503  # answers at once with what it knew...
        await wait_for(lambda: twilio.account_fetches == 2)  # ...and asks again behind the scenes
        await wait_for(lambda: runtime.probes.results["sms"] is None)
        assert (await client.get("/readyz")).status == 200


class Counting:
    def __init__(self) -> None:
        self.probes = 0

    async def probe(self) -> None:
        self.probes += 1

    async def send(self, message):  # pragma: no cover - never sent here
        raise AssertionError

    async def aclose(self) -> None:
        pass


async def test_a_probe_runs_at_most_once_per_interval() -> None:
    ticks, counting = Ticks(), Counting()
    probes = TransportProbes({"email": counting}, every=60, clock=ticks)  # type: ignore[dict-item]
    await probes.check()
    for second in range(0, 60, 5):
        ticks.now = second
        assert probes.problems() == {}
    assert counting.probes == 1
    ticks.now = 60
    probes.problems()
    await wait_for(lambda: counting.probes == 2)
    await probes.aclose()


@pytest.fixture
def dispatcher_log() -> Iterator[io.StringIO]:
    """The dispatcher's log lines as the daemon writes them (JSON, personal data masked)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("gateway.delivery.dispatcher")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_retries_are_warnings_and_refusals_for_good_are_errors_with_the_reason_masked(
        tmp_path: Path, sqlite_url: str, sink: SMTPSink, dispatcher_log: io.StringIO) -> None:
    refusals = {"later@example.com": "451 4.3.0 try later <later@example.com>",
                "never@example.com": "550 5.1.1 <never@example.com>: no such user"}
    sink.refuse(lambda rcpt: refusals.get(rcpt))
    settings = make_settings(tmp_path, sqlite_url, sweeps={"enabled": False}, email={
        "transport": "smtp", "from": SENDER, "smtp": {"host": sink.host, "port": sink.port, "starttls": False}})
    runtime = build_runtime(settings)
    await prepare(runtime)
    headers = {"Authorization": f"Bearer {await admin_key(runtime)}", "Content-Type": "application/cloudevents+json"}
    async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
        for i, address in enumerate(refusals):
            event = opened_event(f"log-{i}", notify=["email"], consumer={"name": "Maria", "email": address})
            r = await client.post("/v1/events", data=json.dumps(event), headers=headers)
            assert r.status == 202, await r.text()
        await runtime.dispatcher.run_until_idle()
    lines = [json.loads(line) for line in dispatcher_log.getvalue().splitlines()]
    by_action = {line["action"]: line for line in lines}
    retry, failed = by_action["outbox_retry"], by_action["outbox_failed"]
    assert retry["level"] == "warning" and "451 4.3.0 try later <l***@example.com>" in retry["error"]
    assert failed["level"] == "error" and "550 5.1.1 <n***@example.com>: no such user" in failed["error"]
    assert "later@example.com" not in dispatcher_log.getvalue() and "never@example.com" not in dispatcher_log.getvalue()


# 9. Free disk


async def test_readyz_is_503_when_free_space_is_under_the_threshold(tmp_path: Path, sqlite_url: str) -> None:
    for threshold, ready in (("1000000GiB", False), ("0", True)):
        settings = make_settings(tmp_path, sqlite_url, sweeps={"enabled": False},
                                 http={"readyz_min_free": threshold})
        runtime = build_runtime(settings)
        await prepare(runtime)
        async with TestClient(TestServer(web_app(runtime))) as client:
            r = await client.get("/readyz")
            body = await r.json()
        if ready:
            assert r.status == 200 and body["checks"]["disk"] == "ok"
            continue
        assert r.status == 503
        disk = body["checks"]["disk"]
        for name, folder in (("database", Path(sqlite_url.split(":///", 1)[1]).parent),
                             ("email", tmp_path / "mail"), ("sms", tmp_path)):
            assert f"{name} {folder}: " in disk
        assert "free, under http.readyz_min_free (1000000.0 GiB)" in disk
