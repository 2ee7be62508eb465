"""Helpers for the sweep and retention tests: protocols written straight into the store (as the
service leaves them), schedules written to a folder, and a runner with a fixed clock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from gateway.config import Settings
from gateway.protocols.profiles import get_profile
from gateway.rendering.templates import Templates
from gateway.store.database import Database
from gateway.store.models import Notification, Protocol
from gateway.store.sweep_models import SweepMark
from gateway.sweeps.runner import SweepRunner
from gateway.sweeps.schedules import Schedule, load_schedules
from tests.helpers import make_settings

UTC = timezone.utc
OPS = ["ops@example.com", "lead@example.com"]
_numbers = itertools.count(1)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Woken:
    count: int = 0

    def __call__(self) -> None:
        self.count += 1


def sweep_settings(tmp_path: Path, db_url: str, **sections: dict[str, Any]) -> Settings:
    sections.setdefault("operations", {"emails": OPS})
    return make_settings(tmp_path, db_url, **sections)


def write_schedule(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(body, encoding="utf-8")
    return path


def schedules_from(settings: Settings, folder: Path | None = None) -> list[Schedule]:
    templates = Templates(settings.templates_dir, settings.gateway.default_locale)
    return load_schedules(folder or settings.schedules_dir, templates=templates,
                          default_timezone=settings.gateway.timezone)


def runner_for(db: Database, settings: Settings, schedules: list[Schedule], clock: Clock | None = None,
               wake: Woken | None = None) -> SweepRunner:
    templates = Templates(settings.templates_dir, settings.gateway.default_locale)
    return SweepRunner(db, templates, settings, schedules, wake=wake or Woken(),
                       clock=clock or Clock(datetime(2026, 11, 22, 12, tzinfo=UTC)))


def protocol_row(opened_at: datetime, *, profile: str = "br-sac", status: str = "open",
                 resolved_at: datetime | None = None, settings: Settings | None = None, **fields: Any) -> Protocol:
    p = get_profile(profile, settings)
    n = next(_numbers)
    values: dict[str, Any] = dict(
        number=f"{opened_at:%Y%m%d}{n:08d}9", issued_by="gateway", status=status, subject=f"Assunto {n}",
        category="billing", profile=profile, channel="phone", consumer_name="Maria Silva",
        consumer_email=f"maria{n}@example.com", consumer_phone="+5511987654321", consumer_locale="pt-BR",
        consumer_timezone="America/Sao_Paulo", notify="email,sms", opened_at=opened_at, received_at=opened_at,
        deadline_at=p.deadline(opened_at), legal_hold=False, updated_at=resolved_at or opened_at,
        last_event_at=resolved_at or opened_at,
    )
    if resolved_at is not None:
        values.update(status="resolved", resolved_at=resolved_at, retention_until=p.retention_end(resolved_at))
    values.update(fields)
    return Protocol(**values)


async def add(db: Database, *rows: Any) -> list[Any]:
    async with db.write() as session:
        session.add_all(rows)
        await session.flush()
    return list(rows)


async def notifications(db: Database, **where: Any) -> list[Notification]:
    async with db.read() as session:
        query = select(Notification).order_by(Notification.id)
        for key, value in where.items():
            query = query.where(getattr(Notification, key) == value)
        return list((await session.scalars(query)).all())


async def marks(db: Database) -> list[SweepMark]:
    async with db.read() as session:
        return list((await session.scalars(select(SweepMark).order_by(SweepMark.id))).all())


async def count(db: Database, model: Any) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


def at(day: int, hour: int = 12, minute: int = 0, month: int = 11, year: int = 2026) -> datetime:
    """A UTC instant in late 2026 (São Paulo is UTC-3 all year)."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@dataclass
class Recorder:
    lines: list[str] = field(default_factory=list)

    def __call__(self, line: str) -> None:
        self.lines.append(line)
