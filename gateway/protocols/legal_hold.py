"""Legal holds: a protocol under hold is never anonymized, whatever its retention says."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from gateway.errors import Conflict, NotFound
from gateway.store.database import Database
from gateway.store.models import Protocol
from gateway.store.sweep_models import RetentionAudit

log = logging.getLogger(__name__)


async def set_legal_hold(db: Database, number: str, hold: bool, *, at: datetime, actor: str,
                         reason: str | None = None) -> dict[str, Any]:
    """Place or lift a legal hold; audited. Returns the protocol's hold and whether it changed."""
    async with db.write() as session:
        row = (await session.execute(select(Protocol.id, Protocol.status, Protocol.legal_hold)
                                     .where(Protocol.number == number))).first()
        if row is None:
            raise NotFound(f"no protocol {number}")
        if row.status == "anonymized" and hold:
            raise Conflict(f"protocol {number} is anonymized: no personal data is left to hold")
        changed = row.legal_hold != hold
        if changed:
            await session.execute(update(Protocol).where(Protocol.id == row.id).values(legal_hold=hold)
                                  .execution_options(synchronize_session=False))
            session.add(RetentionAudit(at=at, action="hold_placed" if hold else "hold_lifted", protocol_id=row.id,
                                       number=number, actor=actor, rule=None,
                                       detail={"reason": reason} if reason else None))
    log.info("legal hold %s", "placed" if hold else "lifted",
             extra={"action": "legal_hold_placed" if hold else "legal_hold_lifted", "number": number,
                    "changed": changed})
    return {"number": number, "legal_hold": hold, "changed": changed}
