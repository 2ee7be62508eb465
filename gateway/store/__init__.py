"""The database: models, migrations, sessions.

Importing the package installs the append-only guard on every session (see append_only.py).
"""

from gateway.store import append_only as _append_only  # noqa: F401  (registers the session listeners)
