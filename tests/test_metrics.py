"""/metrics: sends by outcome, latencies, provider errors, the outbox at scrape time, sweeps."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.config import Settings
from gateway.delivery.admin import outbox_stats
from gateway.delivery.channels.base import Message, Receipt
from gateway.delivery.errors import PermanentDeliveryError
from gateway.observability import Metrics
from gateway.protocols.schemas import OpenedData
from gateway.protocols.service import IncomingEvent
from gateway.store.models import Notification
from tests.helpers import opened_event

T0 = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)


class Refusing:
    """An email transport whose server refuses every recipient for good."""

    async def send(self, message: Message) -> Receipt:
        raise PermanentDeliveryError("550 5.1.1 mailbox unavailable", code="550")

    async def aclose(self) -> None:
        pass


class Accepting:
    async def send(self, message: Message) -> Receipt:
        return Receipt(provider_id=f"id-{message.notification_id}")

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def gw(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings, transports={"email": Refusing(), "sms": Accepting()}, clock=lambda: T0)
    await prepare(runtime)
    yield runtime
    await runtime.aclose()


async def open_protocols(runtime: Runtime, count: int) -> None:
    for i in range(count):
        event = opened_event(f"m{i}")
        await runtime.service.handle(IncomingEvent(source="urn:test:crm", id=f"m{i}", type="protocol.opened",
                                                   time=T0, data=OpenedData.model_validate(event["data"])),
                                     received_at=T0)


def value(text: str, name: str, **labels: str) -> float | None:
    """A sample's value in the exposition text, labels in any order."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if found == labels:
            return float(match[3])
    return None


async def scrape(runtime: Runtime) -> str:
    async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        return await response.text()


async def test_sends_by_channel_template_and_outcome_and_provider_errors(gw: Runtime) -> None:
    await open_protocols(gw, 2)
    await gw.dispatcher.run_until_idle()
    text = await scrape(gw)
    assert value(text, "gateway_notifications_total", channel="sms", template="protocol_opened", status="sent") == 2
    assert value(text, "gateway_notifications_total", channel="email", template="protocol_opened",
                 status="failed") == 2
    assert value(text, "gateway_provider_errors_total", channel="email", code="550") == 2
    assert value(text, "gateway_send_seconds_count", channel="sms") == 2
    assert value(text, "gateway_event_to_send_seconds_count", channel="sms") == 2
    assert value(text, "gateway_outbox_depth", status="failed") == 2
    assert value(text, "gateway_outbox_depth", status="sent") == 2


async def test_outbox_depth_oldest_due_and_dead_at_scrape_time(gw: Runtime) -> None:
    await open_protocols(gw, 3)  # six notifications, due at T0
    now = T0 + timedelta(minutes=10)
    async with gw.db.write() as session:
        rows = (await session.scalars(select(Notification.id).order_by(Notification.id))).all()
        plan = [("dead", T0), ("dead", T0),
                ("queued", now - timedelta(seconds=30)),       # due, waited 30 s
                ("unknown", now - timedelta(seconds=120)),     # due, waited 2 min: the oldest
                ("sending", now + timedelta(seconds=50)),      # in flight under its lease: not due
                ("queued", now + timedelta(hours=1))]          # a retry later: not due
        for row_id, (status, due) in zip(rows, plan):
            await session.execute(update(Notification).where(Notification.id == row_id)
                                  .values(status=status, next_attempt_at=due))
    async with gw.db.read() as session:
        stats = await outbox_stats(session, now=now)
    assert stats.dead == 2 and stats.oldest_due_seconds == 120.0
    assert stats.depth["queued"] == 2 and stats.depth["delivered"] == 0 and stats.depth["unknown"] == 1

    async with gw.db.write() as session:  # an expired lease (its worker died) is due too
        await session.execute(update(Notification).where(Notification.status == "sending")
                              .values(next_attempt_at=now - timedelta(seconds=300)))
    async with gw.db.read() as session:
        assert (await outbox_stats(session, now=now)).oldest_due_seconds == 300.0

    text = await scrape(gw)
    assert value(text, "gateway_outbox_dead") == 2 and value(text, "gateway_outbox_depth", status="dead") == 2
    async with gw.db.write() as session:  # operations requeue the dead: the gauges follow, none stays stale
        await session.execute(update(Notification).where(Notification.status.in_(("dead", "unknown", "sending")))
                              .values(status="queued", next_attempt_at=T0 + timedelta(days=1)))
    text = await scrape(gw)
    assert value(text, "gateway_outbox_dead") == 0 and value(text, "gateway_outbox_depth", status="dead") == 0
    assert value(text, "gateway_outbox_depth", status="unknown") == 0


async def test_nothing_due_means_zero_not_the_last_value(gw: Runtime) -> None:
    gw.metrics.outbox_oldest_due_seconds.set(999)
    text = await scrape(gw)  # an empty outbox
    assert value(text, "gateway_outbox_oldest_due_seconds") == 0
    assert value(text, "gateway_outbox_depth", status="queued") == 0


def test_the_sweep_hook() -> None:
    metrics = Metrics()
    with metrics.time_sweep("deadline_reminders") as run:
        run.items = 4
    with pytest.raises(RuntimeError), metrics.time_sweep("deadline_reminders"):
        raise RuntimeError("database went away")
    metrics.observe_sweep("retention", seconds=2.5, items=1, finished_at=T0)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in metrics.registry.collect() for s in family.samples}
    assert samples[("gateway_sweep_runs_total", (("outcome", "ok"), ("sweep", "deadline_reminders")))] == 1
    assert samples[("gateway_sweep_runs_total", (("outcome", "error"), ("sweep", "deadline_reminders")))] == 1
    assert samples[("gateway_sweep_seconds_count", (("sweep", "deadline_reminders"),))] == 2
    assert samples[("gateway_sweep_seconds_sum", (("sweep", "retention"),))] == 2.5
    assert samples[("gateway_sweep_items_total", (("sweep", "deadline_reminders"),))] == 4
    assert samples[("gateway_sweep_last_success_timestamp_seconds", (("sweep", "retention"),))] == T0.timestamp()


def test_a_remembered_child_is_the_metrics_own() -> None:
    """Metrics.child hands out the child `labels()` would, once asked: counts through either add up,
    and two metrics, or two sets of labels, never share one."""
    metrics = Metrics()
    sent = metrics.child(metrics.notifications, "sms", "protocol_opened", "sent")
    assert sent is metrics.notifications.labels("sms", "protocol_opened", "sent")
    assert metrics.child(metrics.notifications, "sms", "protocol_opened", "sent") is sent
    sent.inc()
    metrics.notifications.labels("sms", "protocol_opened", "sent").inc()
    metrics.child(metrics.notifications, "sms", "protocol_opened", "failed").inc()
    metrics.child(metrics.provider_sends, "sms", "protocol_opened", "sent").inc(5)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in metrics.registry.collect() for s in family.samples}
    labels = (("channel", "sms"), ("status", "sent"), ("template", "protocol_opened"))
    assert samples[("gateway_notifications_total", labels)] == 2
    assert samples[("gateway_notifications_total", (*labels[:1], ("status", "failed"), labels[2]))] == 1
    assert samples[("gateway_provider_sends_total",
                    (("channel", "sms"), ("outcome", "sent"), ("provider", "protocol_opened")))] == 5
