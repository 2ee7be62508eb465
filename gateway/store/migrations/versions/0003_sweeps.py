"""sweeps: marks, runs, retention audit; indexes for deadline and retention sweeps

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import gateway.store.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql')
_OPEN = sa.text("status IN ('open', 'reopened')")
_UNRETAINED = sa.text("status = 'resolved' AND retention_until IS NULL")
_PENDING = sa.text("fulfilled_at IS NULL")


def upgrade() -> None:
    op.create_table('sweep_marks',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('schedule', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('protocol_id', _ID, nullable=False),
    sa.Column('slot', sa.String(length=32), nullable=False),
    sa.Column('target_at', gateway.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('marked_at', gateway.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('notifications', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['protocol_id'], ['protocols.id'], name=op.f('fk_sweep_marks_protocol_id_protocols')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweep_marks')),
    sa.UniqueConstraint('schedule', 'protocol_id', 'slot', 'target_at',
                        name=op.f('uq_sweep_marks_schedule_protocol_id_slot_target_at'))
    )
    with op.batch_alter_table('sweep_marks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sweep_marks_protocol_id'), ['protocol_id'], unique=False)

    op.create_table('sweep_runs',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('schedule', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('at', gateway.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('period', sa.String(length=40), nullable=True),
    sa.Column('finished_at', gateway.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('result', _JSON, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweep_runs')),
    sa.UniqueConstraint('schedule', 'period', name=op.f('uq_sweep_runs_schedule_period'))
    )
    with op.batch_alter_table('sweep_runs', schema=None) as batch_op:
        batch_op.create_index('ix_sweep_runs_schedule_at', ['schedule', 'at'], unique=False)

    op.create_table('retention_audit',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('at', gateway.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('protocol_id', _ID, nullable=True),
    sa.Column('number', sa.String(length=30), nullable=True),
    sa.Column('rule', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('detail', _JSON, nullable=True),
    sa.ForeignKeyConstraint(['protocol_id'], ['protocols.id'], name=op.f('fk_retention_audit_protocol_id_protocols')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_audit'))
    )
    with op.batch_alter_table('retention_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retention_audit_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_retention_audit_protocol_id'), ['protocol_id'], unique=False)

    with op.batch_alter_table('protocols', schema=None) as batch_op:
        batch_op.create_index('ix_protocols_open_deadline', ['deadline_at', 'id'], unique=False,
                              sqlite_where=_OPEN, postgresql_where=_OPEN)
        batch_op.create_index('ix_protocols_open_last_event', ['last_event_at', 'id'], unique=False,
                              sqlite_where=_OPEN, postgresql_where=_OPEN)
        batch_op.create_index('ix_protocols_resolved_unretained', ['resolved_at', 'id'], unique=False,
                              sqlite_where=_UNRETAINED, postgresql_where=_UNRETAINED)
        batch_op.create_index('ix_protocols_consumer_email', ['consumer_email'], unique=False)
    with op.batch_alter_table('consumer_requests', schema=None) as batch_op:
        batch_op.create_index('ix_consumer_requests_pending', ['due_at'], unique=False,
                              sqlite_where=_PENDING, postgresql_where=_PENDING)

    # Protocols from before last_event_at existed: their last change is the best we know.
    op.execute("UPDATE protocols SET last_event_at = updated_at WHERE last_event_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('consumer_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_consumer_requests_pending')
    with op.batch_alter_table('protocols', schema=None) as batch_op:
        batch_op.drop_index('ix_protocols_consumer_email')
        batch_op.drop_index('ix_protocols_resolved_unretained')
        batch_op.drop_index('ix_protocols_open_last_event')
        batch_op.drop_index('ix_protocols_open_deadline')
    with op.batch_alter_table('retention_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retention_audit_protocol_id'))
        batch_op.drop_index(batch_op.f('ix_retention_audit_at'))
    op.drop_table('retention_audit')
    with op.batch_alter_table('sweep_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_sweep_runs_schedule_at')
    op.drop_table('sweep_runs')
    with op.batch_alter_table('sweep_marks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sweep_marks_protocol_id'))
    op.drop_table('sweep_marks')
