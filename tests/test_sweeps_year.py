"""Sweeps as functions of `at` over a simulated stretch of time, against a model.

Protocols open, resolve and reopen at random (seeded) times; every 6 hours of simulated time
the five sweeps run as of that instant. A plain in-memory model that scans every protocol at
every step says which marks (reminders sent or skipped, alerts, notices) and anonymizations
there must be; the database must agree exactly. The fast suite covers a month on SQLite;
the full year runs on SQLite and PostgreSQL with `-m slow`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from gateway.protocols.profiles import Profiles
from gateway.store.database import Database
from gateway.store.models import Notification, Protocol
from gateway.store.sweep_models import SweepMark
from tests.sweep_helpers import (
    UTC,
    Clock,
    add,
    protocol_row,
    runner_for,
    schedules_from,
    sweep_settings,
    write_schedule,
)

STEP = timedelta(hours=6)
LATENESS = timedelta(hours=7)
LOOKBACK = timedelta(days=30)
GRACE = timedelta(days=1)
ABANDONED = timedelta(days=60)
OFFSETS = {"48h": timedelta(hours=48), "24h": timedelta(hours=24)}
NOTICE = timedelta(days=7)
FILES = {
    "reminder": 'kind = "deadline_reminder"\ninterval = "6h"\ntemplate = "deadline_reminder"\naudience = "consumer"\n'
                'offsets = ["48h", "24h"]\n[options]\nmax_lateness = "7h"\nlookback = "30d"\nbatch_size = 5\n',
    "overdue": 'kind = "overdue_alert"\ninterval = "6h"\ntemplate = "overdue_alert"\n[options]\nbatch_size = 5\n',
    "digest": 'kind = "operations_digest"\ncron = "0 8 * * *"\ntemplate = "operations_digest"\n',
    "notice": 'kind = "retention_notice"\ninterval = "6h"\ntemplate = "retention_notice"\noffsets = ["7d"]\n',
    "expiry": 'kind = "anonymize"\ninterval = "6h"\n[options]\nbatch_size = 3\n',
}


@dataclass
class Life:
    """One protocol's story: when it opened, and its later events."""

    opened_at: datetime
    profile: str
    events: list[tuple[datetime, str]] = field(default_factory=list)  # (time, "resolved" | "reopened")


def stories(rng: random.Random, start: datetime, days: int, count: int) -> list[Life]:
    lives = []
    for _ in range(count):
        opened = start + timedelta(minutes=rng.randrange(0, (days - 5) * 24 * 60))
        life = Life(opened, rng.choices(["br-sac", "br-sac-2008", "es"], [6, 2, 2])[0])
        t = opened
        for _round in range(2):
            if rng.random() < 0.2:
                break  # never resolved (from here on)
            t += timedelta(minutes=rng.randrange(12 * 60, 12 * 24 * 60))
            life.events.append((t, "resolved"))
            if rng.random() > 0.25:
                break
            t += timedelta(minutes=rng.randrange(12 * 60, 3 * 24 * 60))
            life.events.append((t, "reopened"))
        lives.append(life)
    return lives


@dataclass
class State:
    id: int
    profile: str
    status: str
    deadline: datetime
    resolved_at: datetime | None
    last_event: datetime


class Model:
    """The sweeps' rules, written the plain way: look at every protocol at every step."""

    def __init__(self, profiles: Profiles) -> None:
        self.profiles = profiles
        self.marks: dict[tuple[str, int, str, datetime], str] = {}
        self.anonymized: dict[int, datetime] = {}
        self.digests = 0

    def retention_end(self, s: State) -> datetime | None:
        profile = self.profiles.get(s.profile)
        if not profile.has_retention:
            return None
        start = s.resolved_at if s.status == "resolved" else s.last_event + ABANDONED
        return profile.retention_end(start)

    def step(self, t: datetime, states: list[State]) -> None:
        for s in states:
            if s.id in self.anonymized:
                continue
            if s.status in ("open", "reopened"):
                for slot, offset in OFFSETS.items():
                    moment = s.deadline - offset
                    key = ("reminder", s.id, slot, s.deadline)
                    if moment <= t and moment > t - LOOKBACK and key not in self.marks:
                        self.marks[key] = "sent" if t - moment <= LATENESS and s.deadline > t else "late"
                key = ("overdue", s.id, "overdue", s.deadline)
                if s.deadline <= t and s.deadline > t - LOOKBACK and key not in self.marks:
                    self.marks[key] = "sent"
            end = self.retention_end(s)
            if end is not None and t < end <= t + NOTICE and ("notice", s.id, "7d", end) not in self.marks:
                self.marks[("notice", s.id, "7d", end)] = "sent"
            if end is not None and end + GRACE <= t:
                self.anonymized[s.id] = t
        if t.hour == 12:  # the step after the digest's 08:00 in São Paulo (11:00Z), within max_lateness
            self.digests += 1


async def simulate(db_url: str, tmp_path, *, days: int, count: int, seed: int,
                   down: list[tuple[int, int]]) -> None:
    """`down`: (first day, last day) spans with no sweep at all: the runs after must catch up."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    settings = sweep_settings(tmp_path, db_url, profiles={"es": {"retention_days": 20}},
                              retention={"action": "anonymize", "grace": "1d", "abandoned_after": "60d",
                                         "vacuum": False})
    folder = tmp_path / "schedules"
    for name, body in FILES.items():
        write_schedule(folder, name, body)
    clock = Clock(start)
    db = Database(db_url)
    runner = runner_for(db, settings, schedules_from(settings, folder), clock)
    profiles = Profiles.from_settings(settings)
    model = Model(profiles)
    lives = stories(random.Random(seed), start, days, count)
    pending = sorted(((life.opened_at, "opened", i) for i, life in enumerate(lives)), key=lambda e: e[0])
    pending += [(t, kind, i) for i, life in enumerate(lives) for t, kind in life.events]
    pending.sort(key=lambda e: (e[0], e[2]))
    states: dict[int, State] = {}
    ids: dict[int, int] = {}
    try:
        t = start
        end = start + timedelta(days=days)
        while t <= end:
            while pending and pending[0][0] <= t:
                when, kind, i = pending.pop(0)
                await apply(db, profiles, lives[i], kind, when, i, states, ids, model)
            if not any(start + timedelta(days=a) <= t < start + timedelta(days=b) for a, b in down):
                model.step(t, list(states.values()))
                clock.now = t
                for name in FILES:
                    await runner.run(name, at=t)
            t += STEP
        await compare(db, model, ids)
    finally:
        await db.dispose()


async def apply(db: Database, profiles: Profiles, life: Life, kind: str, when: datetime, i: int,
                states: dict[int, State], ids: dict[int, int], model: Model) -> None:
    profile = profiles.get(life.profile)
    if kind == "opened":
        (row,) = await add(db, protocol_row(when, profile=life.profile, notify="email,sms",
                                            deadline_at=profile.deadline(when)))
        ids[i] = row.id
        states[row.id] = State(row.id, life.profile, "open", row.deadline_at, None, when)
        return
    state = states[ids[i]]
    if state.id in model.anonymized:
        return
    if kind == "resolved":
        values = dict(status="resolved", resolved_at=when, retention_until=profile.retention_end(when))
        state.status, state.resolved_at = "resolved", when
    else:
        values = dict(status="reopened", resolved_at=None, retention_until=None, deadline_at=profile.deadline(when))
        state.status, state.resolved_at, state.deadline = "reopened", None, profile.deadline(when)
    state.last_event = when
    async with db.write() as session:
        await session.execute(update(Protocol).where(Protocol.id == state.id).values(
            updated_at=when, last_event_at=when, **values))


async def compare(db: Database, model: Model, ids: dict[int, int]) -> None:
    async with db.read() as session:
        marks = {(m.schedule, m.protocol_id, m.slot, m.target_at): m.outcome
                 for m in (await session.scalars(select(SweepMark))).all()}
        anonymized = dict((await session.execute(
            select(Protocol.id, Protocol.anonymized_at).where(Protocol.status == "anonymized"))).all())
        sent = (await session.execute(select(Notification.template, Notification.dedup_key))).all()
    assert marks == model.marks
    assert anonymized == model.anonymized
    by_template: dict[str, int] = {}
    for template, _key in sent:
        by_template[template] = by_template.get(template, 0) + 1
    reminders = sum(1 for (schedule, *_), outcome in model.marks.items() if schedule == "reminder" and outcome == "sent")
    alerts = sum(1 for (schedule, *_) in model.marks if schedule == "overdue")
    assert by_template.get("deadline_reminder", 0) == 2 * reminders  # email and SMS
    assert by_template.get("overdue_alert", 0) == 2 * alerts  # two operations addresses
    assert by_template.get("operations_digest", 0) == 2 * model.digests
    assert len({key for _t, key in sent}) == len(sent)
    # The story must have exercised every branch, or the comparison proves little.
    outcomes = {(schedule, outcome) for (schedule, *_), outcome in model.marks.items()}
    assert {("reminder", "sent"), ("reminder", "late"), ("overdue", "sent")} <= outcomes


async def test_a_month_of_sweeps_matches_the_model(sqlite_url, tmp_path):
    await simulate(sqlite_url, tmp_path, days=21, count=30, seed=7, down=[(8, 10)])


@pytest.mark.slow
async def test_a_year_of_sweeps_matches_the_model(db_url, tmp_path):
    await simulate(db_url, tmp_path, days=365, count=400, seed=2026, down=[(40, 43), (200, 201), (300, 330)])
