"""Anonymization asks for an email by its digest: the index of the raw address goes, and the
digest's index covers only the protocols that have an email

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

`ix_protocols_consumer_email` served one query: anonymization's "does another live protocol
still use this contact". The digest (SHA-256 of the case-folded address, migration 0007) is
indexed for the search by email already, so that query now asks by it, and the gateway keeps
one copy fewer of every consumer's address, an index entry fewer to write per protocol opened
and one fewer to clear per protocol anonymized (about 1,000 of the 8,400 pages a batch of
1,000 writes, over a million protocols). The digest's index is rebuilt `WHERE
consumer_email_digest IS NOT NULL`, for the reason of 0015: where most protocols have no email
(SMS only), SQLite's statistics would call the whole-column index useless and scan.
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

log = logging.getLogger("gateway.migrate")
WHERE = sa.text("consumer_email_digest IS NOT NULL")


def upgrade() -> None:
    conn = op.get_bind()
    analyzed = conn.dialect.name == "sqlite" and conn.execute(sa.text(
        "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'")).scalar()
    op.drop_index("ix_protocols_consumer_email", table_name="protocols")
    rows = conn.execute(sa.text("SELECT count(*) FROM protocols")).scalar()
    log.info("building index", extra={"action": "db_index_building", "index": "ix_protocols_consumer_email_digest",
                                      "table": "protocols", "rows": rows})
    op.drop_index("ix_protocols_consumer_email_digest", table_name="protocols")
    op.create_index("ix_protocols_consumer_email_digest", "protocols", ["consumer_email_digest"], unique=False,
                    sqlite_where=WHERE, postgresql_where=WHERE)
    if analyzed:  # the old index's statistics went with it; the new one gets its own (see 0012)
        op.execute("ANALYZE ix_protocols_consumer_email_digest")


def downgrade() -> None:
    op.drop_index("ix_protocols_consumer_email_digest", table_name="protocols")
    op.create_index("ix_protocols_consumer_email_digest", "protocols", ["consumer_email_digest"], unique=False)
    op.create_index("ix_protocols_consumer_email", "protocols", ["consumer_email"], unique=False)
