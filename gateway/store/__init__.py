"""The database: SQLAlchemy models, engines and sessions, group commit, Alembic migrations.

Storage knows no business rule: it imports nothing from `protocols`, `rendering`, `delivery`,
`sweeps`, `api` or `web`. Importing the package installs the append-only guard on every
session (see append_only.py).
"""

from gateway.store import append_only as _append_only  # noqa: F401  (registers the session listeners)
