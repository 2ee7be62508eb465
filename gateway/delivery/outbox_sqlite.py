"""The dispatcher's turn on SQLite's writer: the claim and the record, each statement one step.

The writer is a thread of the gateway's process, and sqlite3 lets go of the GIL around every
step of a statement: each row an `executemany` binds, each row a RETURNING gives back. While
the event loop is busy sending, the writer then waits for the GIL at every step and the two
threads hand it back and forth (profiled on the SMS drain: the record's statements took three
times their CPU in wall time, and the turns ran back to back while slots stood empty). Here
a batch travels as one JSON parameter, read by `json_each`, and the claimed rows come back
as one JSON array: a handful of steps a turn, whatever its size.

Same statements as the Core ones in outbox.py (which PostgreSQL runs), the values stored as
SQLAlchemy stores them (`tests/test_outbox_sqlite.py` compares the two).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from gateway.store import sqlite_driver
from gateway.store.models import ACTIVE_CONDITION

_DUE = (f"SELECT json_group_array(id) FROM (SELECT id FROM notifications WHERE {ACTIVE_CONDITION} "
        "AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?)")
# A row that was 'sending' (lease expired: its worker died mid-send) or 'unknown' may already
# be in the consumer's hands: the record says so.
_TAKE = ("UPDATE notifications SET status = 'sending', attempts = attempts + 1, next_attempt_at = ?, "
         "duplicate_possible = CASE WHEN status IN ('sending', 'unknown') THEN 1 ELSE duplicate_possible END "
         "WHERE id IN (SELECT value FROM json_each(?))")
_TAKEN = ("SELECT json_group_array(json_array(id, protocol_id, channel, recipient, template, subject, body_text, "
          "body_html, attempts, created_at, duplicate_possible, coalesce(retry_from, created_at), whatsapp_content)) "
          "FROM notifications WHERE id IN (SELECT value FROM json_each(?))")

# Fenced by status and attempts, as outbox._FENCED: a worker whose lease was taken over owns nothing.
# Each outcome is an array in outbox._OUTCOME's order (built once there for both paths).
_RECORD = (
    "UPDATE notifications SET status = r.value ->> 2, last_error = r.value ->> 3, error_code = r.value ->> 4, "
    "next_attempt_at = coalesce(r.value ->> 5, next_attempt_at), sent_at = coalesce(r.value ->> 6, sent_at), "
    "delivered_at = coalesce(r.value ->> 7, delivered_at), provider_id = coalesce(r.value ->> 8, provider_id), "
    "provider = coalesce(r.value ->> 9, provider) "
    "FROM json_each(?) AS r WHERE notifications.id = r.value ->> 0 AND notifications.status = 'sending' "
    "AND notifications.attempts = r.value ->> 1"
)
# Each evidence row an array in outbox._ATTEMPT_COLUMNS' order.
_ATTEMPTS = ("INSERT INTO notification_attempts (notification_id, attempt, started_at, finished_at, outcome, error, "
             "error_code, provider_id, provider) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, "
             "value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8 FROM json_each(?)")
_FULFILLED = ("UPDATE consumer_requests SET fulfilled_at = (SELECT sent_at FROM notifications "
              "WHERE notifications.id = consumer_requests.notification_id) "
              "WHERE notification_id IN (SELECT value FROM json_each(?)) AND fulfilled_at IS NULL")
_UNCLAIM = (
    "UPDATE notifications SET status = CASE WHEN duplicate_possible THEN 'unknown' ELSE 'queued' END, "
    "attempts = attempts - 1, next_attempt_at = ? "
    "FROM json_each(?) AS r WHERE notifications.id = r.value ->> 0 AND notifications.status = 'sending' "
    "AND notifications.attempts = r.value ->> 1 AND notifications.next_attempt_at = r.value ->> 2"
)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_stored_text)


def _stored_text(value: datetime) -> str | None:
    """A datetime as SQLite's DATETIME stores it (sqlite_driver.datetime_text). A send's times are
    UTC and each its own instant: written straight, the UTC text is the aware value's ISO text
    without its "+00:00", where datetime_text's memo would only miss (~1 µs an SMS a time)."""
    if type(value) is datetime and value.tzinfo is timezone.utc:
        return value.isoformat(" ", "microseconds")[:-6]
    return sqlite_driver.datetime_text(value)


def claim(raw: Any, *, now: datetime, lease_end: datetime, limit: int) -> list[tuple[Any, ...]]:
    """Take up to `limit` due rows; each as outbox.Claimed's fields, typed as SQLAlchemy reads them."""
    (ids,) = sqlite_driver.query_one(raw, _DUE, (sqlite_driver.datetime_text(now), limit))  # type: ignore[misc]
    if ids == "[]":
        return []
    sqlite_driver.execute(raw, _TAKE, (sqlite_driver.datetime_text(lease_end), ids))
    (taken,) = sqlite_driver.query_one(raw, _TAKEN, (ids,))  # type: ignore[misc]
    return [(*head, sqlite_driver.stored_datetime(created), bool(duplicate), sqlite_driver.stored_datetime(give_up),
             sqlite_driver.json_value(content))
            for *head, created, duplicate, give_up, content in json.loads(taken)]


def record(raw: Any, outcomes: list[tuple[Any, ...]], attempts: list[tuple[Any, ...]], done: list[int]) -> int:
    """Write outcomes and their attempt rows (outbox.record's values); how many rows were still ours."""
    owned = sqlite_driver.execute(raw, _RECORD, (_json(outcomes),))
    sqlite_driver.execute(raw, _ATTEMPTS, (_json(attempts),))
    if done:
        sqlite_driver.execute(raw, _FULFILLED, (_json(done),))
    return owned


def unclaim(raw: Any, rows: list[tuple[int, int, datetime]], *, now: datetime) -> None:
    """Give back (id, attempts, lease end) claimed and never sent, as outbox.unclaim does."""
    sqlite_driver.execute(raw, _UNCLAIM, (sqlite_driver.datetime_text(now), _json(rows)))
