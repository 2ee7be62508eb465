"""The outbox: enqueue in the caller's transaction, claim under a lease, record outcomes.

A claim sets `status='sending'` and pushes `next_attempt_at` to the lease's end, so one
indexed column says when any row next needs attention: a due retry, an expired lease
(its worker died) or an unknown outcome to send again. A live worker renews the lease of a
send still in flight (delivery/dispatcher.py). `attempts` doubles as the fencing token: a
worker whose lease expired and was re-claimed cannot overwrite the new owner.

These are plain functions of a synchronous `Session`, run in one trip by
`Database.transact`; async callers hand them to `AsyncSession.run_sync`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, case, func, insert, select, text, type_coerce, update
from sqlalchemy.orm import Session

from gateway.config.whatsapp import SESSION_WINDOW
from gateway.delivery import outbox_postgres, outbox_sqlite
from gateway.delivery.errors import ProviderTry
from gateway.store import drivers, rows, sqlite_driver
from gateway.store.models import ACTIVE_CONDITION, Attempt, ConsumerRequest, InboundMessage, Notification
from gateway.store.types import UTCDateTime


@dataclass(frozen=True)
class Claimed:
    id: int
    protocol_id: int
    channel: str
    recipient: str
    template: str
    subject: str | None
    body_text: str
    body_html: str | None
    attempts: int
    created_at: datetime
    duplicate_possible: bool
    give_up_from: datetime  # created_at, or when operations requeued it
    whatsapp_content: dict[str, Any] | None = None  # the approved template, for WhatsApp
    window_open: bool = False  # WhatsApp: the consumer wrote within 24 hours (set after the claim)
    lease_end: datetime | None = None  # the claim's; a give-back is fenced by it (see unclaim)


@dataclass(frozen=True)
class Result:
    """What one send came to, ready to be written."""

    claimed: Claimed
    started_at: datetime
    finished_at: datetime
    status: str                       # sent, delivered, queued (retry), unknown, failed, dead
    next_attempt_at: datetime | None = None
    provider_id: str | None = None
    error: str | None = None
    error_code: str | None = None
    provider: str | None = None       # the named relay or account of the last try
    tried: tuple[ProviderTry, ...] = ()  # providers that failed before it, in this same send


def enqueue(session: Session, notifications: list[Notification]) -> None:
    """Write rows in the caller's transaction; never commits (the caller's commit is the
    acknowledgement). Each object gets its id and stays outside the session (store/rows.py)."""
    if not notifications:
        return
    rows.insert_many(session, notifications)
    notify(session)


_PG_NOTIFY = text("SELECT pg_notify('gateway_outbox', '')")


_NOTIFIED = "gateway.outbox_notified"  # in session.info: one NOTIFY wakes them for the whole transaction


def notify(session: Session) -> None:
    """On PostgreSQL, wake the other gateways' dispatchers when this transaction commits: once per
    transaction, however many events share it (a round trip each)."""
    if session.bind.dialect.name == "postgresql" and not session.info.get(_NOTIFIED):
        driver = drivers.under(session)
        if driver is not None:
            driver.execute(_PG_NOTIFY.text, ())
        else:
            session.execute(_PG_NOTIFY)
        session.info[_NOTIFIED] = True


# The dispatcher runs these on every turn: built once (per dialect, per limit), the values
# bound at execution. Building them each time cost more than SQLite running them.
_n = Notification.__table__.c


@cache
def _claim_statement(postgresql: bool, limit: int) -> Any:
    due = (
        select(_n.id)
        .where(text(ACTIVE_CONDITION), _n.next_attempt_at <= bindparam("now", type_=UTCDateTime))
        .order_by(_n.next_attempt_at, _n.id)
        .limit(limit)
    )
    if postgresql:
        due = due.with_for_update(skip_locked=True)
    # A row that was 'sending' (lease expired: its worker died mid-send) or 'unknown' may
    # already be in the consumer's hands: the record says so.
    return (
        update(Notification.__table__)
        .where(_n.id.in_(due.scalar_subquery()))
        .values(
            status="sending",
            attempts=_n.attempts + 1,
            next_attempt_at=bindparam("lease_end", type_=UTCDateTime),
            duplicate_possible=case((_n.status.in_(("sending", "unknown")), True), else_=_n.duplicate_possible),
        )
        .returning(
            _n.id, _n.protocol_id, _n.channel, _n.recipient, _n.template, _n.subject, _n.body_text,
            _n.body_html, _n.attempts, _n.created_at, _n.duplicate_possible,
            type_coerce(func.coalesce(_n.retry_from, _n.created_at), UTCDateTime), _n.whatsapp_content,
        )
    )


def claim(session: Session, *, now: datetime, limit: int, lease: float) -> list[Claimed]:
    """Take up to `limit` due rows for `lease` seconds. Disjoint across processes on PostgreSQL."""
    lease_end = now + timedelta(seconds=lease)
    driver = drivers.under(session)
    if driver is not None:  # one statement on PostgreSQL's driver, a few steps on SQLite's writer
        session.flush()  # rows the turn added (a webhook, a chain's next step) are due too, as Core's autoflush does
        taken = (outbox_sqlite.claim(driver.raw, now=now, lease_end=lease_end, limit=limit)
                 if isinstance(driver, sqlite_driver.SQLiteDriver)
                 else outbox_postgres.claim(driver, now=now, lease_end=lease_end, limit=limit))
        found = [Claimed(*row, lease_end=lease_end) for row in taken]
    else:
        stmt = _claim_statement(session.bind.dialect.name == "postgresql", limit)
        found = [Claimed(*row, lease_end=lease_end)
                 for row in session.execute(stmt, {"now": now, "lease_end": lease_end}).all()]
    claimed = sorted(found, key=lambda c: c.id)
    phones = {c.recipient for c in claimed if c.channel == "whatsapp"}
    if not phones:
        return claimed
    # Decided now, just before the send, not when the message was made: a retry a day later
    # must not go as free text after the window closed.
    open_ = open_windows(session, phones, now)
    return [dataclasses.replace(c, window_open=True) if c.channel == "whatsapp" and c.recipient in open_ else c
            for c in claimed]


def open_windows(session: Session, phones: set[str], now: datetime) -> set[str]:
    """The WhatsApp numbers that wrote to us within the last 24 hours: free text may answer them."""
    since = now - timedelta(seconds=SESSION_WINDOW)
    m = InboundMessage.__table__.c
    return set(session.scalars(select(m.from_phone).where(
        m.channel == "whatsapp", m.from_phone.in_(phones), m.received_at > since).distinct()).all())


_FENCED = (
    update(Notification.__table__)
    .where(_n.id == bindparam("b_id"), _n.status == "sending", _n.attempts == bindparam("b_attempts"))
    .values(
        status=bindparam("b_status"),
        last_error=bindparam("b_error"),
        error_code=bindparam("b_code"),
        next_attempt_at=func.coalesce(bindparam("b_next", type_=UTCDateTime), _n.next_attempt_at),
        sent_at=func.coalesce(bindparam("b_sent", type_=UTCDateTime), _n.sent_at),
        delivered_at=func.coalesce(bindparam("b_delivered", type_=UTCDateTime), _n.delivered_at),
        provider_id=func.coalesce(bindparam("b_provider"), _n.provider_id),
        provider=func.coalesce(bindparam("b_provider_name"), _n.provider),
    )
)
_ATTEMPT = insert(Attempt.__table__)
# What the consumer asked for is fulfilled when its message left: each request takes its
# own message's send time (written just before).
_r = ConsumerRequest.__table__.c
_FULFILLED = (
    update(ConsumerRequest.__table__)
    .where(_r.notification_id.in_(bindparam("done", expanding=True)), _r.fulfilled_at.is_(None))
    .values(fulfilled_at=select(_n.sent_at).where(_n.id == _r.notification_id).scalar_subquery())
)


# The outcome of one send and its evidence rows, as positional values: SQLite's writer sends them
# as JSON arrays (outbox_sqlite.py: half the encoding of objects, and SQLite reads an array's
# item faster than an object's key), the Core statements take them as parameters by these names.
_OUTCOME = ("b_id", "b_attempts", "b_status", "b_error", "b_code", "b_next", "b_sent", "b_delivered", "b_provider",
            "b_provider_name")
_ATTEMPT_COLUMNS = ("notification_id", "attempt", "started_at", "finished_at", "outcome", "error", "error_code",
                    "provider_id", "provider")


def record(session: Session, results: list[Result]) -> int:
    """Write outcomes and their evidence rows; returns how many rows this worker still owned.

    Three statements for the whole batch (the outcome and its evidence, each executed many, and
    the consumer's requests it fulfilled): the batch is the hot path. On SQLite's writer, the
    same as one step each (outbox_sqlite.py); on PostgreSQL's driver, as one statement each of
    arrays (outbox_postgres.py). The Core statements remain for what has neither (SQLite under an
    AsyncSession), and a test runs them on PostgreSQL to compare.
    """
    if not results:
        return 0
    outcomes = [_outcome(r) for r in results]
    attempts = [row for r in results for row in _attempt_rows(r)]
    done = [r.claimed.id for r in results if r.status in ("sent", "delivered")]
    driver = drivers.under(session)
    if isinstance(driver, sqlite_driver.SQLiteDriver):  # the writer's: a step each, JSON arrays
        return outbox_sqlite.record(driver.raw, outcomes, attempts, done)
    if driver is not None:  # PostgreSQL's: a statement each, an array a column
        return outbox_postgres.record(driver, outcomes, attempts, done)
    owned = session.execute(_FENCED, [dict(zip(_OUTCOME, o)) for o in outcomes]).rowcount
    session.execute(_ATTEMPT, [dict(zip(_ATTEMPT_COLUMNS, a)) for a in attempts])
    if done:
        session.execute(_FULFILLED, {"done": done})
    return owned


def _outcome(r: Result) -> tuple[Any, ...]:
    """What the record sets on the notification's row, in _OUTCOME's order."""
    sent = r.status in ("sent", "delivered")
    return (r.claimed.id, r.claimed.attempts, r.status, None if sent else r.error, None if sent else r.error_code,
            r.next_attempt_at, r.finished_at if sent else None, r.finished_at if r.status == "delivered" else None,
            r.provider_id, r.provider)


def _attempt_rows(r: Result) -> list[tuple[Any, ...]]:
    """The evidence of one send, in _ATTEMPT_COLUMNS' order: a row per provider that failed over to
    the next, then the outcome."""
    c = r.claimed
    rows_ = [(c.id, c.attempts, r.started_at, r.finished_at, "failed_over", t.error, t.error_code, None, t.provider)
             for t in r.tried]
    rows_.append((c.id, c.attempts, r.started_at, r.finished_at, r.status, r.error, r.error_code, r.provider_id,
                  r.provider))
    return rows_


def release(session: Session, claimed: list[Claimed], *, now: datetime) -> None:
    """Give back rows whose send was interrupted at shutdown: they may have left, so 'unknown', due now."""
    for c in claimed:
        session.execute(
            update(Notification)
            .where(Notification.id == c.id, Notification.status == "sending", Notification.attempts == c.attempts)
            .values(status="unknown", next_attempt_at=now, duplicate_possible=True)
            .execution_options(synchronize_session=False)
        )
    if claimed:
        notify(session)  # due now: another process may send them at once


_RENEW = (
    update(Notification.__table__)
    .where(_n.id == bindparam("b_id"), _n.status == "sending", _n.attempts == bindparam("b_attempts"))
    .values(next_attempt_at=bindparam("b_lease_end", type_=UTCDateTime))
)


def renew(session: Session, claimed: list[Claimed], *, lease_end: datetime) -> None:
    """Extend the lease of rows whose sends are still in flight (fenced, as a record is: a row
    another worker took over stays its). Uncommon (a send still going a third of a lease after
    its claim, and each at shutdown), so one plain statement on both databases."""
    if claimed:
        session.execute(_RENEW, [{"b_id": c.id, "b_attempts": c.attempts, "b_lease_end": lease_end}
                                 for c in claimed])


# A row claimed ahead and never handed to a transport goes back as it was before the claim:
# due now, the attempt not counted; 'unknown' if a send of it may have left before. Not
# counting it gives the row its attempts of before the claim, so the next claim's fence value
# is this one's again: the claim's lease end tells them apart (a give-back retried after its
# commit's answer was lost must not undo another worker's claim of the row).
_UNCLAIM = (
    update(Notification.__table__)
    .where(_n.id == bindparam("b_id"), _n.status == "sending", _n.attempts == bindparam("b_attempts"),
           _n.next_attempt_at == bindparam("b_lease_end", type_=UTCDateTime))
    .values(status=case((_n.duplicate_possible, "unknown"), else_="queued"), attempts=_n.attempts - 1,
            next_attempt_at=bindparam("b_now", type_=UTCDateTime))
)


def unclaim(session: Session, claimed: list[Claimed], *, now: datetime) -> None:
    """Give back rows this worker claimed and did not send (fenced, as a record is, and by the
    claim's lease end: rows claimed ahead are never renewed)."""
    if not claimed:
        return
    assert all(c.lease_end is not None for c in claimed), "a give-back needs the claim's lease end"
    raw = sqlite_driver.connection(session)
    if raw is not None:
        outbox_sqlite.unclaim(raw, [(c.id, c.attempts, c.lease_end) for c in claimed], now=now)
    else:
        session.execute(_UNCLAIM, [{"b_id": c.id, "b_attempts": c.attempts, "b_lease_end": c.lease_end, "b_now": now}
                                   for c in claimed])
    notify(session)  # due now: another process may send them at once (as after a release)
