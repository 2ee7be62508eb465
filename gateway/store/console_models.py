"""The operations console's sessions: one row per signed-in browser.

Only the SHA-256 of the session cookie is stored, as for API keys: a reader of the database or
its backups gets no working session. A session names the key it was opened with; the key's
scopes (and its revocation) are read at every request, so revoking the key ends its sessions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, Id
from gateway.store.types import UTCDateTime


class ConsoleSession(Base):
    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_name: Mapped[str] = mapped_column(String(100))
    # The token every form carries (CSRF); random per session, compared in constant time.
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
