"""GET /v1/protocols/{number} and POST /v1/protocols/{number}/resend."""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import select

from gateway.api import cloudevents
from gateway.api.auth import current_key, requires
from gateway.api.json_body import json_object
from gateway.api.runtime_keys import CLOCK, DB, SERVICE
from gateway.api.schemas import NUMBER_PATTERN, ResendData, ResendRequest
from gateway.clock import iso
from gateway.errors import FieldProblem, InvalidFields, NotFound
from gateway.protocols.links import children_numbers, parent_number
from gateway.protocols.service import IncomingEvent
from gateway.protocols.requests import requests_document
from gateway.store.models import ConsumerRequest, Event, Notification, Protocol

MAX_IDEMPOTENCY_KEY = 500  # characters, as a CloudEvent id


def _number(request: web.Request) -> str:
    number = request.match_info["number"]
    if not re.match(NUMBER_PATTERN, number):
        raise NotFound(f"no protocol {number[:40]!r}: numbers are 6 to 30 digits")
    return number


@requires("protocols:read")
async def get_protocol(request: web.Request) -> web.Response:
    number = _number(request)
    async with request.app[DB].read() as session:
        protocol = await session.scalar(select(Protocol).where(Protocol.number == number))
        if protocol is None:
            raise NotFound(f"no protocol {number}")
        events = (await session.scalars(
            select(Event).where(Event.protocol_id == protocol.id).order_by(Event.occurred_at, Event.id))).all()
        notifications = (await session.scalars(
            select(Notification).where(Notification.protocol_id == protocol.id).order_by(Notification.id))).all()
        requests = (await session.scalars(
            select(ConsumerRequest).where(ConsumerRequest.protocol_id == protocol.id).order_by(ConsumerRequest.id))).all()
        links = {"parent": await session.scalar(parent_number(protocol)) if protocol.parent_id else None,
                 "children": list((await session.scalars(children_numbers(protocol))).all())}
    return web.json_response(protocol_document(protocol, events, notifications, requests, links))


def protocol_document(protocol: Protocol, events: Any, notifications: Any, requests: Any = (),
                      links: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "number": protocol.number,
        "status": protocol.status,
        "subject": protocol.subject,
        "category": protocol.category,
        "profile": protocol.profile,
        "channel": protocol.channel,
        "consumer": {"name": protocol.consumer_name, "email": protocol.consumer_email,
                     "phone": protocol.consumer_phone, "locale": protocol.consumer_locale,
                     "timezone": protocol.consumer_timezone},
        "opened_at": iso(protocol.opened_at),
        "deadline_at": iso(protocol.deadline_at),
        "resolved_at": iso(protocol.resolved_at),
        "retention_until": iso(protocol.retention_until),
        "legal_hold": protocol.legal_hold,
        **(links or {"parent": None, "children": []}),
        "events": [
            {"type": e.type, "occurred_at": iso(e.occurred_at), "received_at": iso(e.received_at), "data": e.data,
             "key": e.key_name}
            for e in events
        ],
        "notifications": [
            {
                "id": n.id, "channel": n.channel, "template": n.template, "status": n.status,
                "attempts": n.attempts, "last_error": n.last_error, "provider_id": n.provider_id,
                "created_at": iso(n.created_at), "sent_at": iso(n.sent_at), "delivered_at": iso(n.delivered_at),
            }
            for n in notifications
        ],
        "requests": requests_document(requests),
    }


@requires("protocols:write")
async def post_resend(request: web.Request) -> web.Response:
    number = _number(request)
    body = await json_object(request)
    try:
        ResendRequest.model_validate(body)
        data = ResendData.model_validate({**body, "number": number})
    except ValidationError as exc:
        raise InvalidFields(cloudevents.field_problems(exc)) from None
    # The REST form of protocol.resend_requested: an Idempotency-Key header makes retries safe.
    key = current_key(request)
    event_id = request.headers.get("Idempotency-Key") or f"resend-{uuid.uuid4()}"
    if len(event_id) > MAX_IDEMPOTENCY_KEY:  # it is stored as the event id, which has this limit
        raise InvalidFields([FieldProblem("Idempotency-Key", f"at most {MAX_IDEMPOTENCY_KEY} characters")])
    event = IncomingEvent(source=f"urn:protocol-gateway:api-key:{key.name}", id=event_id,
                          type="protocol.resend_requested", time=None, data=data, field_prefix="",
                          requester=cloudevents.requester(key))
    outcome = await request.app[SERVICE].handle(event, received_at=request.app[CLOCK]())
    return web.json_response(outcome.body, status=200 if outcome.duplicate else 202)
