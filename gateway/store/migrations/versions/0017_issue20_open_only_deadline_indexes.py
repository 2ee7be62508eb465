"""The deadline and the last event are indexed over the open protocols only: the whole-column
indexes go

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

`ix_protocols_deadline_at` and `ix_protocols_last_event_at` (migrations 0001 and 0002) indexed
every protocol, and migration 0003 added twins over the open ones (`ix_protocols_open_deadline`,
`ix_protocols_open_last_event`) for the sweeps. The sweeps asked with the statuses as bound
values, which hid the twins from SQLite's planner, so the whole-column indexes stayed in use.
They now write the statuses into the SQL (`sweep_models.is_open`) and read the twins, which hold
only the protocols still open; nothing else asks those columns by an index. Every protocol
opened wrote an entry in each, and every event on a protocol moved its last-event entry: two
index entries fewer per protocol opened (~20 µs of the ~96 of SQLite's CPU an opening's row
costs, bench/README.md, "Fourteenth round"). Dropping an index is quick on both databases.
"""

import logging

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

log = logging.getLogger("gateway.migrate")
DROPPED = {"ix_protocols_deadline_at": "deadline_at", "ix_protocols_last_event_at": "last_event_at"}


def upgrade() -> None:
    for name in DROPPED:
        op.drop_index(name, table_name="protocols")


def downgrade() -> None:
    for name, column in DROPPED.items():
        log.info("building index", extra={"action": "db_index_building", "index": name, "table": "protocols"})
        op.create_index(name, "protocols", [column], unique=False)
