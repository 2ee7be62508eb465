"""What consumers asked for, with their legal clocks (the history, a copy, a postal letter).

The gateway fulfils a request by email or SMS itself, when its message leaves. A postal
(`mail`) request is operations' to fulfil: they mark it, and the record says by which key,
when, and what they noted; until then its clock runs in the digest.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from gateway.clock import iso
from gateway.errors import Conflict, NotFound
from gateway.store.database import Database
from gateway.store.models import ConsumerRequest, Protocol


def request_document(r: ConsumerRequest) -> dict[str, Any]:
    return {"id": r.id, "channel": r.channel, "history": r.kind == "history", "requested_at": iso(r.requested_at),
            "due_at": iso(r.due_at), "fulfilled_at": iso(r.fulfilled_at), "fulfilled_by": r.fulfilled_by,
            "note": r.note}


def requests_document(requests: Iterable[ConsumerRequest]) -> list[dict[str, Any]]:
    return [request_document(r) for r in requests]


async def protocol_requests(db: Database, number: str) -> list[dict[str, Any]]:
    """What the consumer asked for on protocol `number`, oldest first, each with its legal clock."""
    async with db.read() as session:
        protocol_id = await session.scalar(select(Protocol.id).where(Protocol.number == number))
        if protocol_id is None:
            raise NotFound(f"no protocol {number}")
        rows = (await session.scalars(select(ConsumerRequest).where(ConsumerRequest.protocol_id == protocol_id)
                                      .order_by(ConsumerRequest.id))).all()
        return requests_document(rows)


async def fulfil_postal(db: Database, number: str, request_id: int, *, at: datetime, by: str,
                        note: str | None) -> tuple[dict[str, Any], bool]:
    """Mark a postal request fulfilled; (the request, whether this call changed it). Marking it
    again changes nothing; a request the gateway fulfils by itself (email, SMS) is a conflict."""
    async with db.write() as session:
        row = (await session.execute(
            select(ConsumerRequest).join(Protocol, Protocol.id == ConsumerRequest.protocol_id)
            .where(Protocol.number == number, ConsumerRequest.id == request_id))).scalar_one_or_none()
        if row is None:
            raise NotFound(f"no request {request_id} on protocol {number}")
        if row.channel != "mail":
            raise Conflict(f"request {request_id} goes by {row.channel}: the gateway marks it fulfilled when its "
                           "message leaves")
        if row.fulfilled_at is not None:
            return request_document(row), False
        row.fulfilled_at, row.fulfilled_by, row.note = at, by, note
        await session.flush()
        return request_document(row), True
