"""Retention: notices, expiry (notify or anonymize), legal hold, and the proof that anonymized
personal data is gone from the database: every table's rows, and on SQLite the file's bytes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, text

from gateway.app import build_runtime, web_app
from gateway.errors import NotFound
from gateway.protocols.anonymize import anonymize_number
from gateway.protocols.legal_hold import set_legal_hold
from gateway.protocols.profiles import Profiles
from gateway.protocols.ratelimit import contact_key
from gateway.protocols.retention import RetentionRefused
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
)
from gateway.store.sweep_models import RetentionAudit
from gateway.sweeps import retention as retention_sweeps
from tests.helpers import admin_key
from tests.sweep_helpers import (
    Clock,
    add,
    at,
    marks,
    notifications,
    protocol_row,
    runner_for,
    schedules_from,
    sweep_settings,
    write_schedule,
)

NOTICE = """
kind = "retention_notice"
cron = "0 7 * * *"
template = "retention_notice"
offsets = ["30d", "7d"]
"""
EXPIRY = """
kind = "anonymize"
cron = "30 3 * * *"
template = "retention_notice"
"""
NOW = at(22, 12)  # the clock of these tests
NAME, EMAIL, PHONE = "Zuleica Bragança Quintanilha", "zuleica.quintanilha@example.org", "+5511976543210"
SUBJECT = "Cobrança indevida contrato 998877 de Zuleica"
ADDRESS = "Rua das Acácias 742, apto 31"
# What must not be found anywhere after anonymization (ASCII, so JSON escapes cannot hide it).
PERSONAL = ["Zuleica", "Quintanilha", "zuleica.quintanilha", "5511976543210", "976543210", "998877",
            "742, apto", "123.456.789-09", "ZQ-4455", "Estorno feito", "Ligamos para"]


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "schedules"
    write_schedule(path, "notice", NOTICE)
    write_schedule(path, "expiry", EXPIRY)
    return path


@pytest.fixture
async def db(db_url):
    database = Database(db_url)
    yield database
    await database.dispose()


def make_runner(db, tmp_path, db_url, folder, now=NOW, **sections):
    settings = sweep_settings(tmp_path, db_url, **sections)
    return runner_for(db, settings, schedules_from(settings, folder), Clock(now))


ANONYMIZE = {"retention": {"action": "anonymize", "grace": "30d"}}


async def consumer_with_everything(db: Database) -> Protocol:
    """One consumer's protocol with personal data in every place the gateway keeps any."""
    (p,) = await add(db, protocol_row(
        at(5, 14, year=2024, month=1), resolved_at=at(10, 12, year=2024, month=1), consumer_name=NAME,
        consumer_email=EMAIL, consumer_phone=PHONE, subject=SUBJECT,
        extra={"cpf": "123.456.789-09", "crm_customer": "ZQ-4455"}, category="billing"))
    consumer = {"name": NAME, "email": EMAIL, "phone": PHONE}
    events = await add(db, *(
        Event(protocol_id=p.id, source="urn:test:crm", event_id=f"e{i}", type=kind, occurred_at=p.opened_at,
              received_at=p.opened_at, data=data, fingerprint=f"sha256:{i}", answer={"protocol": {"number": p.number}})
        for i, (kind, data) in enumerate([
            ("protocol.opened", {"subject": SUBJECT, "consumer": consumer, "metadata": p.extra, "category": "billing"}),
            ("protocol.updated", {"number": p.number, "message": "Ligamos para Zuleica em 23/11"}),
            ("protocol.resend_requested", {"number": p.number, "channel": "mail", "to": ADDRESS}),
            ("protocol.resolved", {"number": p.number, "resolution": "Estorno feito para Zuleica"}),
        ])))

    def message(channel, recipient, body, audience="consumer", protocol_id=p.id, **more):
        return Notification(protocol_id=protocol_id, event_id=events[0].id if protocol_id else None, channel=channel,
                            audience=audience, recipient=recipient, template="protocol_opened",
                            template_hash="sha256:abc", locale="pt-BR", subject=more.get("subject"),
                            body_text=body, body_html=more.get("html"), status="delivered", attempts=1,
                            next_attempt_at=p.opened_at, created_at=p.opened_at, sent_at=p.opened_at,
                            provider_id=more.get("provider_id"), last_error=more.get("last_error"))

    email, sms, hook, ops, general = await add(
        db,
        message("email", EMAIL, f"Olá, {NAME}. {SUBJECT}", subject=f"Protocolo {p.number}: {SUBJECT}",
                html=f"<p>Olá, {NAME}</p>", last_error=f"550 5.1.1 <{EMAIL}>: rejected once"),
        message("sms", PHONE, f"Protocolo {p.number}: {SUBJECT}", provider_id="SM123"),
        message("webhook", "https://crm.example.com/hooks", f'{{"to": "{PHONE}", "name": "{NAME}"}}',
                audience="upstream"),
        message("email", "ops@example.com", f"Overdue: {SUBJECT}", audience="operations"),
        message("sms", PHONE, f"Seus protocolos: {p.number} ({SUBJECT})", protocol_id=None),
    )
    await add(
        db,
        Attempt(notification_id=email.id, attempt=1, started_at=p.opened_at, finished_at=p.opened_at,
                outcome="queued", error=f"450 mailbox {EMAIL} busy", error_code="450"),
        ProviderCallback(notification_id=sms.id, provider_id="SM123", status="delivered",
                         payload={"MessageSid": "SM123", "To": PHONE, "MessageStatus": "delivered"},
                         received_at=p.opened_at),
        ProviderCallback(notification_id=None, provider_id="SM999", status="delivered",
                         payload={"MessageSid": "SM999", "To": PHONE}, received_at=p.opened_at),
        ConsumerRequest(protocol_id=p.id, event_id=events[2].id, kind="history", channel="mail",
                        requested_at=p.opened_at, due_at=p.opened_at + timedelta(days=5), address=ADDRESS),
        InboundMessage(provider_id="SMin1", from_phone=PHONE, to_phone="+15005550006",
                       body="PROTOCOLO por favor, aqui é a Zuleica", received_at=p.opened_at,
                       reply_notification_id=general.id),
        OptOut(phone=PHONE, opted_out_at=p.opened_at, keyword="STOP"),
        RateLimit(key=contact_key("resend", EMAIL), window_start=p.opened_at, hits=2),
        RateLimit(key=contact_key("inbound", PHONE), window_start=p.opened_at, hits=3),
    )
    return p


async def all_rows_text(db: Database) -> str:
    """Every row of every table, as text."""
    async with db.read() as session:
        if db.is_sqlite:
            tables = (await session.scalars(text("SELECT name FROM sqlite_master WHERE type = 'table'"))).all()
            chunks = []
            for table in tables:
                rows = (await session.execute(text(f'SELECT * FROM "{table}"'))).all()
                chunks += [repr(tuple(r)) for r in rows]
            return "\n".join(chunks)
        tables = (await session.scalars(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"))).all()
        chunks = []
        for table in tables:
            chunks += (await session.scalars(text(f'SELECT t::text FROM "{table}" AS t'))).all()
        return "\n".join(chunks)


def file_bytes(db_url: str) -> bytes:
    path = Path(db_url.split(":///", 1)[1])
    data = path.read_bytes()
    for suffix in ("-wal", "-journal"):
        extra = Path(str(path) + suffix)
        if extra.exists():
            data += extra.read_bytes()
    return data


def found(haystack: str | bytes, needles: list[str]) -> list[str]:
    if isinstance(haystack, bytes):
        return [n for n in needles if n.encode() in haystack]
    return [n for n in needles if n in haystack]


@pytest.mark.parametrize("vacuum", [False, True])
async def test_anonymization_leaves_no_personal_datum_anywhere(db, db_url, tmp_path, folder, vacuum):
    """Without VACUUM too (the default): secure_delete zeroes what the updates free, and the WAL,
    which still holds the old pages, is checkpointed and truncated after the run."""
    p = await consumer_with_everything(db)
    assert found(await all_rows_text(db), PERSONAL) == PERSONAL
    if db.is_sqlite:
        assert found(file_bytes(db_url), PERSONAL)  # the scan sees them before: it is not blind

    runner = make_runner(db, tmp_path, db_url, folder, retention={**ANONYMIZE["retention"], "vacuum": vacuum})
    result = await runner.run("expiry", at=NOW)
    assert (result.anonymized, result.skipped) == (1, None)
    assert result.vacuumed == (db.is_sqlite and vacuum)
    assert result.wal_emptied is (True if db.is_sqlite else None)

    assert found(await all_rows_text(db), PERSONAL) == []
    if db.is_sqlite:
        assert found(file_bytes(db_url), PERSONAL) == []

    async with db.read() as session:
        kept = await session.get(Protocol, p.id)
        assert (kept.number, kept.status, kept.category, kept.profile) == (p.number, "anonymized", "billing", "br-sac")
        assert (kept.opened_at, kept.resolved_at, kept.anonymized_at) == (p.opened_at, p.resolved_at, NOW)
        assert kept.consumer_email is None and kept.extra is None
        events = (await session.scalars(select(Event).where(Event.protocol_id == p.id).order_by(Event.id))).all()
        assert [e.type for e in events] == ["protocol.opened", "protocol.updated", "protocol.resend_requested",
                                            "protocol.resolved"]
        assert all(e.data == {"anonymized": True} and e.occurred_at == p.opened_at for e in events)
        sent = (await session.scalars(select(Notification).order_by(Notification.id))).all()
        assert [(n.channel, n.status, n.template_hash) for n in sent][:2] == [
            ("email", "delivered", "sha256:abc"), ("sms", "delivered", "sha256:abc")]
        assert sent[3].recipient == "ops@example.com"  # operations addresses are not the consumer's
        # Rate-limit keys hold the contact's digest, not the contact: found by the same digest.
        assert (await session.scalars(select(RateLimit.key))).all() == []
        audit = (await session.scalars(select(RetentionAudit).order_by(RetentionAudit.id))).all()
    assert [a.action for a in audit] == ["anonymized", "anonymize_run"]
    assert audit[0].number == p.number and "Decreto 11.034/2022 art. 12 §5" in audit[0].rule
    assert "retention ended 2026-01-10T12:00:00+00:00" in audit[0].rule and "grace 30d" in audit[0].rule
    assert audit[1].detail["numbers"] == [p.number] and audit[1].detail["rows"]["events"] == 4

    again = await runner.run("expiry", at=NOW + timedelta(minutes=1))
    assert again.anonymized == 0


async def test_a_contact_another_live_protocol_uses_is_kept(db, db_url, tmp_path, folder):
    old, live = await add(db, protocol_row(at(5, year=2024, month=1), resolved_at=at(10, year=2024, month=1)),
                          protocol_row(at(20)))
    phone = old.consumer_phone
    assert live.consumer_phone == phone
    await add(db, OptOut(phone=phone, opted_out_at=old.opened_at, keyword="STOP"),
              InboundMessage(provider_id="SMx", from_phone=phone, body="PROTOCOLO", received_at=old.opened_at))
    runner = make_runner(db, tmp_path, db_url, folder, **ANONYMIZE)
    assert (await runner.run("expiry", at=NOW)).anonymized == 1
    async with db.read() as session:
        assert await session.get(OptOut, phone) is not None
        assert (await session.scalar(select(InboundMessage.from_phone))) == phone
        assert (await session.get(Protocol, live.id)).consumer_phone == phone


async def test_an_email_another_live_protocol_holds_in_another_case_is_kept(db, db_url, tmp_path, folder):
    """Emails are compared by their digest (of the case-folded address): `Ana.Souza@` and
    `ana.souza@` count as one address, so the old protocol's is still in use."""
    old, live = await add(db, protocol_row(at(5, year=2024, month=1), resolved_at=at(10, year=2024, month=1),
                                           consumer_email="Ana.Souza@example.com", consumer_phone="+5511911112222"),
                          protocol_row(at(20), consumer_email="ana.souza@example.com", consumer_phone="+5511933334444"))
    key = contact_key("resend", "Ana.Souza@example.com")
    await add(db, RateLimit(key=key, window_start=old.opened_at, hits=1))
    runner = make_runner(db, tmp_path, db_url, folder, **ANONYMIZE)
    assert (await runner.run("expiry", at=NOW)).anonymized == 1
    async with db.read() as session:
        assert (await session.get(Protocol, old.id)).consumer_email is None
        assert (await session.get(Protocol, live.id)).consumer_email == "ana.souza@example.com"
        assert (await session.scalars(select(RateLimit.key))).all() == [key]


async def test_nothing_before_retention_and_grace_and_nothing_under_legal_hold(db, db_url, tmp_path, folder):
    young, in_grace, held, due = await add(
        db,
        protocol_row(at(1), resolved_at=at(2)),                                            # until 2028-11-02
        protocol_row(at(5, year=2024), resolved_at=at(10, year=2024)),                     # until 2026-11-10: grace
        protocol_row(at(5, year=2024, month=1), resolved_at=at(10, year=2024, month=1), legal_hold=True),
        protocol_row(at(5, year=2024, month=1), resolved_at=at(10, year=2024, month=1)),
    )
    runner = make_runner(db, tmp_path, db_url, folder, **ANONYMIZE)
    result = await runner.run("expiry", at=NOW)
    assert result.anonymized == 1
    async with db.read() as session:
        statuses = dict((await session.execute(select(Protocol.id, Protocol.status))).all())
    assert statuses == {young.id: "resolved", in_grace.id: "resolved", held.id: "resolved", due.id: "anonymized"}


async def test_anonymizing_as_of_a_time_to_come_is_refused(db, db_url, tmp_path, folder):
    await add(db, protocol_row(at(1), resolved_at=at(2)))
    runner = make_runner(db, tmp_path, db_url, folder, **ANONYMIZE)
    with pytest.raises(RetentionRefused, match="a time still to come"):
        await runner.run("expiry", at=at(1, year=2030))
    dry = await runner.run("expiry", at=at(1, year=2030), dry_run=True)
    assert dry.anonymized == 1
    async with db.read() as session:
        assert (await session.scalar(select(Protocol.status))) == "resolved"


async def test_manual_anonymization_is_refused_before_the_minimum_retention_and_under_hold(db, db_url, tmp_path):
    young, old = await add(db, protocol_row(at(1), resolved_at=at(2)),
                           protocol_row(at(5, year=2024, month=1), resolved_at=at(10, year=2024, month=1)))
    profiles = Profiles.from_settings(sweep_settings(tmp_path, db_url))
    kwargs = dict(at=NOW, abandoned_after=365 * 86400, actor="cli:test")
    with pytest.raises(RetentionRefused, match="minimum retention ends 2028-11-02"):
        await anonymize_number(db, profiles, young.number, **kwargs)
    await set_legal_hold(db, old.number, True, at=NOW, actor="cli:test", reason="court order 123")
    with pytest.raises(RetentionRefused, match="legal hold"):
        await anonymize_number(db, profiles, old.number, **kwargs)
    await set_legal_hold(db, old.number, False, at=NOW, actor="cli:test")
    done = await anonymize_number(db, profiles, old.number, **kwargs)
    assert done["anonymized"] is True
    with pytest.raises(RetentionRefused, match="already anonymized"):
        await anonymize_number(db, profiles, old.number, **kwargs)
    with pytest.raises(NotFound):
        await anonymize_number(db, profiles, "999999", **kwargs)
    async with db.read() as session:
        actions = (await session.scalars(select(RetentionAudit.action).order_by(RetentionAudit.id))).all()
    assert actions == ["hold_placed", "hold_lifted", "anonymized"]


async def test_notify_is_the_default_and_destroys_nothing(db, db_url, tmp_path, folder):
    expired = await add(db, *(protocol_row(at(5, year=2024, month=1), resolved_at=at(10 + i, year=2024, month=1))
                              for i in range(3)))
    runner = make_runner(db, tmp_path, db_url, folder)
    result = await runner.run("expiry", at=at(20, month=1))  # retention ended 10 to 12 January 2026
    assert (result.notified, result.enqueued, result.anonymized) == (3, 2, 0)
    report = (await notifications(db, recipient="ops@example.com"))[0]
    assert "3 registro(s) com o prazo mínimo de guarda encerrado" in report.subject
    assert all(p.number in report.body_text for p in expired) and "notify" in report.body_text
    assert (await runner.run("expiry", at=at(21, month=1))).notified == 0  # reported once
    async with db.read() as session:
        assert set((await session.scalars(select(Protocol.status))).all()) == {"resolved"}


async def test_notices_come_30_and_7_days_before_once_each(db, db_url, tmp_path, folder):
    (p,) = await add(db, protocol_row(at(5, year=2024), resolved_at=at(20, 15, year=2024)))  # until 2026-11-20 15:00Z
    runner = make_runner(db, tmp_path, db_url, folder)
    assert (await runner.run("notice", at=at(20, 14, month=10))).notified == 0         # 31 days before
    assert (await runner.run("notice", at=at(21, 16, month=10))).notified == 1         # within 30 days
    assert (await runner.run("notice", at=at(22, 10, month=10))).notified == 0
    assert (await runner.run("notice", at=at(14, 10))).notified == 1                   # within 7 days
    assert (await runner.run("notice", at=at(15, 10))).notified == 0
    assert {m.slot for m in await marks(db)} == {"30d", "7d"}
    reports = await notifications(db, recipient="lead@example.com")
    assert len(reports) == 2 and all(p.number in r.body_text for r in reports)
    assert "30 dias" in reports[0].subject and "7 dias" in reports[1].subject


async def test_profiles_without_a_retention_period_take_no_part_until_one_is_set(db, db_url, tmp_path, folder):
    (es,) = await add(db, protocol_row(at(5, year=2020), profile="es", resolved_at=at(10, year=2020)))
    assert es.retention_until is None
    unset = make_runner(db, tmp_path, db_url, folder, **ANONYMIZE)
    assert (await unset.run("expiry", at=NOW)).anonymized == 0
    configured = make_runner(db, tmp_path, db_url, folder, profiles={"es": {"retention_years": 5}}, **ANONYMIZE)
    assert (await configured.run("expiry", at=NOW)).anonymized == 1


async def test_abandoned_protocols_are_not_kept_forever(db, db_url, tmp_path, folder):
    # Open, silent since 2023-06-01: abandoned a year later, kept 2 years, then 30 days of grace.
    (silent,) = await add(db, protocol_row(at(1, year=2023, month=6), last_event_at=at(1, year=2023, month=6)))
    (recent,) = await add(db, protocol_row(at(1, year=2025, month=6)))
    # Abandoned 2024-05-31 (365 days later), kept until 2026-05-31, anonymized after 2026-06-30.
    early = make_runner(db, tmp_path, db_url, folder, now=at(29, year=2026, month=6), **ANONYMIZE)
    assert (await early.run("expiry", at=at(29, year=2026, month=6))).anonymized == 0
    runner = make_runner(db, tmp_path, db_url, folder, now=at(1, year=2026, month=7), **ANONYMIZE)
    assert (await runner.run("expiry", at=at(1, year=2026, month=7))).anonymized == 1
    async with db.read() as session:
        assert (await session.get(Protocol, silent.id)).status == "anonymized"
        assert (await session.get(Protocol, recent.id)).status == "open"


async def test_a_longer_retention_in_the_settings_is_honoured_over_the_stored_end(db, db_url, tmp_path, folder):
    (p,) = await add(db, protocol_row(at(5, year=2024, month=1), resolved_at=at(10, year=2024, month=1)))
    runner = make_runner(db, tmp_path, db_url, folder, profiles={"br-sac": {"retention_years": 5}}, **ANONYMIZE)
    result = await runner.run("expiry", at=NOW)
    assert (result.anonymized, result.extended) == (0, 1)
    async with db.read() as session:
        assert (await session.get(Protocol, p.id)).retention_until == at(10, year=2029, month=1)


async def test_legal_hold_over_the_api(tmp_path, db_url):
    settings = sweep_settings(tmp_path, db_url)
    runtime = build_runtime(settings)
    try:
        (p,) = await add(runtime.db, protocol_row(at(1)))
        key = await admin_key(runtime, ["protocols:write"])
        reader = await admin_key(runtime, ["protocols:read"])
        async with TestClient(TestServer(web_app(runtime, run_dispatcher=False))) as client:
            url = f"/v1/protocols/{p.number}/legal-hold"
            auth = {"Authorization": f"Bearer {key}"}
            r = await client.post(url, json={"reason": "court order 123"}, headers=auth)
            assert r.status == 200 and await r.json() == {"number": p.number, "legal_hold": True, "changed": True}
            r = await client.post(url, headers=auth)
            assert (await r.json())["changed"] is False
            r = await client.get(f"/v1/protocols/{p.number}", headers={"Authorization": f"Bearer {reader}"})
            assert (await r.json())["legal_hold"] is True
            r = await client.delete(url, headers=auth)
            assert await r.json() == {"number": p.number, "legal_hold": False, "changed": True}
            r = await client.post(url, headers={"Authorization": f"Bearer {reader}"})
            assert r.status == 403
            r = await client.post("/v1/protocols/1234567/legal-hold", headers=auth)
            assert r.status == 404 and r.content_type == "application/problem+json"
            r = await client.post(url, json={"why": 1}, headers=auth)
            assert r.status == 422
        async with runtime.db.read() as session:
            audit = (await session.scalars(select(RetentionAudit).order_by(RetentionAudit.id))).all()
        assert [(a.action, a.actor.startswith("api-key:")) for a in audit] == [("hold_placed", True),
                                                                              ("hold_lifted", True)]
        assert audit[0].detail == {"reason": "court order 123"}
    finally:
        await runtime.aclose()


async def test_through_the_service_nothing_personal_survives_anonymization(tmp_path, db_url, folder):
    """The same proof for what the real code paths write: events, rendered messages, sends,
    a history asked to another address, rate-limit keys."""
    from gateway.protocols.schemas import OpenedData, ResendData, ResolvedData, UpdatedData
    from gateway.protocols.service import IncomingEvent

    settings = sweep_settings(tmp_path, db_url, **ANONYMIZE)
    runtime = build_runtime(settings, clock=Clock(NOW))
    opened = at(5, 14, year=2024, month=1)

    async def event(kind, model, data, when):
        incoming = IncomingEvent(source="urn:test:crm", id=f"{kind}-{when.isoformat()}", type=kind, time=when,
                                 data=model.model_validate(data))
        return (await runtime.service.handle(incoming, received_at=when)).body

    try:
        body = await event("protocol.opened", OpenedData, {
            "subject": SUBJECT, "channel": "phone", "category": "billing",
            "consumer": {"name": NAME, "email": EMAIL, "phone": PHONE},
            "metadata": {"cpf": "123.456.789-09", "crm_customer": "ZQ-4455"}}, opened)
        number = body["protocol"]["number"]
        await event("protocol.updated", UpdatedData, {"number": number, "message": "Ligamos para Zuleica"},
                    opened + timedelta(hours=1))
        await event("protocol.resend_requested", ResendData, {"number": number, "channel": "email", "history": True,
                                                              "to": "zuleica.quintanilha.2@example.org"},
                    opened + timedelta(hours=2))
        await event("protocol.resend_requested", ResendData, {"number": number, "channel": "mail", "to": ADDRESS},
                    opened + timedelta(hours=3))
        await event("protocol.resolved", ResolvedData, {"number": number, "resolution": "Estorno feito para Zuleica",
                                                        "resolved_at": at(10, 12, year=2024, month=1).isoformat()},
                    at(10, 12, year=2024, month=1))
        await runtime.dispatcher.run_until_idle()
        assert found(await all_rows_text(runtime.db), PERSONAL)

        result = await runtime.sweeps.run(runtime.sweeps.get("retention-expiry"), at=NOW)
        assert result.anonymized == 1
        assert found(await all_rows_text(runtime.db), PERSONAL) == []
        if runtime.db.is_sqlite:
            assert found(file_bytes(db_url), PERSONAL) == []
        async with runtime.db.read() as session:
            kept = (await session.execute(select(Protocol.number, Protocol.status, Protocol.category, Protocol.profile,
                                                 Protocol.opened_at))).one()
            statuses = set((await session.scalars(select(Notification.status))).all())
        assert tuple(kept) == (number, "anonymized", "billing", "br-sac", opened)
        assert statuses <= {"sent", "delivered"} and statuses
    finally:
        await runtime.aclose()


def test_cli_hold_release_and_anonymize(tmp_path, capsys):
    import json
    import logging

    from gateway import cli
    from tests.conftest import run_isolated

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    url = f"sqlite+aiosqlite:///{tmp_path}/g.db"
    config = tmp_path / "settings.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')

    async def seed() -> str:
        from gateway.store.migrate import migrate

        db = Database(url)
        try:
            await migrate(db)
            (p,) = await add(db, protocol_row(at(5, year=2024, month=1), resolved_at=at(10, year=2024, month=1)))
            return p.number
        finally:
            await db.dispose()

    try:
        number = run_isolated(seed())
        assert cli.main(["--config", str(config), "protocols", "hold", number, "--reason", "court order"]) == 0
        assert json.loads(capsys.readouterr().out) == {"number": number, "legal_hold": True, "changed": True}
        assert cli.main(["--config", str(config), "protocols", "anonymize", number]) == 1
        assert "under legal hold" in capsys.readouterr().err
        assert cli.main(["--config", str(config), "protocols", "release", number]) == 0
        capsys.readouterr()
        assert cli.main(["--config", str(config), "protocols", "anonymize", number, "--dry-run"]) == 0
        assert json.loads(capsys.readouterr().out)["dry_run"] is True
        assert cli.main(["--config", str(config), "protocols", "anonymize", number]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["anonymized"] is True and out["wal_emptied"] is True and out["vacuumed"] is False
        assert cli.main(["--config", str(config), "protocols", "hold", "123456"]) == 1
        assert "no protocol 123456" in capsys.readouterr().err
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


BATCHED_EXPIRY = EXPIRY + "[options]\nbatch_size = 2\nlist_limit = 3\n"


async def test_a_backlog_over_many_batches_is_one_report_listing_the_soonest(db, db_url, tmp_path):
    """Seven records expired, read two a batch: each address gets one email, counting all seven
    and listing the three whose retention ended first, though they came in the last batches
    (records resolved before their end was stored are read after those with a stored end)."""
    folder = tmp_path / "schedules"
    write_schedule(folder, "expiry", BATCHED_EXPIRY)
    expired = await add(db, *(protocol_row(at(5, year=2024, month=1), resolved_at=at(16 - i, year=2024, month=1),
                                           **({"retention_until": None} if i >= 4 else {}))
                              for i in range(7)))  # the later added, the earlier it ended
    runner = make_runner(db, tmp_path, db_url, folder)
    result = await runner.run("expiry", at=at(20, month=1))
    assert (result.notified, result.enqueued, result.batches) == (7, 2, 4)
    (report,) = await notifications(db, recipient="ops@example.com")
    assert "7 registro(s)" in report.subject and "e mais 4" in report.body_text
    listed = [p.number for p in expired if p.number in report.body_text]
    assert listed == [p.number for p in expired[-3:]]
    assert (await runner.run("expiry", at=at(21, month=1))).notified == 0  # reported once


async def test_a_backlog_larger_than_a_report_is_reported_in_parts_each_once(db, db_url, tmp_path, monkeypatch):
    monkeypatch.setattr(retention_sweeps, "REPORT_MAX", 3)
    folder = tmp_path / "schedules"
    write_schedule(folder, "expiry", EXPIRY + "[options]\nbatch_size = 2\n")
    expired = await add(db, *(protocol_row(at(5, year=2024, month=1), resolved_at=at(10 + i, year=2024, month=1))
                              for i in range(7)))
    runner = make_runner(db, tmp_path, db_url, folder)
    assert (await runner.run("expiry", at=at(20, month=1))).notified == 7
    reports = await notifications(db, recipient="ops@example.com")
    assert sorted(r.subject.split()[1] for r in reports) == ["1", "3", "3"]  # at most 3 a report
    assert all(sum(p.number in r.body_text for r in reports) == 1 for p in expired)  # each in one report
    assert (await runner.run("expiry", at=at(21, month=1))).notified == 0
