"""Rebuilding an index to hold only the rows where its column is set (migrations 0015 and 0018).

Built `WHERE column IS NOT NULL`, an index on a column that is mostly NULL holds only the rows with
a value: smaller, nothing written for the others, and on SQLite statistics that say so (0015
explains the plans they fixed). `column = ?` and `column IN (...)` still use it: an equality
implies the column is not NULL. Building each reads its table once; the log says how many rows.
A migration's own code, kept as it ran: a new rebuild gets new code, not a change here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

log = logging.getLogger("gateway.migrate")


def rebuild_where_set(indexes: Sequence[tuple[str, str, str]]) -> None:
    """Each (index, table, column): dropped and built again over the rows where the column is set."""
    conn = op.get_bind()
    analyzed = conn.dialect.name == "sqlite" and conn.execute(sa.text(
        "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'")).scalar()
    for name, table, column in indexes:
        rows = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
        log.info("building index", extra={"action": "db_index_building", "index": name, "table": table, "rows": rows})
        op.drop_index(name, table_name=table)
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, table, [column], unique=False, sqlite_where=where, postgresql_where=where)
        if analyzed:  # the old index's statistics went with it; the new one gets its own (see 0012)
            op.execute(f"ANALYZE {name}")


def rebuild_whole(indexes: Sequence[tuple[str, str, str]]) -> None:
    """The downgrade: each index over every row again."""
    for name, table, column in indexes:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, [column], unique=False)
