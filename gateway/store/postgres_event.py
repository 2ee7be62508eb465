"""An event's row, its notifications and its answer in one PostgreSQL statement: one round trip.

Elsewhere these are three: the event's INSERT (its id), the notifications' (they name the event;
their ids), then an UPDATE of the event's answer, which names the notifications' ids. On
PostgreSQL each is a round trip, about 65 µs of the gateway's CPU and the server's latency
(`py-spy record --gil` of the ingest). Here the ids are drawn from the tables' sequences inside
the statement, so each row is written once, complete:

    WITH event_id AS (SELECT nextval(<events' sequence>) AS id),
         ids AS (SELECT nextval(<notifications' sequence>) AS id, position FROM generate_series(1, k) …),
         inserted AS (INSERT INTO notifications (id, event_id, …) SELECT … JOIN ids USING (position))
    INSERT INTO events (id, …, answer) SELECT event_id.id, …, <the answer, each notification given its id> …
    RETURNING id, (SELECT array_agg(id ORDER BY position) FROM ids)

A CTE that calls nextval is evaluated once (PostgreSQL materializes a CTE with volatile functions),
so every reference sees the same ids. The foreign keys hold: PostgreSQL checks them at the end of
the statement, when the event exists. The answer given is the Python one with each notification's
`id` null; the statement sets each from `ids` by its position in the list, which is the rows'.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import String, Table

from gateway.store.insert_shapes import InsertShape


@lru_cache(maxsize=32)
def event_sql(events: Table, event: InsertShape, notifications: Table, notification: InsertShape, count: int,
              dialect: Any) -> str:
    """The statement for an event of shape `event` and `count` (≥ 1) notifications of shape
    `notification`; its parameters: the event's, then each notification's, in order."""
    event_names = event.columns
    width = len(notification.columns)
    types = value_types(notifications, notification.columns, dialect)
    values = ", ".join(
        "(" + ", ".join(f"${len(event_names) + row * width + i + 1}::{kind}" for i, kind in enumerate(types))
        + f", {row + 1})"
        for row in range(count)
    )
    given = ", ".join(f"p{i}" for i in range(width))
    answer_at = event_names.index("answer") + 1
    selected = ", ".join(
        f"jsonb_set(${i}::jsonb, '{{notifications}}', ("
        f"SELECT jsonb_agg(entry || jsonb_build_object('id', ids.id) ORDER BY position) "
        f"FROM jsonb_array_elements(${i}::jsonb -> 'notifications') WITH ORDINALITY AS listed(entry, position) "
        f"JOIN ids USING (position)))" if i == answer_at else f"${i}"
        for i in range(1, len(event_names) + 1)
    )
    return (
        f"WITH event_id AS (SELECT nextval(pg_get_serial_sequence('{events.name}', 'id')) AS id), "
        f"ids AS (SELECT nextval(pg_get_serial_sequence('{notifications.name}', 'id')) AS id, position "
        f"FROM generate_series(1, {count}) AS position), "
        f"inserted AS (INSERT INTO {notifications.name} (id, event_id, {', '.join(notification.columns)}) "
        f"SELECT ids.id, event_id.id, {given} FROM (VALUES {values}) AS given({given}, position) "
        f"JOIN ids USING (position) CROSS JOIN event_id) "
        f"INSERT INTO {events.name} (id, {', '.join(event_names)}) SELECT event_id.id, {selected} FROM event_id "
        f"RETURNING id, (SELECT array_agg(id ORDER BY position) FROM ids)"
    )


def value_types(table: Table, columns: Sequence[str], dialect: Any) -> list[str]:
    """What a VALUES list's placeholders are cast to: a placeholder there has no column to take its
    type from. The columns' types, but a string's without its length: a cast to VARCHAR(n) cuts a
    longer value short, silently, where the INSERT refuses it ("value too long"), as one row's does."""
    by_name = {column.name: column for column in table.columns}
    return [(String() if isinstance(by_name[name].type, String) else by_name[name].type).compile(dialect=dialect)
            for name in columns]


def params(event: InsertShape, event_values: dict[str, Any], notification: InsertShape,
           rows: Sequence[dict[str, Any]]) -> list[Any]:
    return [*event.params(event_values), *(param for values in rows for param in notification.params(values))]
