"""Sector rules (issue 19): protocols.retention_extension_years, protocols.parent_id, and rows of the old profile `cl` renamed `cl-sello-sernac`

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

`cl` applied Ley 19.496 art. 56, which binds only financial providers holding the SERNAC
seal; the profile is renamed for that. Rows are renamed so that every query by profile name
(the retention sweep's, reports') finds them; the events keep the name they were posted with.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_PROTOCOLS = sa.table("protocols", sa.column("profile", sa.String))
_RENAMED = {"cl": "cl-sello-sernac"}  # old -> new, as gateway.protocols.profiles.ALIASES


def upgrade() -> None:
    # recreate="never": on SQLite these are plain ALTERs. Copying `protocols` instead would fail
    # on any database with events in it (their foreign keys refuse the DROP of the old table).
    with op.batch_alter_table("protocols", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("retention_extension_years", sa.Integer(), server_default="0",
                                      nullable=False))
        batch_op.add_column(sa.Column("parent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                      nullable=True))
        batch_op.create_index(batch_op.f("ix_protocols_parent_id"), ["parent_id"], unique=False)
    for old, new in _RENAMED.items():
        op.execute(_PROTOCOLS.update().where(_PROTOCOLS.c.profile == old).values(profile=new))


def downgrade() -> None:
    for old, new in _RENAMED.items():
        op.execute(_PROTOCOLS.update().where(_PROTOCOLS.c.profile == new).values(profile=old))
    with op.batch_alter_table("protocols", schema=None, recreate="never") as batch_op:
        batch_op.drop_index(batch_op.f("ix_protocols_parent_id"))
        batch_op.drop_column("parent_id")  # SQLite 3.35 and later drop a column in place
        batch_op.drop_column("retention_extension_years")
