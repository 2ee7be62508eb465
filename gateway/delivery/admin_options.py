"""What `outbox` commands and the API accept, apart from the queries: the CLI builds its help from
these without importing SQLAlchemy (`protocol-gateway --help` starts in a fraction of a second)."""

STATUSES = ("queued", "sending", "sent", "delivered", "read", "undelivered", "failed", "dead", "unknown", "cancelled")
RETRYABLE = ("dead", "failed", "undelivered", "unknown", "queued")
ATTENTION = ("dead", "failed", "undelivered", "unknown")  # what `outbox list` shows by default
DEFAULT_LIMIT, MAX_LIMIT = 50, 1000
