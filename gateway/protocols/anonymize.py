"""Anonymization: every personal datum of a consumer removed for good, the record kept.

The number, dates, category, profile and delivery statuses stay; an audit entry is written
per protocol. It is the one audited exception to the append-only record. On SQLite it runs
with `secure_delete` (what it frees is overwritten with zeros), and the caller checkpoints and
truncates the WAL after (store/vacuum.py), so old values survive in no page of the file.
Run by the retention sweep at expiry, or for one protocol by an operator's decision.

A batch is a few set-based statements whatever its size: the audit entries go as one
statement's parameters, and the rate-limit keys and unmatched provider callbacks that name a
released contact are found by reading the few candidate rows, not by an SQL condition with a
LIKE per contact (profiled over a million protocols: building, compiling and running those
was most of the sweep's own CPU). Whether another live protocol still uses a contact is one
query over three indexes (the email's digest, phone, WhatsApp): an index SQLite's statistics
call useless (a column nearly always NULL, migrations 0015 and 0016) made it read every
protocol for every batch.
A batch's ids and contacts go to each statement as one parameter (store/value_lists.py), not
one parameter per value. On SQLite its UPDATEs run `OR FAIL`, which spares the statement
journal (see `_scrub`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Row,
    String,
    Text,
    Update,
    case,
    cast,
    delete,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import NotFound
from gateway.protocols.profiles import Profiles
from gateway.protocols.ratelimit import contact_digest
from gateway.protocols.retention import CANDIDATE_COLUMNS, RetentionRefused, effective_end
from gateway.store.append_only import allow_redaction
from gateway.store.column_rows import column_rows
from gateway.store.database import Database
from gateway.store.models import (
    Attempt,
    ConsumerRequest,
    Event,
    InboundMessage,
    Notification,
    OptOut,
    Protocol,
    ProviderCallback,
    RateLimit,
    WhatsAppConsent,
    email_digest,
)
from gateway.store.sweep_models import RetentionAudit
from gateway.store.vacuum import erase_sqlite
from gateway.store.value_lists import among, rows_of

log = logging.getLogger(__name__)

EVENT_STUB = {"anonymized": True}
REMOVED = ["protocols.consumer_name", "protocols.consumer_email", "protocols.consumer_email_digest",
           "protocols.consumer_phone", "protocols.subject", "protocols.metadata", "events.data", "events.fingerprint",
           "notifications.recipient (consumer)",
           "notifications.subject", "notifications.body_text", "notifications.body_html", "notifications.last_error",
           "notification_attempts.error", "provider_callbacks.payload", "consumer_requests.address",
           "inbound_messages (from, body)", "opt_outs", "rate_limits"]


async def anonymize(session: AsyncSession, ids: list[int], *, at: datetime, actor: str, rules: dict[int, str],
                    sqlite: bool) -> tuple[list[str], dict[str, int], int]:
    """Remove the personal data of these protocols in the caller's transaction.

    Returns the numbers anonymized, rows changed per table, and how many were skipped for a
    legal hold placed since they were selected. Contacts (phone, email, addresses given on
    resend) are released (opt-outs, rate-limit keys, inbound SMS, messages about no single
    protocol) only when no other live protocol uses them.

    On any error the caller must roll the whole transaction back (as `Database.write` does),
    never commit it: on SQLite a statement that fails halfway keeps its earlier rows (`OR FAIL`,
    see `_scrub`).
    """
    if not ids:
        return [], {}, 0
    if sqlite:
        # Overwrite freed cells and pages with zeros: old values must not survive in the file.
        await session.execute(text("PRAGMA secure_delete=ON"))
    lock = select(Protocol.id, Protocol.number, Protocol.consumer_email, Protocol.consumer_phone,
                  Protocol.consumer_whatsapp, Protocol.legal_hold, Protocol.status).where(
        among(Protocol.id, ids, sqlite=sqlite))
    if not sqlite:
        lock = lock.with_for_update()
    current = await column_rows(session, lock)
    held = sum(1 for r in current if r.legal_hold)
    targets = [r for r in current if not r.legal_hold and r.status != "anonymized"]
    ids = [r.id for r in targets]
    if not ids:
        return [], {}, held
    # The one audited exception to the append-only record (gateway/store/append_only.py).
    allow_redaction(session, f"anonymization of {len(ids)} protocol(s) by {actor}: retention ended")
    # Read once, before any change: the batch's messages give both the addresses they went to
    # and the scope of the scrub (clearing a recipient must not drop a row from it).
    notes = await column_rows(session, select(Notification.id, Notification.recipient, Notification.audience).where(
        among(Notification.protocol_id, ids, sqlite=sqlite)))
    released = await _released_contacts(session, targets, ids, notes, sqlite)
    counts = await _scrub(session, ids, [n.id for n in notes], released, at, sqlite)
    detail = {"removed": REMOVED, "contacts_released": bool(released)}
    await session.execute(_audit_entries(targets, rules, at=at, actor=actor, detail=detail, sqlite=sqlite))
    return [r.number for r in targets], counts, held


def _audit_entries(targets: Sequence[Row[Any]], rules: dict[int, str], *, at: datetime, actor: str,
                   detail: dict[str, Any], sqlite: bool) -> Any:
    """An audit entry a protocol, in one statement whose parameters are bound once: the entries
    differ only in the protocol, its number and its rule."""
    table = RetentionAudit.__table__
    entries = rows_of({"protocol_id": (BigInteger(), [row.id for row in targets]),
                       "number": (Text(), [row.number for row in targets]),
                       "rule": (Text(), [rules.get(row.id) for row in targets])}, sqlite=sqlite)
    return insert(table).from_select(
        ["at", "action", "protocol_id", "number", "rule", "actor", "detail"],
        select(literal(at, table.c.at.type), literal("anonymized", table.c.action.type), entries.c.protocol_id,
               entries.c.number, entries.c.rule, literal(actor, table.c.actor.type),
               literal(detail, table.c.detail.type)))


async def _released_contacts(session: AsyncSession, targets: Sequence[Row[Any]], ids: list[int],
                             notes: Sequence[Row[Any]], sqlite: bool) -> set[str]:
    """The phones and emails of these protocols (and addresses they were sent to) no other live protocol uses."""
    contacts = {c for r in targets for c in (r.consumer_email, r.consumer_phone, r.consumer_whatsapp) if c}
    contacts |= {n.recipient for n in notes if n.audience == "consumer"}
    contacts |= set((await session.scalars(select(ConsumerRequest.address).where(
        among(ConsumerRequest.protocol_id, ids, sqlite=sqlite), ConsumerRequest.address.is_not(None)))).all())
    contacts.discard("")
    if not contacts:
        return set()
    # Emails by their digest (the search's index; migration 0016 dropped the index of the raw
    # address): so an address another live protocol holds in another case counts as in use too.
    emails = {c for c in contacts if _is_email(c)}
    phones = contacts - emails
    uses = [among(column, phones, sqlite=sqlite) for column in (Protocol.consumer_phone, Protocol.consumer_whatsapp)]
    if emails:
        uses.append(among(Protocol.consumer_email_digest, {email_digest(c) for c in emails}, sqlite=sqlite))
    live = (await session.execute(select(Protocol.consumer_email, Protocol.consumer_phone,
                                         Protocol.consumer_whatsapp).where(
        or_(*uses), Protocol.status != "anonymized", ~among(Protocol.id, ids, sqlite=sqlite)))).all()
    live_emails = {row.consumer_email.casefold() for row in live if row.consumer_email}
    in_use = {c for row in live for c in (row.consumer_phone, row.consumer_whatsapp) if c}
    in_use |= {c for c in emails if c.casefold() in live_emails}
    return contacts - in_use


def _is_email(contact: str) -> bool:
    """The one rule that splits a batch's contacts: phones are E.164, emails hold an "@" (a postal
    address given on resend holds neither and goes with the phones, matching no phone column)."""
    return "@" in contact


async def _scrub(session: AsyncSession, ids: list[int], notification_ids: list[int], released: set[str],
                 at: datetime, sqlite: bool) -> dict[str, int]:
    def run(stmt: Any) -> Any:
        if isinstance(stmt, Update):
            # OR FAIL: SQLite then keeps no statement journal, a temporary file into which a
            # statement that writes many rows copies every page before changing it, so that it
            # alone can be undone (a third of a batch's write calls, counted with strace).
            # Undoing it alone is never needed here: an error ends the whole transaction,
            # rolled back (tests/test_anonymize_batches.py).
            stmt = stmt.prefix_with("OR FAIL", dialect="sqlite")
        return session.execute(stmt.execution_options(synchronize_session=False))

    def within(column: Any, values: Collection[Any]) -> Any:
        return among(column, values, sqlite=sqlite)

    counts: dict[str, int] = {}
    counts["protocols"] = (await run(update(Protocol).where(within(Protocol.id, ids)).values(
        consumer_name=None, consumer_email=None, consumer_email_digest=None, consumer_phone=None,
        consumer_whatsapp=None,
        subject="", extra=None, status="anonymized", anonymized_at=at, updated_at=at,
        page_token_hash=None))).rowcount  # the consumer's page link stops working
    counts["events"] = (await run(update(Event).where(within(Event.protocol_id, ids)).values(
        data=EVENT_STUB, fingerprint="anonymized"))).rowcount
    if released:  # and messages about no single protocol (a reply to an inbound SMS) sent to a released contact
        notification_ids = notification_ids + list((await session.scalars(select(Notification.id).where(
            Notification.protocol_id.is_(None), Notification.audience == "consumer",
            within(Notification.recipient, released)))).all())
    scope = within(Notification.id, notification_ids)
    counts["notification_attempts"] = (await run(update(Attempt).where(
        within(Attempt.notification_id, notification_ids), Attempt.error.is_not(None)).values(error=None))).rowcount
    counts["provider_callbacks"] = (await run(update(ProviderCallback).where(
        within(ProviderCallback.notification_id, notification_ids)).values(payload={}))).rowcount
    inbound = within(InboundMessage.reply_notification_id, notification_ids)
    phones = {c for c in released if not _is_email(c)}
    if phones:
        inbound = or_(inbound, within(InboundMessage.from_phone, phones))
    counts["inbound_messages"] = (await run(update(InboundMessage).where(inbound).values(
        from_phone="", body=""))).rowcount
    # One statement: the rows' pages are found and written once (an operations message keeps its recipient).
    counts["notifications"] = (await run(update(Notification).where(scope).values(
        recipient=case((Notification.audience == "consumer", ""), else_=Notification.recipient),
        subject=None, body_text="", body_html=None, last_error=None, whatsapp_content=None))).rowcount
    counts["consumer_requests"] = (await run(update(ConsumerRequest).where(
        within(ConsumerRequest.protocol_id, ids)).values(address=None))).rowcount
    counts["opt_outs"] = (await run(delete(OptOut).where(within(OptOut.phone, phones)))).rowcount if phones else 0
    counts["whatsapp_consents"] = (await run(delete(WhatsAppConsent).where(
        within(WhatsAppConsent.phone, phones)))).rowcount if phones else 0
    if released:
        keys = await _rate_limit_keys(session, released)
        counts["rate_limits"] = (await run(delete(RateLimit).where(RateLimit.key.in_(keys)))).rowcount if keys else 0
        if phones:
            unmatched = await _callbacks_naming(session, phones)
            if unmatched:
                counts["provider_callbacks"] += (await run(update(ProviderCallback).where(
                    ProviderCallback.id.in_(unmatched)).values(payload={}))).rowcount
    return counts


async def _rate_limit_keys(session: AsyncSession, released: set[str]) -> list[str]:
    """The rate-limit keys of these contacts: keys hold a contact's digest after ':contact:', never
    the contact (protocols/ratelimit.py); only windows still open are kept, so they are few."""
    keys = (await session.scalars(select(RateLimit.key).where(RateLimit.key.contains(":contact:")))).all()
    if not keys:  # the usual case at a sweep's hour: no digest to compute (~2 µs a contact)
        return []
    digests = {contact_digest(c) for c in released}
    return sorted({k for k in keys if k.rpartition(":contact:")[2] in digests})


async def _callbacks_naming(session: AsyncSession, phones: set[str]) -> list[int]:
    """Callbacks matched to no notification whose payload names one of these phones anywhere."""
    found = (await session.execute(select(ProviderCallback.id, cast(ProviderCallback.payload, String)).where(
        ProviderCallback.notification_id.is_(None)))).all()
    if not found:  # the usual case: compiling the pattern of a batch's phones costs ~10 ms
        return []
    named = re.compile("|".join(re.escape(p) for p in sorted(phones, key=len, reverse=True)))
    return [row[0] for row in found if row[1] and named.search(row[1])]


async def anonymize_number(db: Database, profiles: Profiles, number: str, *, at: datetime, abandoned_after: float,
                           actor: str, dry_run: bool = False, vacuum: bool = False) -> dict[str, Any]:
    """Anonymize one protocol now, by decision of an operator. Refused under legal hold or
    before its minimum retention has ended."""
    async with db.read() as session:
        row = (await session.execute(select(*CANDIDATE_COLUMNS).where(Protocol.number == number))).first()
    if row is None:
        raise NotFound(f"no protocol {number}")
    if row.status == "anonymized":
        raise RetentionRefused(f"protocol {number} is already anonymized")
    if row.legal_hold:
        raise RetentionRefused(f"protocol {number} is under legal hold")
    end = effective_end(row, profiles, timedelta(seconds=abandoned_after))
    if end is None:
        raise RetentionRefused(f"protocol {number}: profile {row.profile} has no retention period set "
                               f"([profiles.{row.profile}] retention_years)")
    if at < end:
        raise RetentionRefused(f"protocol {number}: its minimum retention ends {end.isoformat()}; anonymizing "
                               "before then is refused")
    rule = f"{profiles.get(row.profile).retention_rule()}; retention ended {end.isoformat()}; by {actor}"
    if dry_run:
        return {"number": number, "anonymized": False, "dry_run": True, "retention_ended": end.isoformat()}
    async with db.write() as session:
        done, counts, held = await anonymize(session, [row.id], at=at, actor=actor, rules={row.id: rule},
                                             sqlite=db.is_sqlite)
    if not done:
        raise RetentionRefused(f"protocol {number} was placed under legal hold meanwhile" if held else
                               f"protocol {number} was anonymized meanwhile")
    log.info("record anonymized", extra={"action": "retention_anonymized", "number": number, "count": 1})
    wal_emptied = await erase_sqlite(db, vacuum=vacuum) if db.is_sqlite else None
    return {"number": number, "anonymized": True, "rows": counts, "vacuumed": db.is_sqlite and vacuum,
            "wal_emptied": wal_emptied}
