"""Linked protocols: one escalated from another (a SAC protocol taken to the ombudsman).

The child names its parent when opened (`parent`); both records show the link, and the
child's history, which the consumer may ask for, includes its ancestors' events: the
ombudsman's answer makes sense only with what the SAC said before.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from gateway.store.models import Event, Protocol


def lineage(protocol_id: int) -> Any:
    """The ids of the protocol and of every protocol it escalates, as a recursive query."""
    chain = select(Protocol.id, Protocol.parent_id).where(Protocol.id == protocol_id).cte("lineage", recursive=True)
    return chain.union_all(select(Protocol.id, Protocol.parent_id).join(chain, Protocol.id == chain.c.parent_id))


def history_events(protocol_id: int) -> Select[tuple[Event]]:
    """The events of the history the consumer gets: the protocol's and its ancestors', in order."""
    chain = lineage(protocol_id)
    return select(Event).where(Event.protocol_id.in_(select(chain.c.id))).order_by(Event.occurred_at, Event.id)


def parent_number(protocol: Protocol) -> Select[tuple[str]]:
    return select(Protocol.number).where(Protocol.id == protocol.parent_id)


def children_numbers(protocol: Protocol) -> Select[tuple[str]]:
    return select(Protocol.number).where(Protocol.parent_id == protocol.id).order_by(Protocol.id)
