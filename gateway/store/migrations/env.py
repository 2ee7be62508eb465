"""Alembic environment: always handed a live connection by gateway.store.migrate."""

from alembic import context

from gateway.store.models import Base
import gateway.store.sweep_models  # noqa: F401  (the sweeps' tables join Base.metadata)
import gateway.store.console_models  # noqa: F401  (the console's sessions join Base.metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `protocol-gateway migrate`")

# Batch mode from the first migration: SQLite cannot ALTER most things in place.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
