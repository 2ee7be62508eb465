"""A notification's provider id is indexed where it is set

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08

`ix_notifications_provider_id` held every notification, the queued ones under NULL: each message
made wrote a NULL entry, and sending it took that entry out and put its provider id in (the
outbox's record, one statement a turn). Built `WHERE provider_id IS NOT NULL`, as migration 0015
did for other columns, it holds the sent messages only: an index entry fewer for each message
made and one fewer to take out when it is sent. A receipt's lookup by provider id
(`provider_id = ?`) still uses it: an equality implies the column is not NULL. Building it reads
the table once.
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

log = logging.getLogger("gateway.migrate")
NAME, TABLE, COLUMN = "ix_notifications_provider_id", "notifications", "provider_id"


def upgrade() -> None:
    conn = op.get_bind()
    analyzed = conn.dialect.name == "sqlite" and conn.execute(sa.text(
        "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'")).scalar()
    rows = conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar()
    log.info("building index", extra={"action": "db_index_building", "index": NAME, "table": TABLE, "rows": rows})
    op.drop_index(NAME, table_name=TABLE)
    where = sa.text(f"{COLUMN} IS NOT NULL")
    op.create_index(NAME, TABLE, [COLUMN], unique=False, sqlite_where=where, postgresql_where=where)
    if analyzed:  # the old index's statistics went with it; the new one gets its own (see 0012)
        op.execute(f"ANALYZE {NAME}")


def downgrade() -> None:
    op.drop_index(NAME, table_name=TABLE)
    op.create_index(NAME, TABLE, [COLUMN], unique=False)
