"""The evidence of one protocol, for the consumer or a regulator, with a digest of it.

The export is `{"format", "exported_at", "record", "digest"}`. The `record` holds every
stored column of the protocol, its events (with their data), every notification as it was
sent (recipient, template and template hash, rendered subject, text and HTML) with each
attempt and each provider callback (receipt) about it, the consumer's requests and the
inbound SMS the gateway answered for it. Times are RFC 3339 in UTC; rows are in id order.

`digest.value` is the SHA-256, in hex, of the record's canonical JSON: the `record` object
alone (not `format`, `exported_at` or `digest`), keys sorted at every level, no whitespace
between tokens, non-ASCII characters written as themselves, UTF-8:

    python3 -c 'import hashlib, json, sys; d = json.load(sys.stdin);
    print(hashlib.sha256(json.dumps(d["record"], sort_keys=True, separators=(",", ":"),
    ensure_ascii=False).encode()).hexdigest() == d["digest"]["value"])' < export.json

Exporting an unchanged record again gives the same digest; any change to it, another.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import iso
from gateway.errors import NotFound
from gateway.store.database import Database
from gateway.store.models import (
    Attempt,
    ConsumerRequest,
    Event,
    InboundMessage,
    Notification,
    Protocol,
    ProviderCallback,
)

FORMAT = "protocol-gateway.export/1"
CANONICAL = "JSON of `record`: keys sorted, separators ',' and ':', no whitespace, non-ASCII unescaped, UTF-8"


def canonical(record: Any) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def digest_of(record: Any) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def verify(document: dict[str, Any]) -> bool:
    """Whether an export's digest matches its record."""
    try:
        return document["digest"]["algorithm"] == "sha256" and digest_of(document["record"]) == document["digest"]["value"]
    except (KeyError, TypeError):
        return False


async def export_protocol(db: Database, number: str, *, now: datetime) -> dict[str, Any]:
    async with db.read() as session:
        record = await protocol_record(session, number)
    return {"format": FORMAT, "exported_at": iso(now), "record": record,
            "digest": {"algorithm": "sha256", "value": digest_of(record), "over": CANONICAL}}


async def protocol_record(session: AsyncSession, number: str) -> dict[str, Any]:
    protocol = await session.scalar(select(Protocol).where(Protocol.number == number))
    if protocol is None:
        raise NotFound(f"no protocol {number}")
    events = (await session.scalars(
        select(Event).where(Event.protocol_id == protocol.id).order_by(Event.id))).all()
    notifications = (await session.scalars(
        select(Notification).where(Notification.protocol_id == protocol.id).order_by(Notification.id))).all()
    ids = [n.id for n in notifications]
    provider_ids = [n.provider_id for n in notifications if n.provider_id]
    attempts = (await session.scalars(
        select(Attempt).where(Attempt.notification_id.in_(ids)).order_by(Attempt.id))).all() if ids else []
    callbacks = (await session.scalars(
        select(ProviderCallback).where(or_(ProviderCallback.notification_id.in_(ids),
                                           ProviderCallback.provider_id.in_(provider_ids)))
        .order_by(ProviderCallback.id))).all() if ids else []
    requests = (await session.scalars(
        select(ConsumerRequest).where(ConsumerRequest.protocol_id == protocol.id).order_by(ConsumerRequest.id))).all()
    inbound = (await session.scalars(
        select(InboundMessage).where(InboundMessage.reply_notification_id.in_(ids))
        .order_by(InboundMessage.id))).all() if ids else []
    by_provider_id = {n.provider_id: n.id for n in notifications if n.provider_id}
    return {
        "protocol": row(protocol),
        "events": [row(e) for e in events],
        "notifications": [
            {**row(n),
             "delivery": {
                 "attempts": [row(a) for a in attempts if a.notification_id == n.id],
                 "callbacks": [row(c) for c in callbacks
                               if (c.notification_id or by_provider_id.get(c.provider_id)) == n.id],
             }}
            for n in notifications
        ],
        "consumer_requests": [row(r) for r in requests],
        "inbound_messages": [row(m) for m in inbound],
    }


def row(obj: Any) -> dict[str, Any]:
    """Every stored column, by its name in the database; times in RFC 3339 UTC."""
    table = obj.__table__
    mapper = obj.__mapper__
    out: dict[str, Any] = {}
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        if column.table is not table:
            continue
        value = getattr(obj, attr.key)
        out[column.name] = iso(value) if isinstance(value, datetime) else value
    return out

