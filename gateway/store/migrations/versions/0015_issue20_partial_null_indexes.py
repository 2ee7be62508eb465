"""Indexes on columns that are nearly always NULL cover only the rows that have a value:
`ix_protocols_consumer_whatsapp`, `ix_protocols_parent_id` and `ix_notifications_fallback_of`

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

A WhatsApp number of its own, a parent protocol, a fallback of another message: most rows have
none. Once ANALYZE has run on SQLite, its statistics say each of these indexes finds every row
for a value (they all hold NULL), so the planner reads the whole table instead: anonymization's
"is this contact still used" query (email OR phone OR WhatsApp) read every protocol for every
batch of 200 (0.27 s a batch over 1,000,000 protocols), and an inbound message's lookup by phone
and the escalations of a protocol likewise. Built `WHERE column IS NOT NULL`, an index holds only
the rows with a value, its statistics say so, and `column = ?` or `column IN (...)` still uses
it (an equality implies the column is not NULL). Smaller, too. Building each reads the table once.
"""

from gateway.store.migrations.where_set import rebuild_where_set, rebuild_whole

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

INDEXES = [("ix_protocols_consumer_whatsapp", "protocols", "consumer_whatsapp"),
           ("ix_protocols_parent_id", "protocols", "parent_id"),
           ("ix_notifications_fallback_of", "notifications", "fallback_of")]


def upgrade() -> None:
    rebuild_where_set(INDEXES)


def downgrade() -> None:
    rebuild_whole(INDEXES)
