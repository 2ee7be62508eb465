"""The dispatcher against the real aiosmtpd server and the real Twilio SDK talking to a
local fake of Twilio's API, on SQLite and PostgreSQL. Time is a fixed clock we move."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, update

from gateway.app import Runtime, build_runtime
from gateway.delivery import outbox
from gateway.protocols.schemas import OpenedData
from gateway.protocols.service import IncomingEvent
from gateway.store.installation import installation_key
from gateway.store.models import Attempt, Notification
from tests.fakes.smtp_sink import SMTPSink
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import make_settings, opened_event

T0 = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def gw(tmp_path: Path, db_url: str, sink: SMTPSink, twilio: FakeTwilio, clock: Clock) -> AsyncIterator[Runtime]:
    settings = make_settings(
        tmp_path, db_url,
        email={"transport": "smtp", "smtp": {"host": sink.host, "port": sink.port, "starttls": False, "pool_size": 2,
                                             "timeout": "2s"}},
        sms={"transport": "twilio", "twilio": {"account_sid": twilio.account_sid, "auth_token": twilio.auth_token,
                                               "from": "+15005550006", "api_base_url": twilio.base_url,
                                               "timeout": "300ms"}},
        http={"public_url": "https://gateway.example.com"},
    )
    runtime = build_runtime(settings, clock=clock)
    yield runtime
    await runtime.aclose()


async def open_protocol(runtime: Runtime, event_id: str = "e1", **data) -> dict:
    event = opened_event(event_id, **data)
    incoming = IncomingEvent(source=event["source"], id=event["id"], type=event["type"], time=T0,
                             data=OpenedData.model_validate(event["data"]))
    return (await runtime.service.handle(incoming, received_at=T0)).body


async def notifications(runtime: Runtime) -> dict[str, Notification]:
    async with runtime.db.read() as session:
        return {n.channel: n for n in (await session.scalars(select(Notification))).all()}


async def attempts(runtime: Runtime, notification_id: int) -> list[Attempt]:
    async with runtime.db.read() as session:
        return list((await session.scalars(
            select(Attempt).where(Attempt.notification_id == notification_id).order_by(Attempt.id))).all())


async def test_email_and_sms_reach_the_servers_and_are_recorded_as_sent(gw, sink, twilio):
    answer = await open_protocol(gw)
    await gw.dispatcher.run_until_idle()

    rows = await notifications(gw)
    assert rows["email"].status == "sent" and rows["sms"].status == "sent"
    assert rows["email"].attempts == 1 and rows["email"].sent_at == T0
    email = sink.messages[0]
    installation = await gw.db.query(installation_key)
    assert re.fullmatch(r"[0-9a-f]{16}", installation)  # the database's own key: no two installations share ids
    assert email["Message-ID"] == f"<notification-{rows['email'].id}.{installation}@example.com>"
    assert email["Reply-To"] == "sac@example.com"
    assert answer["protocol"]["number"] in email["Subject"]
    assert rows["email"].provider_id == email["Message-ID"]

    (posted,) = twilio.messages
    assert posted.form["To"] == "+5511987654321" and posted.form["From"] == "+15005550006"
    assert answer["protocol"]["number"] in posted.form["Body"]
    assert posted.form["StatusCallback"] == (
        f"https://gateway.example.com/v1/webhooks/twilio/status?notification={rows['sms'].id}")
    assert rows["sms"].provider_id == posted.sid
    assert [a.outcome for a in await attempts(gw, rows["sms"].id)] == ["sent"]


async def test_smtp_4xx_is_retried_with_backoff_then_sent(gw, sink, clock):
    sink.refuse(lambda rcpt: "451 4.3.0 try again later")
    await open_protocol(gw, notify=["email"])
    await gw.dispatcher.run_until_idle()

    row = (await notifications(gw))["email"]
    assert row.status == "queued" and row.error_code == "451" and "451" in row.last_error
    # retry_base 5 s with up to 20 % jitter below it
    assert T0 + timedelta(seconds=4) <= row.next_attempt_at <= T0 + timedelta(seconds=5)

    sink.refuse(None)
    await gw.dispatcher.run_until_idle()  # not due yet: nothing happens
    assert (await notifications(gw))["email"].status == "queued"
    clock.advance(5)
    await gw.dispatcher.run_until_idle()
    row = (await notifications(gw))["email"]
    assert row.status == "sent" and row.attempts == 2 and row.last_error is None
    assert [a.outcome for a in await attempts(gw, row.id)] == ["queued", "sent"]
    assert len(sink.messages) == 1


async def test_smtp_5xx_fails_for_good_with_the_code(gw, sink):
    sink.refuse(lambda rcpt: "550 5.1.1 no such user")
    await open_protocol(gw, notify=["email"])
    await gw.dispatcher.run_until_idle()
    row = (await notifications(gw))["email"]
    assert row.status == "failed" and row.error_code == "550"


async def test_twilio_429_honours_retry_after(gw, twilio):
    twilio.script(status=429, code=20429, retry_after=120)
    await open_protocol(gw, notify=["sms"])
    await gw.dispatcher.run_until_idle()
    row = (await notifications(gw))["sms"]
    assert row.status == "queued" and row.error_code == "20429"
    assert row.next_attempt_at == T0 + timedelta(seconds=120)


async def test_twilio_500_is_retried_and_21211_fails(gw, twilio, clock):
    twilio.script(status=500, code=20500)
    await open_protocol(gw, "a", notify=["sms"])
    await gw.dispatcher.run_until_idle()
    assert (await notifications(gw))["sms"].status == "queued"
    clock.advance(10)
    await gw.dispatcher.run_until_idle()
    assert (await notifications(gw))["sms"].status == "sent"
    assert len(twilio.messages) == 2  # one POST per try: the SDK never retried by itself


async def test_twilio_invalid_number_is_failed(gw, twilio):
    twilio.invalid_numbers.add("4321")
    await open_protocol(gw, notify=["sms"])
    await gw.dispatcher.run_until_idle()
    row = (await notifications(gw))["sms"]
    assert row.status == "failed" and row.error_code == "21211"


async def test_timeout_is_unknown_then_sent_again_with_a_duplicate_note(gw, twilio, clock):
    twilio.script(delay=2)
    await open_protocol(gw, notify=["sms"])
    await gw.dispatcher.run_until_idle()
    row = (await notifications(gw))["sms"]
    assert row.status == "unknown" and row.duplicate_possible is False
    assert row.next_attempt_at == T0 + timedelta(minutes=10)  # dispatch.unknown_retry_after
    clock.advance(600)
    await gw.dispatcher.run_until_idle()
    row = (await notifications(gw))["sms"]
    assert row.status == "sent" and row.duplicate_possible is True and row.attempts == 2


async def test_a_crashed_workers_claim_expires_and_is_sent_once_more(gw, sink, clock):
    await open_protocol(gw, notify=["email"])
    # A worker claims, then dies before sending anything.
    (stale,) = await gw.db.transact(lambda session: outbox.claim(session, now=clock(), limit=10, lease=60))
    await gw.dispatcher.run_until_idle()
    assert sink.messages == []  # the lease still holds
    clock.advance(61)
    await gw.dispatcher.run_until_idle()
    row = (await notifications(gw))["email"]
    assert row.status == "sent" and row.attempts == 2 and row.duplicate_possible is True
    # The dead worker coming back late cannot overwrite the new owner's record.
    owned = await gw.db.transact(lambda session: outbox.record(session, [outbox.Result(stale, T0, T0, "failed",
                                                                                     error="late")]))
    assert owned == 0
    assert (await notifications(gw))["email"].status == "sent"


async def test_gives_up_after_give_up_after_and_is_dead(gw, sink, clock):
    # One hour instead of the default day keeps the test short; the policy is the same data.
    gw.dispatcher.policy = dataclasses.replace(gw.dispatcher.policy, give_up_after=3600)
    sink.refuse(lambda rcpt: "421 4.7.0 busy")
    await open_protocol(gw, notify=["email"])
    for _ in range(100):
        await gw.dispatcher.run_until_idle()
        row = (await notifications(gw))["email"]
        if row.status != "queued":
            break
        clock.now = row.next_attempt_at
    assert row.status == "dead"
    assert clock.now - T0 >= timedelta(hours=1)
    # 5, 10, 20, 40, 80, 160 s, then capped at retry_max (5 min, less jitter) until the hour is up.
    assert 15 <= row.attempts <= 25


async def test_claims_of_two_sessions_are_disjoint(gw, clock, engine_name):
    for i in range(20):
        await open_protocol(gw, f"p{i}", notify=["email"])
    async with gw.db.write() as first:
        a = await first.run_sync(outbox.claim, now=clock(), limit=15, lease=60)
        if engine_name == "postgresql":
            # A second session while the first still holds its rows: SKIP LOCKED gives it the others.
            async with gw.db.write() as second:
                b = await second.run_sync(outbox.claim, now=clock(), limit=15, lease=60)
            assert len(b) == 5
            assert not {c.id for c in a} & {c.id for c in b}
    assert len(a) == 15


async def test_a_claim_takes_the_earliest_due_rows_first_and_none_not_yet_due(gw, clock):
    """The claim's order and limit, as each database's driver runs them (the turn's path): the
    earliest `next_attempt_at` first, ties by id; a row due later is left."""
    for i in range(6):
        await open_protocol(gw, f"o{i}", notify=["email"])
    async with gw.db.read() as session:
        ids = sorted((await session.scalars(select(Notification.id))).all())
    assert len(ids) == 6
    now = clock()
    due = {ids[0]: -1, ids[1]: -30, ids[2]: 60, ids[3]: -30, ids[4]: -5, ids[5]: -10}  # seconds from now
    async with gw.db.write() as session:
        for notification_id, seconds in due.items():
            await session.execute(update(Notification).where(Notification.id == notification_id)
                                  .values(next_attempt_at=now + timedelta(seconds=seconds)))

    async def claim(limit: int) -> set[int]:
        return {c.id for c in await gw.db.transact(lambda s: outbox.claim(s, now=now, limit=limit, lease=60))}

    assert await claim(1) == {ids[1]}  # -30 s, the lower id of the two
    assert await claim(2) == {ids[3], ids[5]}  # the other -30 s, then -10 s
    assert await claim(3) == {ids[4], ids[0]}  # all that is left due
    assert await claim(3) == set()  # ids[2] is due in a minute


async def test_a_requeue_restarts_the_give_up_clock(gw, sink, clock):
    from gateway.delivery import admin as outbox_admin

    sink.refuse(lambda rcpt: "421 4.7.0 busy")
    await open_protocol(gw, notify=["email"])
    gw.dispatcher.policy = dataclasses.replace(gw.dispatcher.policy, give_up_after=3600)
    clock.advance(7200)  # past give_up_after: the next failure is final
    await gw.dispatcher.run_until_idle()
    row = (await notifications(gw))["email"]
    assert row.status == "dead"
    clock.advance(2 * 86400)  # operations requeue it two days later; the server still refuses
    async with gw.db.write() as session:
        await outbox_admin.retry(session, row.id, now=clock(), reason="relay fixed")
    await gw.dispatcher.run_until_idle()
    row = (await notifications(gw))["email"]
    assert row.status == "queued"  # a fresh hour of retries, not dead at the first refusal
    sink.refuse(None)
    clock.now = row.next_attempt_at
    await gw.dispatcher.run_until_idle()
    assert (await notifications(gw))["email"].status == "sent"
