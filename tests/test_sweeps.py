"""Deadline sweeps as functions of `at`, on SQLite and PostgreSQL: reminders, overdue alerts,
the digest, quiet hours, opt-outs, catching up, and two sweepers racing on one database."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from gateway.store.database import Database
from gateway.store.models import ConsumerRequest, Notification, OptOut, Protocol, WhatsAppConsent
from gateway.store.sweep_models import SweepMark, SweepRun
from tests.sweep_helpers import (
    Clock,
    Recorder,
    Woken,
    add,
    at,
    count,
    marks,
    notifications,
    protocol_row,
    runner_for,
    schedules_from,
    sweep_settings,
    write_schedule,
)

REMINDER = """
kind = "deadline_reminder"
interval = "15m"
template = "deadline_reminder"
audience = "consumer"
offsets = ["48h", "24h"]
[options]
max_lateness = "6h"
"""
WARNING = """
kind = "deadline_reminder"
interval = "15m"
template = "deadline_warning"
audience = "operations"
offsets = ["24h"]
"""
OVERDUE = """
kind = "overdue_alert"
interval = "15m"
template = "overdue_alert"
"""
DIGEST = """
kind = "operations_digest"
cron = "0 8 * * *"
timezone = "America/Sao_Paulo"
template = "operations_digest"
[options]
max_lateness = "12h"
list_limit = 2
"""
# Opened Sunday 2026-11-22 11:43 in São Paulo: br-sac due 2026-11-29 23:59:59 -03 (2026-11-30 02:59:59Z).
OPENED = at(22, 14, 43)
DEADLINE = at(30, 2, 59) + timedelta(seconds=59)


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "schedules"
    for name, body in (("reminder", REMINDER), ("warning", WARNING), ("overdue", OVERDUE), ("digest", DIGEST)):
        write_schedule(path, name, body)
    return path


@pytest.fixture
def settings(tmp_path, db_url):
    return sweep_settings(tmp_path, db_url)


@pytest.fixture
def schedules(settings, folder):
    return {s.name: s for s in schedules_from(settings, folder)}


@pytest.fixture
async def db(db_url):
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
def woken():
    return Woken()


@pytest.fixture
def runner(db, settings, schedules, woken):
    return runner_for(db, settings, list(schedules.values()), Clock(OPENED), woken)


async def test_reminders_come_at_their_moments_once_each(db, runner, woken):
    (p,) = await add(db, protocol_row(OPENED))
    assert p.deadline_at == DEADLINE

    early = await runner.run("reminder", at=DEADLINE - timedelta(hours=48, minutes=1))
    assert (early.considered, early.enqueued) == (0, 0)

    first = await runner.run("reminder", at=DEADLINE - timedelta(hours=47, minutes=50))
    assert (first.notified, first.enqueued, first.late) == (1, 2, 0)
    assert woken.count == 1
    rows = await notifications(db)
    assert {n.channel for n in rows} == {"email", "sms"}
    email = next(n for n in rows if n.channel == "email")
    assert email.recipient == p.consumer_email and email.audience == "consumer"
    assert email.dedup_key == f"reminder:reminder:{p.id}:{int(DEADLINE.timestamp())}:48h:email"
    assert email.template == "deadline_reminder" and email.template_hash.startswith("sha256:")
    assert p.number in email.subject and "29/11/2026" in email.body_text
    # 48 h before is 23:59 in São Paulo: the reminder waits for 08:00 there (11:00Z).
    assert email.next_attempt_at == at(28, 11)

    again = await runner.run("reminder", at=DEADLINE - timedelta(hours=47))
    assert (again.considered, again.enqueued) == (0, 0)

    second = await runner.run("reminder", at=DEADLINE - timedelta(hours=23, minutes=45))
    assert second.enqueued == 2
    assert [m.slot for m in await marks(db)] == ["48h", "24h"]
    assert len(await notifications(db)) == 4


async def test_a_reminder_whose_moment_passed_long_ago_is_recorded_not_sent(db, runner):
    await add(db, protocol_row(OPENED))
    result = await runner.run("reminder", at=DEADLINE - timedelta(hours=17))  # 24h moment 7 h ago, 48h 31 h ago
    assert (result.late, result.enqueued) == (2, 0)
    recorded = await marks(db)
    assert {(m.slot, m.outcome) for m in recorded} == {("48h", "late"), ("24h", "late")}
    assert all("after its moment" in m.detail for m in recorded)
    assert (await runner.run("reminder", at=DEADLINE - timedelta(hours=16))).considered == 0
    assert await notifications(db) == []


async def test_catch_up_after_downtime_sends_what_is_still_in_time(db, runner):
    # Down for two days: at restart the 24h reminder is 5 h late (sent), the 48h one 29 h (skipped).
    await add(db, protocol_row(OPENED))
    result = await runner.run("reminder", at=DEADLINE - timedelta(hours=19))
    assert (result.enqueued, result.late) == (2, 1)


async def test_resolved_protocols_get_no_reminders_and_reopening_restarts_them(db, runner):
    resolved, reopened = await add(db, protocol_row(OPENED, resolved_at=OPENED + timedelta(days=1)),
                                   protocol_row(OPENED))
    await runner.run("reminder", at=DEADLINE - timedelta(hours=47))
    assert {n.protocol_id for n in await notifications(db)} == {reopened.id}

    # Reopened on 29 November at 12:00Z: the clock restarts, due seven days later at 23:59:59 in São Paulo.
    new_deadline = at(7, 2, 59, month=12) + timedelta(seconds=59)
    async with db.write() as session:
        await session.execute(update(Protocol).where(Protocol.id == reopened.id).values(
            status="reopened", deadline_at=new_deadline))
    result = await runner.run("reminder", at=new_deadline - timedelta(hours=47))
    assert result.enqueued == 2
    keys = {n.dedup_key for n in await notifications(db) if n.protocol_id == reopened.id}
    assert len(keys) == 4 and any(str(int(new_deadline.timestamp())) in k for k in keys)


async def test_opted_out_phones_get_no_sms_reminders(db, runner):
    both, sms_only, nothing = await add(
        db,
        protocol_row(OPENED),
        protocol_row(OPENED, consumer_phone="+5511911112222", notify="sms"),
        protocol_row(OPENED, consumer_email=None, consumer_phone=None, notify=""),
    )
    await add(db, OptOut(phone="+5511987654321", opted_out_at=OPENED, keyword="STOP"),
              OptOut(phone="+5511911112222", opted_out_at=OPENED, keyword="PARE"))
    result = await runner.run("reminder", at=DEADLINE - timedelta(hours=47))
    assert (result.notified, result.suppressed, result.enqueued) == (1, 2, 1)
    (email,) = await notifications(db)
    assert (email.protocol_id, email.channel) == (both.id, "email")
    outcomes = {m.protocol_id: m.outcome for m in await marks(db)}
    assert outcomes == {both.id: "sent", sms_only.id: "opted_out", nothing.id: "no_contact"}


async def test_whatsapp_reminders_carry_their_approved_template_and_skip_a_whatsapp_stop(db, tmp_path, db_url):
    path = tmp_path / "whatsapp-schedules"
    write_schedule(path, "reminder", REMINDER.replace('audience = "consumer"',
                                                      'audience = "consumer"\nchannels = ["whatsapp"]'))
    settings = sweep_settings(tmp_path, db_url)
    runner = runner_for(db, settings, schedules_from(settings, path), Clock(OPENED))
    own, stopped, other = await add(
        db,
        protocol_row(OPENED, notify="whatsapp", consumer_whatsapp="+5511955556666"),
        protocol_row(OPENED, notify="whatsapp", consumer_phone="+5511911112222"),
        protocol_row(OPENED, notify="email,sms"),
    )
    # A WhatsApp STOP is not an SMS STOP: it stops WhatsApp only.
    await add(db, WhatsAppConsent(phone="+5511911112222", opted_out_at=OPENED, opted_out_keyword="PARAR"))
    result = await runner.run("reminder", at=DEADLINE - timedelta(hours=47))
    assert (result.notified, result.enqueued) == (1, 1)
    (n,) = await notifications(db)
    assert (n.protocol_id, n.channel, n.recipient) == (own.id, "whatsapp", "+5511955556666")
    assert n.whatsapp_content["variables"]["2"] == own.number and own.number in n.body_text
    assert n.whatsapp_content["content_sid"] is None  # the shipped templates register none
    outcomes = {m.protocol_id: m.outcome for m in await marks(db)}
    assert outcomes == {own.id: "sent", stopped.id: "opted_out", other.id: "no_contact"}


async def test_quiet_hours_follow_the_consumers_zone(db, tmp_path, db_url, folder):
    settings = sweep_settings(tmp_path, db_url, quiet_hours={"send_after": "09:00", "send_before": "18:00"})
    runner = runner_for(db, settings, schedules_from(settings, folder))
    # 48h moments at 2026-11-28 13:00Z: 13:00 in Lisbon, 10:00 in São Paulo: both inside 09-18.
    await add(db, protocol_row(OPENED, consumer_timezone="Europe/Lisbon", deadline_at=at(30, 13)),
              protocol_row(OPENED, consumer_timezone="America/Sao_Paulo", deadline_at=at(30, 13)))
    await runner.run("reminder", at=at(28, 13, 5))
    assert {n.next_attempt_at for n in await notifications(db)} == {at(28, 13, 5)}
    # 48h moments at 2026-11-28 21:00Z: 21:00 in Lisbon, 18:00 in São Paulo: both outside.
    (lisbon, sao_paulo) = await add(db, protocol_row(OPENED, consumer_timezone="Europe/Lisbon", deadline_at=at(30, 21)),
                                    protocol_row(OPENED, consumer_timezone="America/Sao_Paulo",
                                                 deadline_at=at(30, 21)))
    await runner.run("reminder", at=at(28, 21, 5))
    waiting = {n.protocol_id: n.next_attempt_at for n in await notifications(db) if n.created_at == at(28, 21, 5)}
    assert waiting[lisbon.id] == at(29, 9)          # 09:00 in Lisbon (UTC+0)
    assert waiting[sao_paulo.id] == at(29, 12)      # 09:00 in São Paulo (UTC-3)


async def test_operations_reminders_and_overdue_alerts(db, runner):
    (p,) = await add(db, protocol_row(OPENED))
    warned = await runner.run("warning", at=DEADLINE - timedelta(hours=23))
    assert warned.enqueued == 2  # one per operations address
    assert (await runner.run("overdue", at=DEADLINE - timedelta(minutes=1))).enqueued == 0

    overdue = await runner.run("overdue", at=DEADLINE + timedelta(minutes=10))
    assert (overdue.notified, overdue.enqueued) == (1, 2)
    alerts = await notifications(db, template="overdue_alert")
    assert {n.recipient for n in alerts} == {"ops@example.com", "lead@example.com"}
    assert all(n.audience == "operations" and n.protocol_id == p.id for n in alerts)
    assert p.number in alerts[0].subject and alerts[0].next_attempt_at == DEADLINE + timedelta(minutes=10)
    assert (await runner.run("overdue", at=DEADLINE + timedelta(hours=5))).enqueued == 0


async def test_without_operations_addresses_operations_sweeps_skip(db, tmp_path, db_url, folder):
    settings = sweep_settings(tmp_path, db_url, operations={"emails": []})
    runner = runner_for(db, settings, schedules_from(settings, folder))
    await add(db, protocol_row(OPENED))
    for name in ("warning", "overdue", "digest"):
        result = await runner.run(name, at=DEADLINE + timedelta(hours=9))
        assert result.skipped and "operations" in result.skipped and result.enqueued == 0


async def test_the_digest_goes_once_per_day_with_counts_and_numbers(db, runner, caplog):
    due_today = await add(db, *(protocol_row(OPENED) for _ in range(3)))          # due 29/11 23:59 -03
    (overdue,) = await add(db, protocol_row(at(20, 14)))                           # due 27/11
    (asked,) = await add(db, protocol_row(at(10, 14), resolved_at=at(12)))
    await add(db, ConsumerRequest(protocol_id=asked.id, kind="history", channel="mail", requested_at=at(27),
                                  due_at=at(28, 2, 59), address="Rua A, 1"),
              protocol_row(OPENED, resolved_at=at(23)))
    caplog.set_level(logging.INFO, logger="gateway.sweeps")

    result = await runner.run("digest", at=at(29, 11, 5))  # 08:05 in São Paulo
    assert (result.notified, result.enqueued, result.considered) == (1, 2, 5)
    digest = (await notifications(db, recipient="ops@example.com"))[0]
    assert digest.protocol_id is None and digest.dedup_key.startswith("digest:digest:2026-11-29T08:00:")
    assert "3 vencem hoje, 1 vencidos, 1 pedidos pendentes" in digest.subject
    assert due_today[0].number in digest.body_text and overdue.number in digest.body_text
    assert due_today[2].number not in digest.body_text and "e mais 1" in digest.body_text  # list_limit 2
    assert asked.number in digest.body_text and "Rua A" not in digest.body_text
    assert "Maria" not in digest.body_text  # numbers, never the consumer
    assert [r.action for r in caplog.records if getattr(r, "schedule", None) == "digest"] == ["sweep_done"]

    assert (await runner.run("digest", at=at(29, 17))).skipped == "digest for 2026-11-29T08:00 already sent"
    # Down from 08:00 until 21:00 the next day: 13 h late is past max_lateness (12h).
    assert "no digest due" in (await runner.run("digest", at=at(30, 23, 59))).skipped
    async with db.read() as session:
        periods = (await session.scalars(select(SweepRun.period).where(SweepRun.period.is_not(None)))).all()
    assert periods == ["2026-11-29T08:00"]


async def test_dry_run_writes_nothing(db, runner, woken):
    await add(db, *(protocol_row(OPENED) for _ in range(3)))
    progress = Recorder()
    result = await runner.run("reminder", at=DEADLINE - timedelta(hours=47), dry_run=True, progress=progress)
    assert (result.dry_run, result.notified, result.enqueued) == (True, 3, 6)
    assert progress.lines and "3 considered" in progress.lines[0]
    assert await count(db, Notification) == 0 and await count(db, SweepMark) == 0 and await count(db, SweepRun) == 0
    assert woken.count == 0


async def test_batches_stream_through_everything_due(db, tmp_path, db_url):
    settings = sweep_settings(tmp_path, db_url)
    folder = tmp_path / "small"
    write_schedule(folder, "reminder", REMINDER + "batch_size = 7\n")
    runner = runner_for(db, settings, schedules_from(settings, folder))
    await add(db, *(protocol_row(OPENED + timedelta(minutes=i)) for i in range(30)))
    result = await runner.run("reminder", at=DEADLINE - timedelta(hours=47))
    assert (result.batches, result.notified, result.enqueued) == (5, 30, 60)


@pytest.mark.parametrize("locked", [True, False], ids=["advisory-lock", "keys-only"])
async def test_two_sweepers_on_one_database_send_each_reminder_once(db_url, tmp_path, folder, locked):
    settings = sweep_settings(tmp_path, db_url)
    schedules = schedules_from(settings, folder)
    first, second = Database(db_url), Database(db_url)
    try:
        await add(first, *(protocol_row(OPENED + timedelta(seconds=i)) for i in range(120)))
        runners = [runner_for(d, settings, schedules) for d in (first, second)]
        for r in runners:
            r.lock = locked
        moment = DEADLINE - timedelta(hours=47)
        results = await asyncio.gather(*(r.run("reminder", at=moment) for r in runners),
                                       *(r.run("overdue", at=DEADLINE + timedelta(hours=1)) for r in runners))
        reminders = await notifications(first, template="deadline_reminder")
        assert len(reminders) == 240 and len({n.dedup_key for n in reminders}) == 240
        assert len(await notifications(first, template="overdue_alert")) == 240
        assert sum(r.notified for r in results[:2]) == 120
        assert len(await marks(first)) == 240
    finally:
        await first.dispose()
        await second.dispose()


async def test_sweep_logs_carry_counts_never_personal_data(db, runner, caplog):
    (p,) = await add(db, protocol_row(OPENED, consumer_name="Zuleica Quintanilha"))
    caplog.set_level(logging.DEBUG)
    await runner.run("reminder", at=DEADLINE - timedelta(hours=47))
    await runner.run("overdue", at=DEADLINE + timedelta(hours=1))
    records = [r for r in caplog.records if r.name.startswith("gateway")]
    assert {getattr(r, "action", None) for r in records} >= {"sweep_done"}
    text = " ".join(f"{r.getMessage()} {vars(r)}" for r in records)
    for personal in ("Zuleica", p.consumer_email, p.consumer_phone, p.subject):
        assert personal not in text
