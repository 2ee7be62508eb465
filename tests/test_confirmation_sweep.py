"""profiles.<name>.notify_within: operations hear of every protocol whose opening confirmation no
provider had accepted in time; on SQLite and PostgreSQL, as a function of the sweep's `at`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.config import ConfigError
from gateway.store.database import Database
from tests.sweep_helpers import Clock, add, at, marks, notifications, protocol_row, runner_for, schedules_from, \
    sweep_settings
from tests.sweep_helpers import hours as h

RECEIVED = at(22, 14, 43)


@pytest.fixture
def settings(tmp_path, db_url):
    return sweep_settings(tmp_path, db_url, profiles={"br-sac": {"notify_within": "24h"}})


@pytest.fixture
async def db(db_url):
    database = Database(db_url)
    yield database
    await database.dispose()


def confirmation(protocol_id: int, *, status: str, sent_at=None):
    from gateway.store.models import Notification

    return Notification(protocol_id=protocol_id, channel="email", audience="consumer", recipient="m@example.com",
                        template="protocol_opened", template_hash="sha256:x", locale="pt-BR", subject="s",
                        body_text="b", status=status, attempts=1, next_attempt_at=RECEIVED, created_at=RECEIVED,
                        sent_at=sent_at)


async def test_only_protocols_without_a_confirmation_accepted_in_time_are_reported_once(db, settings):
    runner = runner_for(db, settings, schedules_from(settings), Clock(RECEIVED))
    in_time, late, retrying, none, spain = await add(db, *(protocol_row(RECEIVED) for _ in range(4)),
                                                      protocol_row(RECEIVED, profile="es"))
    await add(db, confirmation(in_time.id, status="delivered", sent_at=RECEIVED + h(23)),
              confirmation(late.id, status="sent", sent_at=RECEIVED + h(25)),
              confirmation(retrying.id, status="queued"))

    early = await runner.run("confirmation-overdue", at=RECEIVED + h(23))
    assert (early.considered, early.enqueued) == (0, 0)  # nobody's 24 hours have passed

    result = await runner.run("confirmation-overdue", at=RECEIVED + h(26))
    assert (result.considered, result.notified, result.enqueued) == (4, 3, 6)  # es has no notify_within
    alerts = await notifications(db, template="confirmation_overdue")
    assert {n.protocol_id for n in alerts} == {late.id, retrying.id, none.id}
    assert {n.recipient for n in alerts} == {"ops@example.com", "lead@example.com"}
    late_alert = next(n for n in alerts if n.protocol_id == late.id)
    assert "23/11/2026 11:43" in late_alert.body_text          # due 24 h after receipt, São Paulo time
    assert "só foi aceita em 23/11/2026 12:43" in late_alert.body_text
    assert {m.outcome for m in await marks(db) if m.protocol_id == in_time.id} == {"confirmed"}

    again = await runner.run("confirmation-overdue", at=RECEIVED + h(48))
    assert (again.considered, again.enqueued) == (0, 0)


async def test_a_run_after_downtime_catches_up_within_lookback(db, settings):
    runner = runner_for(db, settings, schedules_from(settings), Clock(RECEIVED))
    old, recent = await add(db, protocol_row(RECEIVED - timedelta(days=40)), protocol_row(RECEIVED))
    result = await runner.run("confirmation-overdue", at=RECEIVED + timedelta(days=3))
    assert {n.protocol_id for n in await notifications(db, template="confirmation_overdue")} == {recent.id}
    assert result.notified == 1


def test_notify_within_must_be_a_duration(tmp_path):
    with pytest.raises(ConfigError, match=r"profiles\.br-sac\.notify_within"):
        sweep_settings(tmp_path, "sqlite+aiosqlite:///x.db", profiles={"br-sac": {"notify_within": "soon"}})


async def test_br_anatel_has_24_hours_out_of_the_box(tmp_path, db_url, db):
    settings = sweep_settings(tmp_path, db_url)  # no notify_within set: br-anatel's own 24 hours
    runner = runner_for(db, settings, schedules_from(settings), Clock(RECEIVED))
    telecom, general = await add(db, protocol_row(RECEIVED, profile="br-anatel"), protocol_row(RECEIVED))
    assert (await runner.run("confirmation-overdue", at=RECEIVED + h(23))).considered == 0
    result = await runner.run("confirmation-overdue", at=RECEIVED + h(24))
    assert (result.considered, result.notified) == (1, 1)
    assert {n.protocol_id for n in await notifications(db, template="confirmation_overdue")} == {telecom.id}
