"""What happens to a protocol: open, update, resolve, reopen, resend.

Every change is one transaction holding the protocol, the event and the notifications
it causes (the transactional outbox): an event is acknowledged only once all three are
committed, so nothing acknowledged is lost. Messages are rendered here, when enqueued,
and stored as rendered: the record shows what was sent even after a template changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.clock import iso
from gateway.config import Settings
from gateway.delivery import outbox
from gateway.errors import Conflict, FieldProblem, Forbidden, InvalidFields, NotFound
from gateway.observability import mask
from gateway.protocols import ratelimit
from gateway.protocols.contacts import ContactError, contacts, normalize_email, normalize_phone
from gateway.protocols.whatsapp_consent import record_opt_in
from gateway.protocols.event_times import not_after_receipt, within_protocol
from gateway.protocols.extensions import extended_retention, new_deadline
from gateway.protocols.links import history_events
from gateway.protocols.messages import MessageBuilder
from gateway.protocols.numbering import NumberFormat, next_sequence
from gateway.protocols.profiles import Profile, UnknownProfile, get_profile, opening_profile, retention_end
from gateway.protocols.schemas import (
    DeadlineExtendedData,
    OpenedData,
    ReopenedData,
    ResendData,
    ResolvedData,
    RetentionExtendedData,
    UpdatedData,
)
from gateway.rendering.context import history_entries
from gateway.store import drivers, rows
from gateway.store.database import Database
from gateway.store.group_commit import GroupCommit
from gateway.store.models import ConsumerRequest, Event, Notification, Protocol

log = logging.getLogger(__name__)

CONFIRMATION_TEMPLATE = "protocol_opened"
DEADLINE_EXTENDED_TEMPLATE = "protocol_deadline_extended"
# Told to the consumer's contacts on record when a resend went to an address they never gave us.
SENT_ELSEWHERE_TEMPLATE = "history_sent_elsewhere"
# A repeat racing its original on PostgreSQL meets the unique key; look again this often.
IDEMPOTENCY_RETRIES = 3
# Built once: every event runs them, and building a statement costs more than SQLite running it.
# Its two columns, not the ORM entity: loading an Event cost PostgreSQL's path ~0.1 ms an event.
_events = Event.__table__.c
_SAME_EVENT = select(_events.fingerprint, _events.answer).where(_events.source == bindparam("source"),
                                                               _events.event_id == bindparam("event_id"))
_SET_ANSWER = (update(Event.__table__).where(Event.__table__.c.id == bindparam("row_id"))
               .values(answer=bindparam("answer", type_=Event.__table__.c.answer.type)))
# The same two straight to the driver under the transaction (store/drivers.py); the Core
# statements above are for any other connection.
_DRIVER_SAME_EVENT = "SELECT fingerprint, answer FROM events WHERE source = ? AND event_id = ?"
_DRIVER_SET_ANSWER = "UPDATE events SET answer = ? WHERE id = ?"


@dataclass(frozen=True)
class Requester:
    """Who posts an event: the API key's name (stored with the event, never taken from the body),
    and whether it may have the protocol sent to an address not on record (scope protocols:write)."""

    name: str | None
    may_send_elsewhere: bool


# The gateway itself, its CLI and its tests: trusted callers in this process.
IN_PROCESS = Requester(None, may_send_elsewhere=True)


@dataclass(frozen=True)
class IncomingEvent:
    source: str
    id: str
    type: str
    time: datetime | None
    data: BaseModel
    field_prefix: str = "data."  # where `data` sits in the request body, for error paths
    requester: Requester = IN_PROCESS

    @property
    def time_field(self) -> str:
        """The path of the CloudEvent's own `time`, beside `data` in the request body."""
        return self.field_prefix.removesuffix("data.") + "time"


@dataclass
class Outcome:
    body: dict[str, Any]
    duplicate: bool
    enqueued: int = 0


def stored_data(data: BaseModel) -> dict[str, Any]:
    """An event's data as the event row keeps it and its fingerprint reads it."""
    return data.model_dump(mode="json", exclude_none=True)


def fingerprint(event_type: str, data: dict[str, Any]) -> str:
    """Of the event's type and its `stored_data`: a repeat with other data is told apart."""
    canonical = json.dumps(
        {"type": event_type, "data": data},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class _Change:
    """What one event did: the protocol it touched and the notifications it queued."""

    protocol: Protocol
    notifications: list[Notification] = field(default_factory=list)
    occurred_at: datetime | None = None
    request: ConsumerRequest | None = None  # what the consumer asked for, with its legal clock
    # Messages about the change that do not fulfil the request (telling the contacts on record
    # where a resend went): queued with it, never what marks the request fulfilled.
    notices: list[Notification] = field(default_factory=list)


class ProtocolService:
    def __init__(
        self,
        db: Database,
        messages: MessageBuilder,
        numbers: NumberFormat,
        settings: Settings,
        on_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.messages = messages
        self.numbers = numbers
        self.settings = settings
        self.on_enqueued = on_enqueued
        # Concurrent events share a commit, and a look at the templates' files (store/group_commit.py).
        self.commits = GroupCommit(db, shared=messages.templates.one_look)
        self._handlers = {
            "protocol.opened": self._opened,
            "protocol.updated": self._updated,
            "protocol.resolved": self._resolved,
            "protocol.reopened": self._reopened,
            "protocol.resend_requested": self._resend,
            "protocol.deadline_extended": self._deadline_extended,
            "protocol.retention_extended": self._retention_extended,
        }

    async def handle(self, event: IncomingEvent, *, received_at: datetime) -> Outcome:
        """Apply one event exactly once per (source, id); a repeat gets the first answer."""
        data = stored_data(event.data)  # once: the fingerprint and the event's row both hold it
        digest = fingerprint(event.type, data)
        for _ in range(IDEMPOTENCY_RETRIES):
            try:
                outcome = await self._apply(event, data, digest, received_at)
            except IntegrityError as exc:
                if "number" in str(exc.orig) and "event_id" not in str(exc.orig):
                    raise Conflict("a protocol with this number already exists") from None
                continue  # the same (source, id) committed meanwhile: answer as a repeat
            if outcome.enqueued:
                self.on_enqueued()
            return outcome
        raise Conflict("this event id is being processed concurrently; retry")

    async def _apply(self, event: IncomingEvent, data: dict[str, Any], digest: str, received_at: datetime) -> Outcome:
        outcome = await self.commits.run(lambda session: self._apply_in(session, event, data, digest, received_at))
        if not outcome.duplicate:
            log.info(
                "event accepted",
                extra={"action": "event_accepted", "event_type": event.type,
                       "protocol": outcome.body["protocol"]["number"], "notifications": outcome.enqueued},
            )
        return outcome

    def _apply_in(self, session: Session, event: IncomingEvent, data: dict[str, Any], digest: str,
                  received_at: datetime) -> Outcome:
        """The event's whole transaction, as a function of the session (see GroupCommit)."""
        driver = drivers.under(session)
        previous = self._previous(session, driver, event)
        if previous is not None:
            fingerprint_was, answer_was = previous
            if fingerprint_was != digest:
                raise Conflict(f"event id {event.id!r} from this source was already used with different data")
            return Outcome(body={**answer_was, "duplicate": True}, duplicate=True)

        change = self._handlers[event.type](session, event, received_at)
        change.protocol.last_event_at = received_at
        row = rows.new(
            Event,
            protocol_id=change.protocol.id,
            source=event.source,
            event_id=event.id,
            type=event.type,
            occurred_at=change.occurred_at or event.time or received_at,
            received_at=received_at,
            data=data,
            fingerprint=digest,
            key_name=event.requester.name,
        )
        notes = change.notifications + change.notices
        row.answer = self._answer(change)  # whole without notifications; with them, their ids still null
        if not notes:
            rows.insert_one(session, row)
        elif rows.insert_event(session, row, notes):  # PostgreSQL: all three in one round trip
            outbox.notify(session)
            row.answer = self._answer(change)
        else:
            row.answer = {}  # written once the notifications' ids are known
            rows.insert_one(session, row)
            for notification in notes:
                notification.event_id = row.id
            outbox.enqueue(session, notes)
            row.answer = self._answer(change)
            if driver is not None:
                driver.execute(_DRIVER_SET_ANSWER, (json.dumps(row.answer), row.id))
            else:
                session.execute(_SET_ANSWER, {"row_id": row.id, "answer": row.answer})
        if change.request is not None:
            change.request.event_id = row.id
            change.request.notification_id = change.notifications[-1].id if change.notifications else None
            session.add(change.request)
        return Outcome(body={**row.answer, "duplicate": False}, duplicate=False,
                       enqueued=len(change.notifications) + len(change.notices))

    @staticmethod
    def _previous(session: Session, driver: drivers.Driver | None,
                  event: IncomingEvent) -> tuple[str, dict[str, Any]] | None:
        """The fingerprint and answer of the event already stored under this (source, id), if any."""
        # Neither a Core select nor the driver autoflushes as the entity's did: flushed here all the
        # same, so that an object an earlier event of a shared transaction left pending (a consumer's
        # request) fails in this one, which runs the batch again with savepoints
        # (store/group_commit.py), not at the COMMIT, where it would fail the whole batch.
        session.flush()
        if driver is not None:
            found = driver.query_one(_DRIVER_SAME_EVENT, (event.source, event.id))
            return None if found is None else (found[0], driver.json_value(found[1]))
        previous = session.execute(_SAME_EVENT, {"source": event.source, "event_id": event.id}).first()
        return None if previous is None else (previous.fingerprint, previous.answer)

    @staticmethod
    def _answer(change: _Change) -> dict[str, Any]:
        p = change.protocol
        return {
            "protocol": {
                "number": p.number,
                "status": p.status,
                "opened_at": iso(p.opened_at),
                "deadline_at": iso(p.deadline_at),
            },
            "notifications": [{"id": n.id, "channel": n.channel, "status": n.status}
                              for n in change.notifications + change.notices],
        }

    # Event types

    def _opened(self, session: Session, event: IncomingEvent, received_at: datetime) -> _Change:
        data: OpenedData = event.data  # type: ignore[assignment]
        prefix = event.field_prefix
        problems: list[FieldProblem] = []
        profile = self._profile(data.profile, prefix, problems)
        zone = self._zone(data.consumer.timezone, profile)
        # A phone alone does not say the consumer reads WhatsApp on it: only consumer.whatsapp does.
        notify = data.notify if data.notify is not None else [
            c for c, given in (("email", data.consumer.email), ("sms", data.consumer.phone),
                               ("whatsapp", data.consumer.whatsapp)) if given
        ]
        email = phone = whatsapp = None
        if data.consumer.email:
            email = self._contact(normalize_email, data.consumer.email, f"{prefix}consumer.email", problems)
        if data.consumer.phone:
            phone = self._contact(
                lambda raw: normalize_phone(raw, data.consumer.region, for_sms="sms" in notify,
                                            allowed_regions=self.settings.sms.allowed_countries),
                data.consumer.phone, f"{prefix}consumer.phone", problems,
            )
        if data.consumer.whatsapp:
            whatsapp = self._contact(
                lambda raw: normalize_phone(raw, data.consumer.region, for_sms=False, allowed_regions=[]),
                data.consumer.whatsapp, f"{prefix}consumer.whatsapp", problems,
            )
        for channel, contact, name in (("email", data.consumer.email, "email"), ("sms", data.consumer.phone, "phone"),
                                       ("whatsapp", data.consumer.whatsapp or data.consumer.phone, "whatsapp")):
            if channel in notify and not contact:
                problems.append(FieldProblem(f"{prefix}consumer.{name}", f"required to notify by {channel}"))
        if "whatsapp" in notify and not self.messages.has_channel(
                CONFIRMATION_TEMPLATE, "whatsapp", data.consumer.locale or self.settings.gateway.default_locale):
            # A templates folder written before WhatsApp: say so now rather than fail every message.
            problems.append(FieldProblem(f"{prefix}notify", f"the templates have no WhatsApp text "
                                         f"({CONFIRMATION_TEMPLATE}/<locale>/whatsapp.j2): add it to notify by whatsapp"))
        if problems:
            raise InvalidFields(problems)
        assert profile is not None
        not_after_receipt(data.opened_at, f"{prefix}opened_at", received_at=received_at)
        if data.opened_at is None:  # the CloudEvent's time stands for the opening only without opened_at
            not_after_receipt(event.time, event.time_field, received_at=received_at)

        parent_id = None
        if data.parent is not None:
            parent_id = session.scalar(select(Protocol.id).where(Protocol.number == data.parent))
            if parent_id is None:
                raise InvalidFields([FieldProblem(f"{prefix}parent", f"no protocol {data.parent} to escalate")])
        if data.number is not None:
            if session.scalar(select(Protocol.id).where(Protocol.number == data.number)) is not None:
                raise Conflict(f"a protocol with number {data.number} already exists")
            number, issued_by = data.number, "upstream"
        else:
            number, issued_by = self.numbers.number(next_sequence(session), received_at), "gateway"

        opened_at = data.opened_at or event.time or received_at
        profile = opening_profile(self.settings, data.profile, opened_at)  # overrides; br-sac-2008 before 2022-10-03
        protocol = rows.new(
            Protocol,
            number=number,
            issued_by=issued_by,
            status="open",
            subject=data.subject,
            category=data.category,
            profile=profile.name,
            channel=data.channel,
            consumer_name=data.consumer.name,
            consumer_email=email,
            consumer_phone=phone,
            consumer_whatsapp=whatsapp if whatsapp != phone else None,
            consumer_locale=data.consumer.locale or self.settings.gateway.default_locale,
            consumer_timezone=zone,
            extra=data.metadata,
            opened_at=opened_at,
            received_at=received_at,
            deadline_at=profile.deadline(opened_at, data.category),
            legal_hold=False,
            updated_at=received_at,
            last_event_at=received_at,  # set now, so the insert carries it (no second UPDATE)
            notify=",".join(notify),
            parent_id=parent_id,
            page_token_hash=self.messages.page_digest(number),
        )
        rows.insert_one(session, protocol)  # written once here; the answer reads it as it is
        if data.consumer.whatsapp_opt_in is not None:
            record_opt_in(session, whatsapp or phone, data.consumer.whatsapp_opt_in.at,
                          data.consumer.whatsapp_opt_in.via)
        targets = contacts(protocol)
        notifications = self.messages.render_each(protocol, CONFIRMATION_TEMPLATE, [(ch, targets[ch]) for ch in notify],
                                                  received_at)
        return _Change(protocol, notifications, occurred_at=opened_at)

    def _updated(self, session: Session, event: IncomingEvent, received_at: datetime) -> _Change:
        data: UpdatedData = event.data  # type: ignore[assignment]
        protocol = self._find(session, data.number)
        within_protocol(event.time, event.time_field, opened_at=protocol.opened_at, received_at=received_at)
        protocol.updated_at = received_at
        occurred_at = event.time or received_at
        return _Change(protocol, self._tell(protocol, "protocol_updated", received_at, event={
            "type": event.type, "occurred_at": occurred_at, "message": data.message}), occurred_at=occurred_at)

    def _resolved(self, session: Session, event: IncomingEvent, received_at: datetime) -> _Change:
        data: ResolvedData = event.data  # type: ignore[assignment]
        protocol = self._find(session, data.number)
        within_protocol(data.resolved_at, f"{event.field_prefix}resolved_at", opened_at=protocol.opened_at,
                        received_at=received_at)
        if data.resolved_at is None:
            within_protocol(event.time, event.time_field, opened_at=protocol.opened_at, received_at=received_at)
        resolved_at = data.resolved_at or event.time or received_at
        protocol.status = "resolved"
        protocol.resolved_at = resolved_at
        # From the later of the two: a resolution stamped earlier than we heard of it must not
        # shorten the record's life (the stated time is kept as given, for the record).
        protocol.retention_until = extended_retention(
            retention_end(get_profile(protocol.profile, self.settings), max(resolved_at, received_at)),
            protocol.retention_extension_years or 0)
        protocol.updated_at = received_at
        return _Change(protocol, self._tell(protocol, "protocol_resolved", received_at, event={
            "type": event.type, "occurred_at": resolved_at, "resolution": data.resolution}), occurred_at=resolved_at)

    def _reopened(self, session: Session, event: IncomingEvent, received_at: datetime) -> _Change:
        data: ReopenedData = event.data  # type: ignore[assignment]
        protocol = self._find(session, data.number)
        within_protocol(event.time, event.time_field, opened_at=protocol.opened_at, received_at=received_at)
        reopened_at = event.time or received_at
        protocol.status = "reopened"
        protocol.resolved_at = None
        protocol.retention_until = None
        protocol.deadline_at = get_profile(protocol.profile, self.settings).deadline(reopened_at, protocol.category)  # the clock restarts
        protocol.updated_at = received_at
        return _Change(protocol, self._tell(protocol, "protocol_reopened", received_at, event={
            "type": event.type, "occurred_at": reopened_at, "reason": data.reason}), occurred_at=reopened_at)

    def _deadline_extended(self, session: Session, event: IncomingEvent, received_at: datetime) -> _Change:
        data: DeadlineExtendedData = event.data  # type: ignore[assignment]
        protocol = self._find(session, data.number)
        within_protocol(event.time, event.time_field, opened_at=protocol.opened_at, received_at=received_at)
        so_far = session.scalar(select(func.count(Event.id)).where(
            Event.protocol_id == protocol.id, Event.type == "protocol.deadline_extended")) or 0
        previous = protocol.deadline_at
        protocol.deadline_at = new_deadline(get_profile(protocol.profile, self.settings), protocol.category,
                                            protocol.status, previous, data, so_far, event.field_prefix)
        protocol.updated_at = received_at
        occurred_at = event.time or received_at
        return _Change(protocol, self._tell(protocol, DEADLINE_EXTENDED_TEMPLATE, received_at, event={
            "type": event.type, "occurred_at": occurred_at, "reason": data.reason,
            "previous_deadline_at": previous}), occurred_at=occurred_at)

    def _retention_extended(self, session: Session, event: IncomingEvent, received_at: datetime) -> _Change:
        data: RetentionExtendedData = event.data  # type: ignore[assignment]
        protocol = self._find(session, data.number)
        within_protocol(event.time, event.time_field, opened_at=protocol.opened_at, received_at=received_at)
        if protocol.status == "anonymized":
            raise InvalidFields([FieldProblem(f"{event.field_prefix}number", "the record is already anonymized")])
        protocol.retention_extension_years = (protocol.retention_extension_years or 0) + data.years
        protocol.retention_until = extended_retention(protocol.retention_until, data.years)
        protocol.updated_at = received_at
        return _Change(protocol, occurred_at=event.time or received_at)  # an operations matter: nothing is sent

    def _resend(self, session: Session, event: IncomingEvent, received_at: datetime) -> _Change:
        data: ResendData = event.data  # type: ignore[assignment]
        prefix = event.field_prefix
        protocol = self._find(session, data.number)
        within_protocol(event.time, event.time_field, opened_at=protocol.opened_at, received_at=received_at)
        protocol.updated_at = received_at
        request = ConsumerRequest(
            protocol_id=protocol.id, kind="history" if data.history else "confirmation", channel=data.channel,
            # The profile's clock for what the consumer asks for (art. 12 §2), with the settings' overrides.
            requested_at=received_at, due_at=get_profile(protocol.profile, self.settings).history_due(received_at),
            address=data.to,
        )
        if data.channel == "mail":
            # Postal mail is fulfilled by operations; the request with its clock is the record.
            # Nothing reaches the consumer, so only the requester's own budget is spent.
            self._limit_resends(session, protocol, None, event.requester, received_at)
            return _Change(protocol, request=request)
        target = self._resend_target(protocol, data, prefix)
        elsewhere = not self._on_record(protocol, data.channel, target)
        if elsewhere and not event.requester.may_send_elsewhere:
            raise Forbidden(f"sending to an address that is not on record ({prefix}to) needs the scope "
                            "'protocols:write'")
        self._limit_resends(session, protocol, target, event.requester, received_at)
        if data.history:
            events = session.scalars(history_events(protocol.id)).all()  # with an escalated protocol's parent's
            notifications = self.messages.history(protocol, data.channel, target, history_entries(events), received_at)
        else:
            notifications = [self.messages.render(protocol, CONFIRMATION_TEMPLATE, data.channel, target, received_at,
                                                  reason="resend requested")]
        notices = self._tell(protocol, SENT_ELSEWHERE_TEMPLATE, received_at, masked_to=mask(target),
                             sent_channel=data.channel, history=data.history, requested_at=received_at,
                             reason="a resend went to an address not on record") if elsewhere else []
        return _Change(protocol, notifications, request=request, notices=notices)

    @staticmethod
    def _on_record(protocol: Protocol, channel: str, target: str) -> bool:
        """Whether `target` is the protocol's own contact for the channel (email local parts compared
        without case: a consumer typing 'Maria@' means the same mailbox)."""
        on_record = contacts(protocol).get(channel)
        return on_record is not None and on_record.casefold() == target.casefold()

    def _resend_target(self, protocol: Protocol, data: ResendData, prefix: str) -> str:
        """The address the consumer gave now, validated, or the one on record."""
        problems: list[FieldProblem] = []
        if data.to:
            if data.channel == "email":
                target = self._contact(normalize_email, data.to, f"{prefix}to", problems)
            else:
                sms = data.channel == "sms"  # WhatsApp reaches numbers of any country
                target = self._contact(
                    lambda raw: normalize_phone(raw, None, for_sms=sms,
                                                allowed_regions=self.settings.sms.allowed_countries if sms else []),
                    data.to, f"{prefix}to", problems,
                )
        else:
            target = contacts(protocol).get(data.channel)
            if not target:
                problems.append(FieldProblem(f"{prefix}to", f"the protocol has no {data.channel} contact: give one in 'to'"))
        if problems:
            raise InvalidFields(problems)
        assert target is not None
        return target

    def _limit_resends(self, session: Session, protocol: Protocol, target: str | None, requester: Requester,
                       now: datetime) -> None:
        """The consumer's budgets (per protocol, per address) are spent only by what reaches them;
        every request, postal ones included, also spends the requester's own budget for the protocol,
        so one upstream cannot use up what another (or the consumer) is allowed."""
        count, window = self.settings.limits.resend_per_protocol
        ratelimit.hit(session, ratelimit.requester_key(protocol.id, requester.name), limit=count, window=window,
                      now=now, what="resend requests of this protocol by this key")
        if target:
            ratelimit.hit(session, f"resend:protocol:{protocol.id}", limit=count, window=window, now=now,
                          what="resends of this protocol")
            count, window = self.settings.limits.resend_per_contact
            ratelimit.hit(session, ratelimit.contact_key("resend", target), limit=count, window=window, now=now,
                          what="resends to this address")

    def _tell(self, protocol: Protocol, template: str, now: datetime, **extra: Any) -> list[Notification]:
        """The consumer hears of a change by the channels chosen at the opening."""
        targets = contacts(protocol)
        return self.messages.render_each(protocol, template, [
            (channel, targets[channel]) for channel in filter(None, protocol.notify.split(",")) if targets.get(channel)
        ], now, **extra)

    # Helpers

    def _find(self, session: Session, number: str) -> Protocol:
        protocol = session.scalar(select(Protocol).where(Protocol.number == number))
        if protocol is None:
            raise NotFound(f"no protocol {number}")
        return protocol

    def _profile(self, name: str | None, prefix: str, problems: list[FieldProblem]) -> Profile | None:
        try:
            return get_profile(name or self.settings.gateway.default_profile, self.settings)
        except UnknownProfile:
            problems.append(FieldProblem(f"{prefix}profile", f"unknown profile {name!r}"))
            return None

    @staticmethod
    def _zone(name: str | None, profile: Profile | None) -> str:
        """The consumer's zone (checked by the schema: an IANA Area/Location), else the profile's."""
        if name is not None:
            return name
        return profile.timezone if profile else "UTC"

    @staticmethod
    def _contact(check: Callable[[str], str], raw: str, path: str, problems: list[FieldProblem]) -> str | None:
        try:
            return check(raw)
        except ContactError as exc:
            problems.append(FieldProblem(path, str(exc)))
            return None
