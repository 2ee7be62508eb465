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

from gateway.store.migrations.where_set import rebuild_where_set, rebuild_whole

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

INDEXES = [("ix_notifications_provider_id", "notifications", "provider_id")]


def upgrade() -> None:
    rebuild_where_set(INDEXES)


def downgrade() -> None:
    rebuild_whole(INDEXES)
