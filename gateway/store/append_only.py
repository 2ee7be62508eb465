"""The record is append-only: what an event said and what a message said are never edited.

Session listeners refuse, before anything reaches the database:
- a change to an event's facts (its source, id, type, times, `data`, fingerprint);
- a change to a notification's rendered content (recipient, channel, template and its
  hash, locale, subject, text, HTML, creation time). Status, attempts and provider
  fields change as the message travels; what it said was written once, at enqueue;
- a change to an attempt or a provider callback (the evidence of each try and receipt);
- deleting any of these rows, or a protocol.

Both unit-of-work flushes and `session.execute(update(...) / delete(...))` on these tables are
checked. (Raw SQL text is not. The gateway's own, straight to the driver on the hot paths
(store/sqlite_driver.py, store/postgres_driver.py, delivery/outbox_sqlite.py), inserts rows,
sets an event's answer, and moves a notification's status and attempts: no guarded column.)

The one exception is anonymization when retention ends (LGPD arts. 15-16): code that
redacts personal data calls `allow_redaction(session, reason)` in its transaction, and every
change it makes to guarded rows until that transaction ends is allowed and logged with the
action `record_redacted` and the reason:

    async with db.write() as session:
        allow_redaction(session, "anonymization: retention ended 2028-11-29")
        ...   # the guard is back once this transaction commits or rolls back
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Delete, Update, event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from gateway.store.models import Attempt, Event, Notification, Protocol, ProviderCallback

log = logging.getLogger("gateway.store")

LIFTED = "gateway.append_only.lifted"  # session.info key: the reason the guard is lifted

# Per table: the columns no update may change (None: no column may change).
GUARDED: dict[str, frozenset[str] | None] = {
    Event.__tablename__: frozenset(
        {"protocol_id", "source", "event_id", "type", "occurred_at", "received_at", "data", "fingerprint",
                   "key"}),
    Notification.__tablename__: frozenset(
        {"protocol_id", "event_id", "channel", "audience", "recipient", "template", "template_hash", "locale",
         "subject", "body_text", "body_html", "whatsapp_content", "created_at"}),
    Attempt.__tablename__: None,
    ProviderCallback.__tablename__: None,
}
NO_DELETE = frozenset({Protocol.__tablename__, Event.__tablename__, Notification.__tablename__,
                       Attempt.__tablename__, ProviderCallback.__tablename__})


class AppendOnlyViolation(Exception):
    """An attempt to edit or delete what the record must keep as it was."""


def allow_redaction(session: AsyncSession | Session, reason: str) -> None:
    """Allow changes to guarded rows in this session until its transaction ends (anonymization only)."""
    if not reason.strip():
        raise ValueError("say why the record is being changed")
    session.info[LIFTED] = reason


@event.listens_for(Session, "after_transaction_end")
def _restore_guard(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost transaction: nested savepoints keep the lift
        session.info.pop(LIFTED, None)


def _refuse_or_log(session: Session, table: str, what: str, ids: Any) -> None:
    reason = session.info.get(LIFTED)
    if reason is None:
        raise AppendOnlyViolation(f"{table}: {what} refused: the record is append-only")
    log.info("record redacted", extra={"action": "record_redacted", "table": table, "change": what,
                                       "ids": ids, "reason": reason})


@event.listens_for(Session, "before_flush")
def _check_flush(session: Session, _context: Any, _instances: Any) -> None:
    for obj in session.dirty:
        table = getattr(obj, "__tablename__", None)
        if table not in GUARDED:
            continue
        state = inspect(obj)
        columns = GUARDED[table]
        changed = sorted(attr.key for attr in state.mapper.column_attrs
                         if (columns is None or attr.columns[0].name in columns)
                         and state.attrs[attr.key].history.has_changes())
        if changed:
            _refuse_or_log(session, table, f"changing {', '.join(changed)}", [state.identity])
    for obj in session.deleted:
        table = getattr(obj, "__tablename__", None)
        if table in NO_DELETE:
            _refuse_or_log(session, table, "deleting rows", [inspect(obj).identity])


@event.listens_for(Session, "do_orm_execute")
def _check_statement(state: ORMExecuteState) -> None:
    statement = state.statement
    if not isinstance(statement, (Update, Delete)):
        return
    table = getattr(statement.table, "name", None)
    if isinstance(statement, Delete):
        if table in NO_DELETE:
            _refuse_or_log(state.session, table, "deleting rows", "by statement")
        return
    if table not in GUARDED:
        return
    columns = GUARDED[table]
    # The SET clause of update().values(...): keys are columns or their names.
    names = {getattr(key, "name", key) for key in statement._values or {}}  # noqa: SLF001 (no public accessor)
    if isinstance(state.parameters, list):  # bulk update by primary key: the rows carry the values
        names |= {key for row in state.parameters for key in row}
    touched = sorted(names if columns is None else names & columns)
    if touched:
        _refuse_or_log(state.session, table, f"changing {', '.join(map(str, touched))}", "by statement")
