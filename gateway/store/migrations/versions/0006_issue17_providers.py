"""notifications.provider, notification_attempts.provider: which named relay or account was tried;
email_opt_outs: addresses that unsubscribed (List-Unsubscribe one-click)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

import gateway.store.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(32), nullable=True))
    with op.batch_alter_table("notification_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(32), nullable=True))
    op.create_table(
        "email_opt_outs",
        sa.Column("email_key", sa.String(64), nullable=False),
        sa.Column("opted_out_at", gateway.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("via", sa.String(20), nullable=False),
        sa.Column("notification_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(["notification_id"], ["notifications.id"],
                                name=op.f("fk_email_opt_outs_notification_id_notifications")),
        sa.PrimaryKeyConstraint("email_key", name=op.f("pk_email_opt_outs")),
    )


def downgrade() -> None:
    op.drop_table("email_opt_outs")
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+, PostgreSQL) rather than a batch: SQLite's batch
    # recreates the table, which its foreign keys from attempts and callbacks refuse.
    op.execute("ALTER TABLE notification_attempts DROP COLUMN provider")
    op.execute("ALTER TABLE notifications DROP COLUMN provider")
