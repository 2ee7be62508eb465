"""installation key (unique Message-IDs across installations); who fulfilled a request, with a note

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

import secrets
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

import gateway.store.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    installation = op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("created_at", gateway.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_installation_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
    )
    # Made here, once per database: a copy of the schema elsewhere (staging, a move from SQLite
    # to PostgreSQL) gets a key of its own, so its Message-IDs never repeat this one's.
    op.bulk_insert(installation, [{"id": 1, "key": secrets.token_hex(8), "created_at": datetime.now(timezone.utc)}])
    with op.batch_alter_table("consumer_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fulfilled_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consumer_requests", schema=None) as batch_op:
        batch_op.drop_column("note")
        batch_op.drop_column("fulfilled_by")
    op.drop_table("installation")
