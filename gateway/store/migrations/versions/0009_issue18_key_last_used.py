"""api_keys.last_used_at: when each key was last used, to the minute

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

Written at most once a minute per key (gateway.api.key_usage), never on every request: the
keys page and `keys list` show it so that an operator can tell a key in use from a forgotten one.
"""

import sqlalchemy as sa
from alembic import op

import gateway.store.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("last_used_at", gateway.store.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("last_used_at")
