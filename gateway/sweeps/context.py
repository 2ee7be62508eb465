"""What every sweep gets (`SweepContext`), what it reports (`SweepResult`), and the shared steps:
claiming marks by their unique key and paging through candidates in keyset order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.protocols.page_links import PageLinks
from gateway.protocols.profiles import Profiles
from gateway.rendering.context import company
from gateway.rendering.templates import Templates
from gateway.store.database import Database, dialect_insert
from gateway.store.sweep_models import SweepMark
from gateway.sweeps.schedules import Schedule

Progress = Callable[[str], None]
ANALYZE_EVERY = 5000  # marks inserted in one run before PostgreSQL's statistics of them are refreshed


@dataclass
class SweepResult:
    schedule: str
    kind: str
    at: datetime
    dry_run: bool = False
    considered: int = 0   # candidates looked at
    notified: int = 0     # protocols (or reports) that got messages
    enqueued: int = 0     # notification rows queued
    late: int = 0         # moments passed longer ago than max_lateness: recorded, not sent
    suppressed: int = 0   # no contact on the schedule's channels, or the phone opted out
    lost: int = 0         # handled by another sweeper meanwhile (its key was taken)
    anonymized: int = 0
    extended: int = 0     # retention found longer under the current settings: kept
    held: int = 0         # under legal hold: left alone
    batches: int = 0
    vacuumed: bool = False  # SQLite: VACUUM ran after anonymizing (retention.vacuum)
    wal_emptied: bool | None = None  # SQLite, after anonymizing: the WAL checkpointed and truncated
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


@dataclass
class SweepContext:
    db: Database
    templates: Templates
    settings: Settings
    profiles: Profiles
    schedule: Schedule
    at: datetime
    result: SweepResult
    clock: Callable[[], datetime]
    dry_run: bool = False
    progress: Progress = field(default=lambda _message: None)
    pages: PageLinks | None = None  # links to the consumer's page in consumer messages
    _since_analyze: int = 0

    @property
    def batch_size(self) -> int:
        return self.schedule.options.batch_size

    @property
    def ops_emails(self) -> list[str]:
        return list(self.settings.operations.emails)

    @property
    def ops_locale(self) -> str:
        return self.settings.operations.locale or self.settings.gateway.default_locale

    @property
    def ops_timezone(self) -> str:
        return self.settings.operations.timezone or self.schedule.timezone

    def ops_context(self, **extra: Any) -> dict[str, Any]:
        return {"locale": self.ops_locale, "timezone": self.ops_timezone, "company": company(self.settings, self.ops_locale),
                "schedule": {"name": self.schedule.name, "kind": self.schedule.kind}, **extra}

    async def marked(self, count: int) -> None:
        """Note `count` marks inserted. A run that inserts many refreshes PostgreSQL's statistics of
        the ledger: planned as nearly empty, the anti-join would scan it once per candidate."""
        self._since_analyze += count
        if self.db.is_sqlite or self._since_analyze < ANALYZE_EVERY:
            return
        self._since_analyze = 0
        async with self.db.write() as session:
            await session.execute(text("ANALYZE sweep_marks"))

    def skip(self, reason: str) -> None:
        self.result.skipped = reason

    def report(self, what: str) -> None:
        r = self.result
        self.progress(f"{self.schedule.name}: {what}: {r.considered} considered, {r.enqueued} queued, "
                      f"{r.late} late, {r.suppressed} suppressed, {r.anonymized} anonymized")


async def claim_marks(session: AsyncSession, rows: list[dict[str, Any]]) -> set[int]:
    """Insert marks; return the protocol ids whose mark this transaction inserted.

    A mark taken by another sweeper (committed, or in flight on PostgreSQL, where the insert
    waits for it) is left alone: whatever it stands for was or is being done there.
    """
    if not rows:
        return set()
    # The rows as the parameters of one Core statement (an executemany, which SQLAlchemy sends as
    # multi-row INSERTs it compiles once), not as `.values(rows)`: that built and compiled a new
    # statement of ~4,500 parameters per batch, two thirds of the retention notice's time over a
    # million protocols (profiled with `python -m bench.sweeps --profile`).
    dialect = session.bind.dialect.name
    stmt = _CLAIMS.get(dialect)
    if stmt is None:
        table = SweepMark.__table__
        stmt = _CLAIMS[dialect] = (
            dialect_insert(session, table)
            .on_conflict_do_nothing(index_elements=["schedule", "protocol_id", "slot", "target_at"])
            .returning(table.c.protocol_id)
        )
    return {row[0] for row in (await session.execute(stmt, rows)).all()}


_CLAIMS: dict[str, Any] = {}  # the claim's statement per dialect, built once


def chunks(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
