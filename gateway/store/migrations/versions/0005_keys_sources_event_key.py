"""events.key (the key that posted each event), api_keys.sources, contacts hashed in rate-limit keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Rate-limit keys held contacts as they were (`resend:contact:maria@example.com`,
`inbound:+5511987654321`): an email of 186 characters or more overflowed the key's 200
characters on PostgreSQL. They now hold the contact's SHA-256 (`resend:contact:<hex>`,
`inbound:contact:<hex>`); the windows still open are carried over with their counts.
"""

import hashlib

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_RATE_LIMITS = sa.table("rate_limits", sa.column("key", sa.String),
                        sa.column("window_start", sa.DateTime(timezone=True)), sa.column("hits", sa.Integer))
# Old key prefix -> new one; the contact follows the prefix.
_CONTACT_KEYS = {"resend:contact:": "resend:contact:", "inbound:": "inbound:contact:"}


def _digest(contact: str) -> str:
    # The same as gateway.protocols.ratelimit.contact_digest (a migration imports no business
    # rule; tests/test_migration_0005.py holds the two equal).
    return hashlib.sha256(contact.casefold().encode("utf-8")).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key", sa.String(length=100), nullable=True))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sources", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                                      nullable=True))
    _hash_contacts_in_rate_limit_keys()


def _hash_contacts_in_rate_limit_keys() -> None:
    conn = op.get_bind()
    old = conn.execute(sa.select(_RATE_LIMITS.c.key, _RATE_LIMITS.c.window_start, _RATE_LIMITS.c.hits).where(
        sa.or_(_RATE_LIMITS.c.key.like("resend:contact:%"),
               sa.and_(_RATE_LIMITS.c.key.like("inbound:%"), sa.not_(_RATE_LIMITS.c.key.like("inbound:contact:%"))))
    )).all()
    merged: dict[tuple[str, object], int] = {}
    for key, window_start, hits in old:
        prefix = next(p for p in _CONTACT_KEYS if key.startswith(p))
        new_key = _CONTACT_KEYS[prefix] + _digest(key[len(prefix):])
        # Two spellings of one address ('Maria@', 'maria@') become one window: their hits add up.
        merged[(new_key, window_start)] = merged.get((new_key, window_start), 0) + hits
    for key in {key for key, _window_start, _hits in old}:
        conn.execute(_RATE_LIMITS.delete().where(_RATE_LIMITS.c.key == key))
    if merged:
        conn.execute(_RATE_LIMITS.insert(), [{"key": k, "window_start": w, "hits": h} for (k, w), h in merged.items()])


def downgrade() -> None:
    # A digest cannot be turned back into the contact: those windows are dropped (at worst a
    # consumer gets a few more resends within the hour the downgrade happens).
    op.execute(_RATE_LIMITS.delete().where(_RATE_LIMITS.c.key.like("%:contact:%")))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("sources")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("key")
