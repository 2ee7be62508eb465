"""notifications.provider, notification_attempts.provider: which named relay or account was tried

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(32), nullable=True))
    with op.batch_alter_table("notification_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notification_attempts", schema=None) as batch_op:
        batch_op.drop_column("provider")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("provider")
