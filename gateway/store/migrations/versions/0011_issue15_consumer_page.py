"""protocols.page_token_hash: the consumer's page link, looked up by the SHA-256 of its token

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

The token is derived from a secret outside the database (gateway.protocols.page_links); only
its hash is kept, set when a message first carries the link. Protocols opened before this
revision get theirs with their next message. Adding a nullable column and an index over
NULLs is quick on both databases, whatever the number of protocols.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("protocols", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("page_token_hash", sa.String(length=64), nullable=True))
    op.create_index("ix_protocols_page_token_hash", "protocols", ["page_token_hash"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_protocols_page_token_hash", table_name="protocols")
    with op.batch_alter_table("protocols", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("page_token_hash")
