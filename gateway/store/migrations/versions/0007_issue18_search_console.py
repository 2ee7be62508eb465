"""protocols.consumer_email_digest and the indexes search needs (GET /v1/protocols); console_sessions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Search finds an address by the SHA-256 of its case-folded form (`Maria@Example.com` finds
`maria@example.com`), through an index; existing rows are filled here. Listing newest first,
alone or within a category, walks (opened_at, id) by keyset. `console_sessions` holds the
operations console's signed-in browsers (the SHA-256 of each cookie, never the cookie).
"""

import hashlib

import sqlalchemy as sa
from alembic import op

import gateway.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_PROTOCOLS = sa.table("protocols", sa.column("id", sa.Integer), sa.column("consumer_email", sa.String),
                      sa.column("consumer_email_digest", sa.String))
_BATCH = 1000  # rows per UPDATE round trip when filling the digest


def _digest(email: str) -> str:
    # The same as gateway.store.models.email_digest (a migration imports no business rule;
    # tests/test_search.py holds the two equal).
    return hashlib.sha256(email.casefold().encode("utf-8")).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("protocols", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consumer_email_digest", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_protocols_consumer_email_digest", ["consumer_email_digest"], unique=False)
        batch_op.create_index("ix_protocols_opened", ["opened_at", "id"], unique=False)
        batch_op.create_index("ix_protocols_category_opened", ["category", "opened_at", "id"], unique=False)
    _fill_digests()
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("key_name", sa.String(length=100), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", gateway.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", gateway.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", gateway.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_console_sessions_token_hash")),
    )
    op.create_index(op.f("ix_console_sessions_expires_at"), "console_sessions", ["expires_at"], unique=False)


def _fill_digests() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_PROTOCOLS.c.id, _PROTOCOLS.c.consumer_email).where(
        _PROTOCOLS.c.consumer_email.is_not(None))).all()
    update = _PROTOCOLS.update().where(_PROTOCOLS.c.id == sa.bindparam("row_id")).values(
        consumer_email_digest=sa.bindparam("digest"))
    for start in range(0, len(rows), _BATCH):
        conn.execute(update, [{"row_id": i, "digest": _digest(e)} for i, e in rows[start:start + _BATCH]])


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sessions_expires_at"), table_name="console_sessions")
    op.drop_table("console_sessions")
    with op.batch_alter_table("protocols", schema=None) as batch_op:
        batch_op.drop_index("ix_protocols_category_opened")
        batch_op.drop_index("ix_protocols_opened")
        batch_op.drop_index("ix_protocols_consumer_email_digest")
        batch_op.drop_column("consumer_email_digest")
