"""The dispatcher's turn on PostgreSQL's driver: its claim, and its outcomes and evidence, one statement each.

Through the Core, a turn's record was two `executemany` of ~40 rows (the fenced outcome, the
attempt rows), each row's parameters built and processed by SQLAlchemy. Here each goes as
arrays, one per column, read back as rows by `unnest`: one statement and one round trip each,
whatever the turn's size, and asyncpg encodes the arrays itself. The same statements as the
Core ones in outbox.py, the values as outbox.record builds them (`tests/test_outbox_postgres.py`
compares the two paths on a real server).

The claim is outbox._claim_statement's text: through the Core, its ~130 rows a turn of a backlog
went through SQLAlchemy's result processing, a datetime converted twice and each row made an
object, where asyncpg's records already hold what outbox.Claimed takes (timestamps aware in UTC,
the JSONB decoded by the adapter's codec).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.store.drivers import Driver
from gateway.store.models import ACTIVE_CONDITION
from gateway.store.postgres_driver import PostgresDriver

# As outbox._claim_statement: disjoint across processes (SKIP LOCKED), and a row that was 'sending'
# (its worker died mid-send) or 'unknown' may already be in the consumer's hands.
_CLAIM = (
    "UPDATE notifications SET status = 'sending', attempts = attempts + 1, next_attempt_at = ?, "
    "duplicate_possible = CASE WHEN status IN ('sending', 'unknown') THEN true ELSE duplicate_possible END "
    f"WHERE id IN (SELECT id FROM notifications WHERE {ACTIVE_CONDITION} AND next_attempt_at <= ? "
    "ORDER BY next_attempt_at, id LIMIT ? FOR UPDATE SKIP LOCKED) "
    "RETURNING id, protocol_id, channel, recipient, template, subject, body_text, body_html, attempts, "
    "created_at, duplicate_possible, coalesce(retry_from, created_at), whatsapp_content"
)

# Fenced by status and attempts, as outbox._FENCED; each array in outbox._OUTCOME's order.
_RECORD = (
    "UPDATE notifications AS n SET status = r.status, last_error = r.error, error_code = r.code, "
    "next_attempt_at = coalesce(r.next, n.next_attempt_at), sent_at = coalesce(r.sent, n.sent_at), "
    "delivered_at = coalesce(r.delivered, n.delivered_at), provider_id = coalesce(r.provider_id, n.provider_id), "
    "provider = coalesce(r.provider, n.provider) "
    "FROM unnest(?::bigint[], ?::integer[], ?::text[], ?::text[], ?::text[], ?::timestamptz[], ?::timestamptz[], "
    "?::timestamptz[], ?::text[], ?::text[]) "
    "AS r(id, attempts, status, error, code, next, sent, delivered, provider_id, provider) "
    "WHERE n.id = r.id AND n.status = 'sending' AND n.attempts = r.attempts"
)
# Each array in outbox._ATTEMPT_COLUMNS' order.
_ATTEMPTS = (
    "INSERT INTO notification_attempts (notification_id, attempt, started_at, finished_at, outcome, error, "
    "error_code, provider_id, provider) SELECT * FROM unnest(?::bigint[], ?::integer[], ?::timestamptz[], "
    "?::timestamptz[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])"
)
_FULFILLED = ("UPDATE consumer_requests SET fulfilled_at = (SELECT sent_at FROM notifications "
              "WHERE notifications.id = consumer_requests.notification_id) "
              "WHERE notification_id = ANY(?::bigint[]) AND fulfilled_at IS NULL")


def claim(driver: PostgresDriver, *, now: datetime, lease_end: datetime, limit: int) -> list[Any]:
    """Take up to `limit` due rows; each with outbox.Claimed's fields in order, as the Core reads them."""
    return driver.query(_CLAIM, (lease_end, now, limit))


def record(driver: Driver, outcomes: list[tuple[Any, ...]], attempts: list[tuple[Any, ...]], done: list[int]) -> int:
    """Write outcomes and their attempt rows (outbox.record's values); how many rows were still ours."""
    owned = driver.execute(_RECORD, _columns(outcomes))
    driver.execute(_ATTEMPTS, _columns(attempts))
    if done:
        driver.execute(_FULFILLED, (done,))
    return owned


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows (at least one: a turn records only what finished) as one list per column, what `unnest`
    takes back apart."""
    return [list(column) for column in zip(*rows, strict=True)]
