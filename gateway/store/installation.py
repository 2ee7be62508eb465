"""This database's own random key (made by migration 0010), for what must not repeat across
installations: the Message-IDs of emails."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.models import Installation


def installation_key(session: Session) -> str:
    return session.scalar(select(Installation.key).where(Installation.id == 1)) or ""
