"""Several named providers per channel: settings, failover in order, a breaker per provider,
the provider in the record (attempts, export, outbox list), /readyz and /metrics.

Real parts: two aiosmtpd sinks, two accounts on the Twilio fake, the real SDK and SMTP client."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.cli import main
from gateway.config import ConfigError, load_settings
from gateway.delivery.admin import list_notifications
from gateway.delivery.breaker import CircuitBreaker
from gateway.delivery.channels.base import Message, Receipt
from gateway.delivery.error_codes import readable_code
from gateway.delivery.errors import (CircuitOpenError, DeliveryError, PermanentDeliveryError, TransientDeliveryError,
                                     UnknownOutcomeError)
from gateway.delivery.failover import FailoverTransport, Provider
from gateway.observability import Metrics
from gateway.protocols.export import export_protocol
from gateway.protocols.schemas import OpenedData
from gateway.protocols.service import IncomingEvent
from gateway.store.models import Attempt, Notification
from tests.fakes.smtp_sink import SMTPSink, free_port
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import FixedClock, make_settings, message_sid, opened_event

T0 = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)
SENDER = "Atendimento <atendimento@example.com>"


def relay(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "host": "127.0.0.1", "port": port, "starttls": False, "timeout": "5s"}


# Settings


def test_one_table_is_one_provider_and_a_list_keeps_its_order() -> None:
    one = load_settings(environ={}, discover=False, overrides={"email": {"transport": "smtp", "from": SENDER}})
    assert [r.name for r in one.email.relays] == ["smtp"] and one.email.smtp.port == 587
    two = load_settings(environ={}, discover=False, overrides={
        "email": {"transport": "smtp", "from": SENDER, "smtp": [relay("primary", 25), relay("backup", 2525)]}})
    assert [(r.name, r.port) for r in two.email.relays] == [("primary", 25), ("backup", 2525)]


def test_a_providers_secret_comes_from_the_environment_by_its_name(tmp_path: Path) -> None:
    file = tmp_path / "settings.toml"
    file.write_text('[email]\ntransport = "smtp"\nfrom = "a@example.com"\n'
                    '[[email.smtp]]\nname = "primary"\nhost = "a.example"\n'
                    '[[email.smtp]]\nname = "backup"\nhost = "b.example"\nusername = "u"\n')
    s = load_settings(file, environ={"GATEWAY_EMAIL__SMTP__BACKUP__PASSWORD": "hunter2"}, discover=False)
    primary, backup = s.email.relays
    assert primary.password is None and backup.password is not None
    assert backup.password.get_secret_value() == "hunter2" and backup.host == "b.example"
    with pytest.raises(ConfigError) as caught:
        load_settings(file, environ={"GATEWAY_EMAIL__SMTP__SPARE__PASSWORD": "x"}, discover=False)
    assert str(caught.value).startswith("settings: email.smtp.spare: no provider named 'spare'")


def test_two_providers_with_one_name_stop_start_up_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, discover=False, overrides={
            "email": {"transport": "smtp", "from": SENDER, "smtp": [relay("a", 25), relay("a", 26)]}})
    assert "\n" not in str(caught.value) and "email.smtp" in str(caught.value) and "twice: a" in str(caught.value)


def test_every_twilio_account_of_a_list_needs_its_token() -> None:
    account = {"name": "main", "account_sid": "AC1", "auth_token": "t", "from": "+15005550006"}
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, discover=False, overrides={"sms": {"transport": "twilio", "twilio": [
            account, {"name": "spare", "account_sid": "AC2", "from": "+15005550007"}]}})
    assert "sms.twilio.1.auth_token: required" in str(caught.value)


# The breaker, on a clock the test moves


def test_the_breaker_opens_after_failures_in_a_row_probes_once_half_open_and_closes_on_success() -> None:
    clock = FixedClock(T0)
    breaker = CircuitBreaker(failures=3, cooldown=60, clock=clock)
    breaker.failed(), breaker.failed(), breaker.succeeded(), breaker.failed(), breaker.failed()
    assert breaker.state == "closed"  # a success in between resets the count
    breaker.failed()
    assert breaker.state == "open" and not breaker.allow()
    clock.advance(timedelta(seconds=59))
    assert not breaker.allow()
    clock.advance(timedelta(seconds=1))
    assert breaker.state == "half_open" and breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failed()  # the probe failed: open for another cool-down
    assert breaker.state == "open"
    clock.advance(timedelta(seconds=60))
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


# Email: two real relays


@pytest.fixture
async def backup() -> AsyncIterator[SMTPSink]:
    async with SMTPSink() as s:
        yield s


async def open_protocols(runtime: Runtime, count: int, start: int = 0) -> list[str]:
    numbers = []
    for i in range(start, start + count):
        event = opened_event(f"p{i}")
        answer = await runtime.service.handle(
            IncomingEvent(source="urn:test:crm", id=f"p{i}", type="protocol.opened", time=T0,
                          data=OpenedData.model_validate({**event["data"], "notify": ["email"]})), received_at=T0)
        numbers.append(answer.body["protocol"]["number"])
    return numbers


async def email_runtime(tmp_path: Path, db_url: str, relays: list[dict[str, Any]], clock: FixedClock) -> Runtime:
    settings = make_settings(tmp_path, db_url, email={"transport": "smtp", "smtp": relays},
                             dispatch={"breaker_failures": 2, "breaker_cooldown": "60s", "workers": 1})
    runtime = build_runtime(settings, clock=clock)
    await prepare(runtime)
    return runtime


async def test_a_refusing_relay_fails_over_to_the_next_and_the_record_names_both(
        tmp_path: Path, db_url: str, sink: SMTPSink, backup: SMTPSink, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    sink.refuse(lambda rcpt: "451 4.3.0 try later")
    runtime = await email_runtime(tmp_path, db_url, [relay("primary", sink.port), relay("backup", backup.port)],
                                  FixedClock(T0))
    try:
        [number] = await open_protocols(runtime, 1)
        await runtime.dispatcher.run_until_idle()
        assert len(backup.messages) == 1 and not sink.messages
        async with runtime.db.read() as session:
            n = await session.scalar(select(Notification))
            tries = (await session.scalars(select(Attempt).order_by(Attempt.id))).all()
            [item] = await list_notifications(session, statuses=("sent",))
        assert n.status == "sent" and n.provider == "backup"
        assert [(a.provider, a.outcome, a.error_code, a.attempt) for a in tries] == [
            ("primary", "failed_over", "451", 1), ("backup", "sent", None, 1)]
        assert item.provider == "backup"
        export = await export_protocol(runtime.db, number, now=T0)
        attempts = export["record"]["notifications"][0]["delivery"]["attempts"]
        assert [a["provider"] for a in attempts] == ["primary", "backup"]
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("GATEWAY_DATABASE__URL", runtime.settings.database_url)
        assert await asyncio.to_thread(main, ["outbox", "list", "--status", "sent"]) == 0
        header, row = capsys.readouterr().out.splitlines()
        assert header.split()[4] == "PROVIDER" and row.split()[4] == "backup"
    finally:
        await runtime.aclose()


async def test_a_dead_relay_opens_its_breaker_and_is_probed_again_after_the_cool_down(
        tmp_path: Path, sqlite_url: str, backup: SMTPSink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.delivery.failover")
    clock = FixedClock(T0)
    down = SMTPSink()  # its port, nothing listening yet: connection refused
    runtime = await email_runtime(tmp_path, sqlite_url, [relay("primary", down.port), relay("backup", backup.port)],
                                  clock)
    try:
        await open_protocols(runtime, 4)
        await runtime.dispatcher.run_until_idle()
        assert len(backup.messages) == 4
        email = runtime.transports["email"]
        assert isinstance(email, FailoverTransport) and email.states() == {"primary": "open", "backup": "closed"}
        async with runtime.db.read() as session:
            tries = (await session.scalars(select(Attempt).where(Attempt.outcome == "failed_over"))).all()
        assert len(tries) == 2  # the breaker opened after two: the last two went straight to the backup
        await down.__aenter__()  # the primary comes back
        try:
            clock.advance(timedelta(seconds=60))
            assert email.states()["primary"] == "half_open"
            await open_protocols(runtime, 1, start=10)
            await runtime.dispatcher.run_until_idle()
            assert len(down.messages) == 1 and email.states()["primary"] == "closed"
            actions = [(r.action, r.provider) for r in caplog.records if getattr(r, "action", "").startswith("provider_")]
            assert actions == [("provider_breaker_opened", "primary"), ("provider_breaker_closed", "primary")]
        finally:
            await down.__aexit__()
    finally:
        await runtime.aclose()


async def test_readyz_and_metrics_name_each_provider_with_readable_codes(
        tmp_path: Path, sqlite_url: str, backup: SMTPSink) -> None:
    down_port = free_port()
    runtime = await email_runtime(tmp_path, sqlite_url, [relay("primary", down_port), relay("backup", backup.port)],
                                  FixedClock(T0))
    backup.refuse(lambda rcpt: "550 5.1.1 no such user" if rcpt.startswith("maria") else None)
    async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
        await open_protocols(runtime, 3)
        await runtime.dispatcher.run_until_idle()
        await runtime.probes.check()
        ready = await (await client.get("/readyz")).json()
        providers = ready["providers"]["email"]
        assert providers["primary"]["breaker"] == "open" and providers["backup"]["breaker"] == "closed"
        assert "primary" not in ready["checks"]["transports"]  # one relay working is enough to be ready
        assert providers["primary"]["probe"] != "ok" and providers["backup"]["probe"] == "ok"
        text = await (await client.get("/metrics")).text()
    assert value(text, "gateway_provider_failures_total", channel="email", provider="primary",
                 code="connection_refused") == 2
    assert value(text, "gateway_provider_failures_total", channel="email", provider="backup", code="smtp_550") == 3
    assert value(text, "gateway_provider_sends_total", channel="email", provider="backup", outcome="refused") == 3
    assert value(text, "gateway_provider_breaker_open", channel="email", provider="primary") == 1
    assert value(text, "gateway_provider_breaker_open", channel="email", provider="backup") == 0
    assert "Error" not in "".join(re.findall(r'code="[^"]*"', text))  # no Python class names


def value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not found")


# SMS: two accounts on the Twilio fake


async def test_a_failing_twilio_account_fails_over_to_the_second(tmp_path: Path, sqlite_url: str) -> None:
    async with FakeTwilio() as first, FakeTwilio(account_sid="AC" + "1" * 32, auth_token="second-token") as second:
        first.script(status=500, code=20500)
        accounts = [
            {"name": "main", "account_sid": first.account_sid, "auth_token": first.auth_token,
             "from": "+15005550006", "api_base_url": first.base_url},
            {"name": "spare", "account_sid": second.account_sid, "auth_token": second.auth_token,
             "messaging_service_sid": "MG" + "2" * 32, "api_base_url": second.base_url},
        ]
        settings = make_settings(tmp_path, sqlite_url, sms={"transport": "twilio", "twilio": accounts})
        runtime = build_runtime(settings, clock=FixedClock(T0))
        await prepare(runtime)
        try:
            event = opened_event("s1")
            await runtime.service.handle(IncomingEvent(
                source="urn:test:crm", id="s1", type="protocol.opened", time=T0,
                data=OpenedData.model_validate({**event["data"], "notify": ["sms"]})), received_at=T0)
            await runtime.dispatcher.run_until_idle()
            assert len(first.messages) == 1 and len(second.messages) == 1
            assert second.messages[0].form["MessagingServiceSid"] == "MG" + "2" * 32
            async with runtime.db.read() as session:
                n = await session.scalar(select(Notification))
                tries = (await session.scalars(select(Attempt).order_by(Attempt.id))).all()
            assert n.status == "sent" and n.provider == "spare" and n.provider_id == second.messages[0].sid
            assert [(a.provider, a.outcome, a.error_code) for a in tries] == [
                ("main", "failed_over", "20500"), ("spare", "sent", None)]
            text = runtime.metrics.registry
            assert text.get_sample_value("gateway_provider_failures_total", {
                "channel": "sms", "provider": "main", "code": "twilio_20500"}) == 1
        finally:
            await runtime.aclose()


# The failover's rules, with doubles passed in


class Scripted:
    """A provider double: raises or answers what it is told, and counts its calls."""

    def __init__(self, *outcomes: Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def send(self, message: Message) -> Receipt:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        return Receipt(provider_id=f"id-{self.calls}")

    async def aclose(self) -> None:
        pass


def failover(clock: FixedClock, *transports: Scripted) -> FailoverTransport:
    providers = [Provider(f"p{i}", t, CircuitBreaker(failures=1, cooldown=60, clock=clock))
                 for i, t in enumerate(transports)]
    return FailoverTransport("email", "smtp", providers, Metrics())


MESSAGE = Message(notification_id=1, channel="email", to="maria@example.com", text="x", subject="s")


async def test_a_permanent_refusal_or_an_unknown_outcome_is_not_handed_to_the_next_provider() -> None:
    clock = FixedClock(T0)
    first, second = Scripted(PermanentDeliveryError("550 no such user", code="550")), Scripted()
    with pytest.raises(PermanentDeliveryError) as refused:
        await failover(clock, first, second).send(MESSAGE)
    assert refused.value.provider == "p0" and second.calls == 0  # another relay would refuse it as well
    first, second = Scripted(UnknownOutcomeError("timed out during DATA")), Scripted()
    with pytest.raises(UnknownOutcomeError):
        await failover(clock, first, second).send(MESSAGE)
    assert second.calls == 0  # the message may have left: never two copies at once


async def test_when_every_breaker_is_open_the_send_waits_for_a_cool_down_without_calling_anyone() -> None:
    clock = FixedClock(T0)
    first, second = Scripted(TransientDeliveryError("down"), None), Scripted(TransientDeliveryError("down"))
    transport = failover(clock, first, second)
    with pytest.raises(TransientDeliveryError) as caught:
        await transport.send(MESSAGE)
    assert caught.value.provider == "p1" and [t.provider for t in caught.value.tried] == ["p0"]
    with pytest.raises(CircuitOpenError) as resting:
        await transport.send(MESSAGE)
    assert (first.calls, second.calls) == (1, 1) and readable_code(resting.value, "smtp") == "circuit_open"
    clock.advance(timedelta(seconds=60))
    receipt = await transport.send(MESSAGE)
    assert receipt.provider == "p0" and transport.states() == {"p0": "closed", "p1": "half_open"}


@pytest.mark.parametrize(("error", "code"), [
    (PermanentDeliveryError("550", code="550"), "smtp_550"),
    (TransientDeliveryError("x", code="421"), "smtp_421"),
    (UnknownOutcomeError("x"), "unknown_outcome"),
    (PermanentDeliveryError("no SMTPUTF8"), "refused"),
    (TransientDeliveryError("x"), "unavailable"),
])
def test_error_codes_are_words_people_read(error: DeliveryError, code: str) -> None:
    assert readable_code(error, "smtp") == code


def test_network_causes_are_named_wherever_they_sit_in_the_chain() -> None:
    def raised(cause: BaseException) -> DeliveryError:
        try:
            try:
                raise cause
            except BaseException as inner:
                raise ConnectionError("wrapped") from inner
        except ConnectionError as wrapper:
            error = TransientDeliveryError("x")
            error.__cause__ = wrapper
            return error
    assert readable_code(raised(ConnectionRefusedError(111, "refused")), "smtp") == "connection_refused"
    assert readable_code(raised(TimeoutError()), "twilio") == "timeout"
    assert readable_code(raised(ConnectionResetError()), "smtp") == "connection_lost"


async def test_receipts_for_either_account_are_checked_with_that_accounts_token(tmp_path: Path, sqlite_url: str) -> None:
    first, second = "AC" + "1" * 32, "AC" + "2" * 32
    accounts = [{"name": "main", "account_sid": first, "auth_token": "token-one", "from": "+15005550006"},
                {"name": "spare", "account_sid": second, "auth_token": "token-two", "from": "+15005550007"}]
    settings = make_settings(tmp_path, sqlite_url, sms={"transport": "twilio", "twilio": accounts},
                             http={"public_url": "https://gw.example"})
    runtime = build_runtime(settings, clock=FixedClock(T0))
    await prepare(runtime)
    path = "/v1/webhooks/twilio/status?notification=999"

    async def post(form: dict[str, str], token: str) -> int:
        signature = RequestValidator(token).compute_signature("https://gw.example" + path, form)
        answer = await client.post(path, data=form, headers={"X-Twilio-Signature": signature})
        return answer.status

    client = TestClient(TestServer(web_app(runtime, run_dispatcher=False)))
    async with client:  # the web app closes the runtime on its way out
        receipt = {"MessageSid": message_sid("r1"), "MessageStatus": "delivered"}
        assert await post({**receipt, "AccountSid": second}, "token-two") == 204
        assert await post({**receipt, "AccountSid": first}, "token-one") == 204
        assert await post({**receipt, "AccountSid": second}, "token-one") == 403  # the other account's token
        assert await post({**receipt, "AccountSid": "AC" + "3" * 32}, "token-one") == 403  # not ours at all
        inbound = {"AccountSid": second, "MessageSid": message_sid("i1"), "From": "+5511987654321",
                   "To": "+15005550007", "Body": "PROTOCOLO"}
        signature = RequestValidator("token-two").compute_signature("https://gw.example/v1/webhooks/twilio/inbound",
                                                                     inbound)
        answer = await client.post("/v1/webhooks/twilio/inbound", data=inbound,
                                   headers={"X-Twilio-Signature": signature})
        assert answer.status == 200  # the spare account's number is one of ours
