"""Sector rules (issue 19): protocols of the old profile `cl` now name `cl-sello-sernac`

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-05

`cl` applied Ley 19.496 art. 56, which binds only financial providers holding the SERNAC
seal; the profile is renamed for that. Rows are renamed so that every query by profile name
(the retention sweep's, reports') finds them; the events keep the name they were posted with.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None

_PROTOCOLS = sa.table("protocols", sa.column("profile", sa.String))
_RENAMED = {"cl": "cl-sello-sernac"}  # old -> new, as gateway.protocols.profiles.ALIASES


def upgrade() -> None:
    for old, new in _RENAMED.items():
        op.execute(_PROTOCOLS.update().where(_PROTOCOLS.c.profile == old).values(profile=new))


def downgrade() -> None:
    for old, new in _RENAMED.items():
        op.execute(_PROTOCOLS.update().where(_PROTOCOLS.c.profile == new).values(profile=old))
