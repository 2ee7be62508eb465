"""WhatsApp: the consumer's WhatsApp number, the approved template of each message, the channel
of inbound messages, and each WhatsApp number's consent

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

Nullable columns and a new table: quick on both databases, whatever the number of rows.
Inbound messages received before this revision were all SMS, which the default says.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

from gateway.store.types import UTCDateTime

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("protocols", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("consumer_whatsapp", sa.String(length=20), nullable=True))
    # Inbound WhatsApp finds the consumer's protocols by it, as inbound SMS does by the phone.
    op.create_index("ix_protocols_consumer_whatsapp", "protocols", ["consumer_whatsapp"])
    with op.batch_alter_table("notifications", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("whatsapp_content", JSONDoc, nullable=True))
    with op.batch_alter_table("inbound_messages", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=16), nullable=False, server_default="sms"))
    op.create_table(
        "whatsapp_consents",
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("opted_in_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("opted_in_via", sa.String(length=100), nullable=True),
        sa.Column("opted_out_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("opted_out_keyword", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("phone", name="pk_whatsapp_consents"),
    )


def downgrade() -> None:
    op.drop_table("whatsapp_consents")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_column("channel")
    with op.batch_alter_table("notifications", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("whatsapp_content")
    op.drop_index("ix_protocols_consumer_whatsapp", table_name="protocols")
    with op.batch_alter_table("protocols", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("consumer_whatsapp")
