"""The sweeps' own tables, and the indexes their queries need on the core tables.

`sweep_marks` is the sweeps' ledger: one row per (schedule, protocol, slot, moment) handled,
whatever came of it (sent, skipped as too late, suppressed). Its unique key is what makes a
second process, a restart or a catch-up run insert nothing new. `sweep_runs` records each run
(and, for once-per-period sweeps such as the digest, claims the period). `retention_audit` is
the record of what was anonymized or held, when, by whom and under which rule.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, ForeignKey, Index, Integer, String, Text, UniqueConstraint, bindparam, text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, ConsumerRequest, Id, Notification, Protocol
from gateway.store.types import JSONDoc, UTCDateTime

OPEN_STATUSES = ("open", "reopened")
_OPEN = text("status IN ('open', 'reopened')")


def is_open() -> ColumnElement[bool]:
    """`status IN ('open', 'reopened')` with the statuses written into the SQL: the partial indexes
    below are `WHERE` that, and SQLite's planner takes one only where the query's own condition says
    so in words. A bound list (`status IN (?, ?)`) would leave it the whole-column index or a scan."""
    return Protocol.status.in_(bindparam("open_statuses", OPEN_STATUSES, expanding=True, literal_execute=True))


class SweepMark(Base):
    __tablename__ = "sweep_marks"
    __table_args__ = (UniqueConstraint("schedule", "protocol_id", "slot", "target_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    protocol_id: Mapped[int] = mapped_column(ForeignKey("protocols.id"), index=True)
    slot: Mapped[str] = mapped_column(String(32))          # "48h", "overdue", "30d", "expired"
    target_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the deadline or retention end it is about
    outcome: Mapped[str] = mapped_column(String(16))       # sent, late, opted_out, no_contact, anonymized
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the sweep's `at`
    notifications: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    detail: Mapped[str | None] = mapped_column(Text)      # e.g. how late a skipped reminder was


class SweepRun(Base):
    __tablename__ = "sweep_runs"
    __table_args__ = (
        UniqueConstraint("schedule", "period"),
        Index("ix_sweep_runs_schedule_at", "schedule", "at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set by sweeps that run once per period (the digest's day): the unique key claims it.
    period: Mapped[str | None] = mapped_column(String(40))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))       # done, late, failed
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)


class RetentionAudit(Base):
    """Append-only: anonymizations, refusals, legal holds placed and lifted."""

    __tablename__ = "retention_audit"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    action: Mapped[str] = mapped_column(String(32))
    protocol_id: Mapped[int | None] = mapped_column(ForeignKey("protocols.id"), index=True)
    number: Mapped[str | None] = mapped_column(String(30))
    rule: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)


# Partial indexes for the sweeps' queries, on tables defined in models.py: the reminders and the
# digest by deadline, retention's "abandoned" by the last event, each over the open protocols only
# (their queries say so with is_open()). Migration 0017 dropped the whole-column indexes of both
# columns: nothing else asked them, and each cost every protocol opened an index entry more.
Index("ix_protocols_open_deadline", Protocol.deadline_at, Protocol.id,
      sqlite_where=_OPEN, postgresql_where=_OPEN)
Index("ix_protocols_open_last_event", Protocol.last_event_at, Protocol.id,
      sqlite_where=_OPEN, postgresql_where=_OPEN)
Index("ix_protocols_resolved_unretained", Protocol.resolved_at, Protocol.id,
      sqlite_where=text("status = 'resolved' AND retention_until IS NULL"),
      postgresql_where=text("status = 'resolved' AND retention_until IS NULL"))
# Search (GET /v1/protocols): newest first, alone or within a category, by keyset on (opened_at, id);
# and the compliance report, which reads every column it counts from this index alone (migration 0014).
Index("ix_protocols_report", Protocol.opened_at, Protocol.id, Protocol.category, Protocol.profile, Protocol.channel,
      Protocol.status, Protocol.deadline_at, Protocol.resolved_at)
Index("ix_protocols_category_report", Protocol.category, Protocol.opened_at, Protocol.id, Protocol.profile,
      Protocol.channel, Protocol.status, Protocol.deadline_at, Protocol.resolved_at)
# Search's `overdue=true`: the open ones newest first, with their deadline in the index, so the walk
# past the not-yet-late ones reads no table row. The query must write the statuses out (see _OPEN).
Index("ix_protocols_open_opened", Protocol.opened_at, Protocol.id, Protocol.deadline_at,
      sqlite_where=_OPEN, postgresql_where=_OPEN)
# Columns nearly always NULL, indexed only where they hold a value (migration 0015): with planner
# statistics, SQLite takes a whole-column index of them for one that finds every row, and scans.
Index("ix_protocols_consumer_whatsapp", Protocol.consumer_whatsapp,
      sqlite_where=text("consumer_whatsapp IS NOT NULL"), postgresql_where=text("consumer_whatsapp IS NOT NULL"))
# An SMS-only installation's protocols have no email: the same holds for its digest (migration 0016,
# which also dropped the index of the raw address: anonymization asks by the digest).
Index("ix_protocols_consumer_email_digest", Protocol.consumer_email_digest,
      sqlite_where=text("consumer_email_digest IS NOT NULL"),
      postgresql_where=text("consumer_email_digest IS NOT NULL"))
Index("ix_protocols_parent_id", Protocol.parent_id,
      sqlite_where=text("parent_id IS NOT NULL"), postgresql_where=text("parent_id IS NOT NULL"))
Index("ix_notifications_fallback_of", Notification.fallback_of,
      sqlite_where=text("fallback_of IS NOT NULL"), postgresql_where=text("fallback_of IS NOT NULL"))
# A message's provider id (the SMTP Message-ID, Twilio's SID) is set when it is sent, and a receipt
# without the notification's id in its URL finds the message by it. Over the sent ones only (migration
# 0018): a queued message wrote a NULL entry when it was made and took it out when it was sent.
Index("ix_notifications_provider_id", Notification.provider_id,
      sqlite_where=text("provider_id IS NOT NULL"), postgresql_where=text("provider_id IS NOT NULL"))
Index("ix_consumer_requests_pending", ConsumerRequest.due_at,
      sqlite_where=text("fulfilled_at IS NULL"), postgresql_where=text("fulfilled_at IS NULL"))
