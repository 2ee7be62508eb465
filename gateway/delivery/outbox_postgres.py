"""The dispatcher's record on PostgreSQL's driver: a turn's outcomes and evidence, one statement each.

Through the Core, a turn's record was two `executemany` of ~40 rows (the fenced outcome, the
attempt rows), each row's parameters built and processed by SQLAlchemy. Here each goes as
arrays, one per column, read back as rows by `unnest`: one statement and one round trip each,
whatever the turn's size, and asyncpg encodes the arrays itself. The same statements as the
Core ones in outbox.py, the values as outbox.record builds them (`tests/test_outbox_postgres.py`
compares the two paths on a real server).
"""

from __future__ import annotations

from typing import Any

from gateway.store.drivers import Driver

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
