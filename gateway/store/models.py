"""The tables. Events and sent messages are append-only: the record must be trustworthy."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from gateway.store.types import JSONDoc, UTCDateTime

# Named constraints, so migrations can alter them on SQLite's batch mode and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BigInteger ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")

# Statuses in which a notification still needs the dispatcher: `next_attempt_at` then says
# when (a retry's time, a lease's expiry, or when an unknown outcome is sent again).
ACTIVE_STATUSES = ("queued", "sending", "unknown")
# Written out, as the partial index's condition and the claim's must both be: SQLite uses a
# partial index only when the query repeats its condition, and bound parameters do not.
ACTIVE_CONDITION = "status IN (" + ", ".join(f"'{s}'" for s in ACTIVE_STATUSES) + ")"


def email_digest(email: str | None) -> str | None:
    """What an address is searched by: SHA-256 of its case-folded form (`Maria@` finds `maria@`).

    A digest rather than a second copy of the address, so the search column adds no readable
    personal datum (it is no secret either: an address can be tried). Migration 0007 repeats it.
    """
    return hashlib.sha256(email.casefold().encode("utf-8")).hexdigest() if email else None


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Protocol(Base):
    __tablename__ = "protocols"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    issued_by: Mapped[str] = mapped_column(String(16))  # "gateway" or "upstream"
    status: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(200))
    profile: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(16))
    consumer_name: Mapped[str | None] = mapped_column(Text)
    consumer_email: Mapped[str | None] = mapped_column(String(320))
    # Kept with consumer_email by the validator below; SQL UPDATEs that clear the address clear it too.
    # Indexed where set (sweep_models.py): the search by email and anonymization's "still used".
    consumer_email_digest: Mapped[str | None] = mapped_column(String(64))
    consumer_phone: Mapped[str | None] = mapped_column(String(20), index=True)
    # Where WhatsApp messages go when it is not the phone (consumer.whatsapp); None: the phone.
    consumer_whatsapp: Mapped[str | None] = mapped_column(String(20))  # indexed where set (sweep_models.py)
    consumer_locale: Mapped[str] = mapped_column(String(35))
    consumer_timezone: Mapped[str] = mapped_column(String(64))
    notify: Mapped[str] = mapped_column(String(32), default="", server_default=text("''"))  # "email,sms"
    extra: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONDoc)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # indexed while open (sweep_models.py)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retention_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The last event about this protocol: a protocol silent for long counts as abandoned for retention.
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # indexed while open (sweep_models.py)
    anonymized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Years added to the record's retention by protocol.retention_extended (a regulator's complaint).
    retention_extension_years: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The protocol this one escalates (SAC to ombudsman), if any. No foreign key in the database:
    # adding one makes SQLite copy the whole table, which its foreign keys then refuse; the service
    # sets it only to a protocol it has just found, and protocols are never deleted.
    parent_id: Mapped[int | None] = mapped_column(Id)  # indexed where set (sweep_models.py)
    # The SHA-256 of the token in the link to the consumer's page (gateway/protocols/page_links.py):
    # the token itself is derived from a secret kept outside the database. None once anonymized.
    page_token_hash: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)

    @validates("consumer_email")
    def _keep_email_digest(self, _key: str, value: str | None) -> str | None:
        self.consumer_email_digest = email_digest(value)
        return value


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("source", "event_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    protocol_id: Mapped[int] = mapped_column(ForeignKey("protocols.id"), index=True)
    source: Mapped[str] = mapped_column(String(500))
    event_id: Mapped[str] = mapped_column(String(500))
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    # What makes a repeat "the same event": a digest of its type and data.
    fingerprint: Mapped[str] = mapped_column(String(80))
    # The first answer, returned again (with "duplicate": true) to a repeat.
    answer: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    # The name of the API key that posted it (None for the gateway's own callers). Set from the
    # request's key, never from the body: the `source` says whatever the caller wrote.
    key_name: Mapped[str | None] = mapped_column("key", String(100))


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        # The dispatcher's one query: due rows that still need work, oldest first.
        Index(
            "ix_notifications_due",
            "next_attempt_at",
            "id",
            postgresql_where=text(ACTIVE_CONDITION),
            sqlite_where=text(ACTIVE_CONDITION),
        ),
        # SMS still waiting for a delivery receipt: the fallback check's query.
        Index(
            "ix_notifications_awaiting_receipt",
            "sent_at",
            postgresql_where=text("channel = 'sms' AND status = 'sent'"),
            sqlite_where=text("channel = 'sms' AND status = 'sent'"),
        ),
        # A protocol's messages; and the compliance report counts them by channel and status from
        # the index alone (migration 0012: it replaced the index on protocol_id by itself).
        Index("ix_notifications_protocol_channel_status", "protocol_id", "channel", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # None for messages about no single protocol (an operations digest).
    protocol_id: Mapped[int | None] = mapped_column(ForeignKey("protocols.id"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    channel: Mapped[str] = mapped_column(String(16))  # email, sms, webhook
    audience: Mapped[str] = mapped_column(String(16), default="consumer", server_default=text("'consumer'"))
    # A unique key for messages that must exist at most once (a reminder per protocol,
    # schedule and offset; a fallback per failed SMS): a second insert is a no-op.
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # Why this message exists when it is not the event's own ("fallback: sms undelivered (30006)").
    reason: Mapped[str | None] = mapped_column(Text)
    fallback_of: Mapped[int | None] = mapped_column(ForeignKey("notifications.id"))  # indexed where set
    recipient: Mapped[str] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(100))
    template_hash: Mapped[str] = mapped_column(String(80))
    locale: Mapped[str] = mapped_column(String(35))
    subject: Mapped[str | None] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(200))  # indexed where set (sweep_models.py)
    provider: Mapped[str | None] = mapped_column(String(32))  # the named relay or account of the last try
    # When operations requeued it: give_up_after counts from here rather than from created_at,
    # so a requeue after a long outage gets the full retry window again.
    retry_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # WhatsApp: the approved template this message is outside the 24-hour window
    # ({"content_sid": "HX..." or None, "variables": {"1": "..."}}); None for other channels.
    whatsapp_content: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    # Set when a send's outcome was unknown and it was sent again: the consumer may have two.
    duplicate_possible: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class Attempt(Base):
    """One try at sending one notification: the evidence of what the provider said, and when."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(200))
    provider: Mapped[str | None] = mapped_column(String(32))  # the named relay or account tried


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Coarse on purpose (gateway.api.key_usage): at most one write a minute per key, off the hot path.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Where delivery statuses of this key's events are posted (outbound webhooks), and the
    # HMAC secret that signs them (kept in clear: it must sign, not just verify).
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_secret: Mapped[str | None] = mapped_column(String(100))
    # The CloudEvents sources this key may post as (a JSON list); None: any source.
    sources: Mapped[list[str] | None] = mapped_column(JSONDoc)


class ConsumerRequest(Base):
    """Something the consumer asked for with a legal clock: the history, a postal copy."""

    __tablename__ = "consumer_requests"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    protocol_id: Mapped[int] = mapped_column(ForeignKey("protocols.id"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    kind: Mapped[str] = mapped_column(String(16))      # history, confirmation
    channel: Mapped[str] = mapped_column(String(16))   # email, sms, mail
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id"), index=True)
    address: Mapped[str | None] = mapped_column(Text)  # a `to` the consumer gave for this request
    fulfilled_by: Mapped[str | None] = mapped_column(String(200))  # the key that marked it (postal), else None
    note: Mapped[str | None] = mapped_column(Text)  # what operations wrote when marking it fulfilled


class OptOut(Base):
    """A phone that texted STOP: no proactive SMS (reminders) until it texts START."""

    __tablename__ = "opt_outs"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    opted_out_at: Mapped[datetime] = mapped_column(UTCDateTime)
    keyword: Mapped[str] = mapped_column(String(20))


class WhatsAppConsent(Base):
    """A WhatsApp number's consent: when and how it was given (as the upstream said, or the
    consumer writing to us), and when it was withdrawn (STOP/PARAR on WhatsApp: no proactive
    WhatsApp from then on, until the consumer writes START)."""

    __tablename__ = "whatsapp_consents"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    opted_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opted_in_via: Mapped[str | None] = mapped_column(String(100))
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opted_out_keyword: Mapped[str | None] = mapped_column(String(20))


class EmailOptOut(Base):
    """An address that unsubscribed from the emails it did not ask for (List-Unsubscribe, RFC 8058),
    as an SMS STOP is for a phone. Kept as the SHA-256 of the lower-cased address: no address in clear."""

    __tablename__ = "email_opt_outs"

    email_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    opted_out_at: Mapped[datetime] = mapped_column(UTCDateTime)
    via: Mapped[str] = mapped_column(String(20))  # one-click (a mail provider), page (the consumer's button)
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id"))


class RateLimit(Base):
    """Hits per key and fixed window, counted in the database so limits hold across processes."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)


class InboundMessage(Base):
    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = mapped_column(String(64), unique=True)  # Twilio's MessageSid: retries are no-ops
    from_phone: Mapped[str] = mapped_column(String(20), index=True)
    to_phone: Mapped[str | None] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # sms or whatsapp: a WhatsApp message opens the 24 hours in which free text may answer.
    channel: Mapped[str] = mapped_column(String(16), default="sms", server_default=text("'sms'"))
    reply_notification_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id"))


class ProviderCallback(Base):
    """A delivery receipt as the provider sent it: the evidence behind a status change."""

    __tablename__ = "provider_callbacks"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id"), index=True)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Counter(Base):
    """SQLite's stand-in for a sequence: one row per counter, bumped under the write lock."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Installation(Base):
    """One row, made by the migration that creates it: a random key of this database's own, so that
    Message-IDs never repeat across installations (a staging copy, a move to PostgreSQL)."""

    __tablename__ = "installation"
    __table_args__ = (CheckConstraint("id = 1", name="ck_installation_one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
