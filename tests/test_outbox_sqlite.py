"""On SQLite's writer the dispatcher's claim, record and give-back go straight to the driver, a
few steps each (delivery/outbox_sqlite.py): they take, store and read back exactly what the
Core statements do (the path PostgreSQL runs, and SQLite under an AsyncSession)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gateway.app import prepare
from gateway.delivery import outbox, outbox_sqlite
from gateway.delivery.errors import ProviderTry
from gateway.store import rows, sqlite_driver
from gateway.store.models import ConsumerRequest, Notification, Protocol
from gateway.store.types import UTCDateTime

NOW = datetime(2026, 11, 22, 14, 43, 7, 123456, tzinfo=timezone.utc)
LATER = NOW + timedelta(seconds=3, microseconds=5)


def _protocol(number: str) -> Protocol:
    return Protocol(number=number, issued_by="gateway", status="open", subject="Cobrança", profile="br-sac",
                    consumer_locale="pt-BR", consumer_timezone="America/Sao_Paulo", opened_at=NOW, received_at=NOW,
                    updated_at=NOW)


def _notifications(protocol_id: int) -> list[Notification]:
    def one(channel: str, recipient: str, **extra) -> Notification:
        return Notification(protocol_id=protocol_id, channel=channel, recipient=recipient, template="protocol_opened",
                            template_hash="h", locale="pt-BR", body_text="Olá, Ana: protocolo 2026 ✓",
                            subject="Protocolo — ç" if channel == "email" else None,
                            body_html="<p>Olá</p>" if channel == "email" else None,
                            next_attempt_at=NOW - timedelta(seconds=1), created_at=NOW, **{"status": "queued", **extra})

    return [
        one("email", "ana@example.com"),
        one("sms", "+5511987654321"),
        one("whatsapp", "+5511987654321", whatsapp_content={"content_sid": "HX" + "a" * 32, "variables": {"1": "Ana"}}),
        one("email", "bia@example.com", retry_from=NOW + timedelta(hours=1)),
        one("sms", "+5511900000000", status="unknown", duplicate_possible=True),
    ]


def _results(claimed: list[outbox.Claimed]) -> list[outbox.Result]:
    """One of each outcome: sent after a failover, delivered, a retry, failed for good, unknown."""
    statuses = ["sent", "delivered", "queued", "failed", "unknown"]
    return [
        outbox.Result(c, NOW, LATER, status,
                      next_attempt_at=LATER + timedelta(seconds=5) if status in ("queued", "unknown") else None,
                      provider_id=f"SM{i:032x}" if status in ("sent", "delivered") else None,
                      error=None if status in ("sent", "delivered") else f"{status}: 451 try again — ç",
                      error_code=None if status in ("sent", "delivered") else "451",
                      provider="primary",
                      tried=(ProviderTry("backup", "refused", "421"),) if status == "sent" else ())
        for i, (c, status) in enumerate(zip(claimed, statuses, strict=True))
    ]


def stored_alike(session, ids: dict[str, list[int]], columns=lambda session, name: "*") -> tuple[list[dict], ...]:
    """The rows each path wrote (its messages, their attempts, the requests they fulfilled), the same
    for both but for ids; the driver's."""
    def table(name: str, column: str, keys: list[int]) -> list[dict]:
        found = session.execute(text(f"SELECT {columns(session, name)} FROM {name} "
                                     f"WHERE {column} IN ({', '.join(map(str, keys))}) ORDER BY id")).mappings().all()
        return [{k: v for k, v in row.items() if k not in ("id", column, "protocol_id", "fallback_of")}
                for row in found]
    by_path = {path: (table("notifications", "id", ids[path]),
                      table("notification_attempts", "notification_id", ids[path]),
                      table("consumer_requests", "notification_id", ids[path]))
               for path in ids}
    for a, b in zip(by_path["driver"], by_path["core"], strict=True):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert x == y, {k: (x[k], y[k]) for k in x if x[k] != y[k]}
    return by_path["driver"]


def one_protocol(session, number: str) -> list[int]:
    """A protocol with one message of each kind: their ids."""
    protocol = _protocol(number)
    rows.insert_one(session, protocol)
    queued = _notifications(protocol.id)
    rows.insert_many(session, queued)
    return [n.id for n in queued]


def two_paths(session, suffixes: tuple[str, str]) -> dict[str, list[int]]:
    """A protocol with one message of each kind, and a request the first fulfils, for each path
    ("driver", "core"): the ids of their messages."""
    ids = {}
    for path, suffix in zip(("driver", "core"), suffixes, strict=True):
        protocol = _protocol("1000000000" + suffix)
        rows.insert_one(session, protocol)
        queued = _notifications(protocol.id)
        rows.insert_many(session, queued)
        session.add(ConsumerRequest(protocol_id=protocol.id, kind="history", channel="email", requested_at=NOW,
                                    due_at=NOW, notification_id=queued[0].id))
        ids[path] = [n.id for n in queued]
    return ids


@pytest.mark.parametrize("engine_name", ["sqlite"])
async def test_the_drivers_turn_takes_and_stores_what_the_core_statements_do(runtime):
    await prepare(runtime)

    ids = await runtime.db.transact(lambda session: two_paths(session, ("01", "02")))
    core_statements: list[str] = []
    event.listen(runtime.db.writer.sync_engine, "before_cursor_execute",
                 lambda *args: core_statements.append(args[2]))

    async def turn(path: str, *, only: list[int]) -> list[outbox.Claimed]:
        def claim(session):
            taken = outbox.claim(session, now=NOW, limit=len(only), lease=60)
            assert [c.id for c in taken] == only
            return taken
        if path == "driver":
            claimed = await runtime.db.transact(claim)
        else:
            async with runtime.db.write() as session:
                claimed = await session.run_sync(claim)
        results = _results(claimed)
        if path == "driver":
            owned = await runtime.db.transact(lambda session: outbox.record(session, results))
        else:
            async with runtime.db.write() as session:
                owned = await session.run_sync(outbox.record, results)
        assert owned == len(results)
        return claimed

    # Each path claims its own protocol's rows: the other's are pushed out of reach meanwhile.
    async def park(path_ids: list[int], at: datetime) -> None:
        async with runtime.db.write() as session:
            await session.execute(text(f"UPDATE notifications SET next_attempt_at = :at "
                                       f"WHERE id IN ({', '.join(map(str, path_ids))})"), {"at": at})

    await park(ids["core"], NOW + timedelta(days=1))
    core_statements.clear()
    driver = await turn("driver", only=ids["driver"])
    assert not core_statements  # the driver's path ran none of SQLAlchemy's statements
    await park(ids["core"], NOW - timedelta(seconds=1))
    core = await turn("core", only=ids["core"])
    assert core_statements

    def same(a: outbox.Claimed, b: outbox.Claimed) -> dict:
        return {k: v for k, v in vars(a).items() if k not in ("id", "protocol_id")} == \
            {k: v for k, v in vars(b).items() if k not in ("id", "protocol_id")}

    assert all(same(a, b) for a, b in zip(driver, core, strict=True)), (driver, core)
    assert driver[2].whatsapp_content == {"content_sid": "HX" + "a" * 32, "variables": {"1": "Ana"}}
    assert driver[3].give_up_from == NOW + timedelta(hours=1) and driver[0].give_up_from == NOW
    assert driver[4].duplicate_possible is True and driver[0].duplicate_possible is False
    assert driver[0].created_at == NOW and driver[0].attempts == 1

    def with_types(session, name: str) -> str:  # and the type SQLite stored each value as
        names = [c[1] for c in session.execute(text(f"PRAGMA table_info({name})")).all()]
        return f"*, {', '.join(f'typeof({n}) AS t_{n}' for n in names)}"

    found = await runtime.db.query(lambda session: stored_alike(session, ids, with_types))
    notifications, attempts, requests = found
    assert [n["status"] for n in notifications] == ["sent", "delivered", "queued", "failed", "unknown"]
    assert notifications[0]["sent_at"] == LATER.strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy writes it
    assert [a["outcome"] for a in attempts] == ["failed_over", "sent", "delivered", "queued", "failed", "unknown"]
    assert requests[0]["fulfilled_at"] == notifications[0]["sent_at"]


@pytest.mark.parametrize("engine_name", ["sqlite"])
async def test_giving_back_an_unsent_claim_on_the_driver_is_what_the_core_does(runtime):
    await prepare(runtime)

    ids = await runtime.db.transact(lambda session: one_protocol(session, "100000000003"))

    def claim_and_give_back(session):
        taken = outbox.claim(session, now=NOW, limit=10, lease=60)
        outbox.unclaim(session, taken[:2], now=LATER)
        return taken

    taken = await runtime.db.transact(claim_and_give_back)  # the driver
    async with runtime.db.write() as session:  # the Core statement, the rest
        await session.run_sync(outbox.unclaim, taken[2:], now=LATER)

    def read(session):
        return {n.id: (n.status, n.attempts, n.next_attempt_at, n.duplicate_possible)
                for n in session.query(Notification).filter(Notification.id.in_(ids))}
    back = await runtime.db.query(read)
    # As before the claim, due now; 'unknown' where a send of it may have left before.
    assert [back[i] for i in ids] == [("queued", 0, LATER, False)] * 4 + [("unknown", 0, LATER, True)]


@settings(max_examples=300)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_a_sends_time_is_written_as_sqlalchemy_writes_it(naive: datetime) -> None:
    """The turn's JSON writes a send's UTC times straight from their ISO text (outbox_sqlite._stored_text):
    the text SQLAlchemy's UTCDateTime binds on SQLite, and sqlite_driver.datetime_text's. (A value in
    another zone goes to datetime_text itself.)"""
    value = naive.replace(tzinfo=timezone.utc)
    dialect = sqlite_dialect.dialect()
    bound = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)(value)
    assert outbox_sqlite._stored_text(value) == bound == sqlite_driver.datetime_text(value)
