"""With a backlog the dispatcher claims ahead of its free slots and records in batches, within
its bounds: `workers` sends in flight, RECORD_AFTER outcomes waiting to be written (a turn starts
before them, and sends go on while it writes); a row
claimed ahead and not sent in time, or when the dispatcher stops, goes back unsent.

A transport of this process stands in for the provider (these tests are about the outbox:
the real SMTP and Twilio paths are in test_dispatch.py); SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.app import Runtime, build_runtime
from gateway.delivery import outbox
from gateway.delivery.channels.base import Message, Receipt
from gateway.delivery.dispatcher import CLAIM_AHEAD, RECORD_AFTER, RECORD_AT, REFILL_AT
from gateway.store.models import Notification
from tests.helpers import make_settings
from tests.test_dispatch import Clock, open_protocol

WORKERS = 4
BACKLOG = 60


class Recording:
    """Counts what it is given; checks the dispatcher's bounds at every send."""

    sends_receipts = False

    def __init__(self, dispatcher_of: list, clock: Clock) -> None:
        self.dispatcher_of = dispatcher_of
        self.clock = clock
        self.sent: Counter[int] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0
        self.most_unrecorded = 0
        self.gate: asyncio.Event | None = None  # when set up, each send waits for it
        self.hold_each = False  # when set, each send waits for its own event in `held`, by notification id
        self.held: dict[int, asyncio.Event] = {}
        self.on_send: dict[int, object] = {}  # the nth send (from 0) calls this first

    async def send(self, message: Message) -> Receipt:
        dispatcher = self.dispatcher_of[0]
        if (hook := self.on_send.pop(sum(self.sent.values()) + self.in_flight, None)) is not None:
            hook()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.most_unrecorded = max(self.most_unrecorded, dispatcher._unrecorded())
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.hold_each:
                await self.held.setdefault(message.notification_id, asyncio.Event()).wait()
            await asyncio.sleep(0)
            self.sent[message.notification_id] += 1
            return Receipt(provider_id=f"p-{message.notification_id}")
        finally:
            self.in_flight -= 1

    async def probe(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def gateway_with_backlog(tmp_path: Path, db_url: str, clock: Clock, backlog: int) -> tuple[Runtime, Recording]:
    holder: list = []
    transport = Recording(holder, clock)
    settings = make_settings(tmp_path, db_url, dispatch={"workers": WORKERS, "lease": "60s"})
    runtime = build_runtime(settings, clock=clock, transports={"email": transport, "sms": transport})
    holder.append(runtime.dispatcher)
    for i in range(backlog // 2):  # an email and an SMS each
        await open_protocol(runtime, f"e{i}")
    return runtime, transport


@pytest.fixture
async def gw(tmp_path: Path, db_url: str, clock: Clock) -> AsyncIterator[tuple[Runtime, Recording]]:
    runtime, transport = await gateway_with_backlog(tmp_path, db_url, clock, BACKLOG)
    yield runtime, transport
    await runtime.aclose()


async def rows(runtime: Runtime) -> list[Notification]:
    async with runtime.db.read() as session:
        return list((await session.scalars(select(Notification).order_by(Notification.id))).all())


async def test_a_backlog_is_claimed_ahead_and_recorded_in_batches_within_the_bounds(gw):
    runtime, transport = gw
    turns = 0
    transact = runtime.db.transact

    async def counted(fn):
        nonlocal turns
        turns += 1
        return await transact(fn)

    runtime.db.transact = counted
    await runtime.dispatcher.run_until_idle()

    stored = await rows(runtime)
    assert len(stored) == BACKLOG and all(n.status == "sent" and n.attempts == 1 for n in stored)
    assert set(transport.sent.values()) == {1} and len(transport.sent) == BACKLOG  # each once
    assert transport.most_in_flight <= WORKERS
    assert transport.most_unrecorded <= WORKERS + RECORD_AFTER
    # Not a turn per send: the first claims the free slots, the next claims the rest ahead.
    assert turns <= BACKLOG // 4, turns
    assert CLAIM_AHEAD >= BACKLOG  # (what this test's sizes assume)


async def test_sends_go_on_while_a_turn_writes_until_the_bound(tmp_path: Path, db_url: str, clock: Clock):
    """A turn is wanted once RECORD_AT outcomes wait: while it writes them, the claimed rows go on
    being sent until RECORD_AFTER wait besides the sends in flight, and not one more. (When the
    turn came only at the bound, every turn found the sends stopped.)"""
    runtime, transport = await gateway_with_backlog(tmp_path, db_url, clock, 2 * (WORKERS + RECORD_AFTER))
    dispatcher = runtime.dispatcher
    held, release = asyncio.Event(), asyncio.Event()
    at_hold: dict[str, int] = {}
    transact = runtime.db.transact

    async def holding(fn):
        if dispatcher._recording and not release.is_set() and dispatcher._ready:  # a turn with outcomes, rows left
            at_hold.update(recording=dispatcher._recording, unrecorded=dispatcher._unrecorded(),
                           ready=len(dispatcher._ready))
            held.set()
            await release.wait()
        return await transact(fn)

    runtime.db.transact = holding
    try:
        task = asyncio.create_task(dispatcher.run_until_idle())
        await asyncio.wait_for(held.wait(), timeout=30)
        for _ in range(10_000):  # the sends the bound lets start while the turn is held, all finished
            await asyncio.sleep(0)  # (they never leave the loop: turns of it, not time)
            if not dispatcher._sending and dispatcher._unrecorded() == WORKERS + RECORD_AFTER:
                break
        assert transport.in_flight == 0 and not dispatcher._sending  # (each send's end seen by the dispatcher)
        assert dispatcher._unrecorded() == WORKERS + RECORD_AFTER
        # The turn came for RECORD_AT outcomes (not for the claimed rows running low, nor at the
        # bound), with room left under the bound; the sends of the rows claimed took it: their
        # outcomes wait for the next turn.
        assert RECORD_AT <= at_hold["recording"] <= RECORD_AT + WORKERS and at_hold["ready"] > REFILL_AT, at_hold
        assert at_hold["unrecorded"] < WORKERS + RECORD_AFTER, at_hold
        assert len(dispatcher._finished) == WORKERS + RECORD_AFTER - at_hold["recording"] > WORKERS
        release.set()
        await asyncio.wait_for(task, timeout=60)
        stored = await rows(runtime)
        assert set(transport.sent.values()) == {1} and len(transport.sent) == len(stored)  # each once
        assert all(n.status == "sent" for n in stored)
        assert transport.most_unrecorded <= WORKERS + RECORD_AFTER and transport.most_in_flight <= WORKERS
    finally:
        release.set()
        await runtime.aclose()


async def test_rows_claimed_ahead_go_back_unsent_when_the_dispatcher_stops(gw, clock):
    runtime, transport = gw
    transport.gate = asyncio.Event()  # every send waits: the claimed rows stay claimed
    task = asyncio.create_task(runtime.dispatcher.run())
    for _ in range(200):
        await asyncio.sleep(0.01)
        if transport.in_flight == WORKERS and len(runtime.dispatcher._ready) > 0:
            break
    assert transport.in_flight == WORKERS and runtime.dispatcher._ready  # claimed ahead, waiting
    clock.advance(10)
    runtime.dispatcher.stop()
    # Given back at once, while the sends in flight still have the shutdown timeout to finish:
    # another worker may send them meanwhile. The sends in flight keep their rows for the wait.
    for _ in range(200):
        await asyncio.sleep(0.01)
        if Counter(n.status for n in await rows(runtime))["queued"] == BACKLOG - WORKERS:
            break
    stored = await rows(runtime)
    assert Counter(n.status for n in stored) == {"sending": WORKERS, "queued": BACKLOG - WORKERS}
    assert {n.next_attempt_at for n in stored if n.status == "sending"} == {clock() + timedelta(seconds=60)}
    transport.gate.set()  # the sends in flight finish within the shutdown timeout
    await task

    stored = await rows(runtime)
    statuses = Counter(n.status for n in stored)
    assert statuses == {"sent": WORKERS, "queued": BACKLOG - WORKERS}, statuses
    # Given back as they were: not counted as an attempt, due at once, no duplicate suspected.
    assert all(n.attempts == 0 and n.next_attempt_at == clock() and not n.duplicate_possible
               for n in stored if n.status == "queued")

    await runtime.dispatcher.run_until_idle()  # the next start sends them, once each
    assert set(transport.sent.values()) == {1} and len(transport.sent) == BACKLOG


async def test_a_row_claimed_ahead_whose_lease_is_half_gone_goes_back_and_is_claimed_afresh(gw, clock, monkeypatch):
    runtime, transport = gw
    given_back: list[int] = []
    unclaim = outbox.unclaim
    monkeypatch.setattr(outbox, "unclaim", lambda session, claimed, now: (
        given_back.extend(c.id for c in claimed), unclaim(session, claimed, now=now)))
    # The first turn claims the free slots; the second the rest, ahead. Then a send takes 31 s:
    # the rows claimed ahead have less than half their lease left when their turn comes.
    transport.on_send[WORKERS] = lambda: clock.advance(31)
    await runtime.dispatcher.run_until_idle()
    assert len(given_back) >= BACKLOG - 3 * WORKERS, given_back

    stored = await rows(runtime)
    assert all(n.status == "sent" for n in stored)
    assert set(transport.sent.values()) == {1} and len(transport.sent) == BACKLOG  # none sent twice
    assert all(n.attempts == 1 and not n.duplicate_possible for n in stored)  # a give-back is not an attempt


async def test_a_live_worker_keeps_its_claims_past_their_lease_and_sends_each_row_once(gw, clock):
    """Sends in flight outlast the lease, and one finishes: the next turn renews the leases of the
    others, gives back the rows claimed ahead, and only then claims for the free slot. Nothing is
    claimed twice, by this worker or another."""
    runtime, transport = gw
    dispatcher = runtime.dispatcher
    transport.hold_each = True  # each send hangs until let go: a relay taking its time

    async def until(condition) -> None:
        for _ in range(500):
            if condition():
                return
            await asyncio.sleep(0.01)
        assert condition()

    task = asyncio.create_task(dispatcher.run())
    try:
        await until(lambda: transport.in_flight == WORKERS and len(dispatcher._ready) == BACKLOG - WORKERS)
        first, *others = [row.id for _, row in dispatcher._sending.values()]

        clock.advance(61)  # every claim's lease (60 s) has ended
        transport.held[first].set()  # a slot frees: the turn that records it claims for it
        await until(lambda: transport.sent[first] == 1 and transport.in_flight == WORKERS)
        stored = {n.id: n for n in await rows(runtime)}
        renewed = clock() + timedelta(seconds=60)
        assert all(stored[i].next_attempt_at == renewed and stored[i].attempts == 1 for i in others)
        assert {row.id for _, row in dispatcher._sending.values()}.isdisjoint({first}) and not any(
            stored[row.id].duplicate_possible for _, row in dispatcher._sending.values())

        # Another process claiming now may take the rows claimed ahead, given back unsent (it
        # gives them back in turn here), never a send in flight.
        other = await runtime.db.transact(lambda session: outbox.claim(session, now=clock(), limit=BACKLOG, lease=60))
        held = {row.id for _, row in dispatcher._sending.values()}
        assert len(other) == BACKLOG - WORKERS - 1 and not {c.id for c in other} & held
        assert not any(c.duplicate_possible for c in other)  # given back as never sent
        await runtime.db.transact(lambda session: outbox.unclaim(session, other, now=clock()))

        transport.hold_each = False
        for event in transport.held.values():
            event.set()
        await until(lambda: sum(transport.sent.values()) == BACKLOG and not dispatcher._sending)
    finally:
        transport.hold_each = False
        for event in transport.held.values():
            event.set()
        dispatcher.stop()
        await task

    stored = await rows(runtime)
    assert set(transport.sent.values()) == {1} and len(transport.sent) == BACKLOG  # each once
    assert all(n.status == "sent" and n.attempts == 1 and not n.duplicate_possible for n in stored)


async def test_a_give_back_retried_after_another_claim_leaves_that_claim_alone(gw, clock):
    """A give-back uncounts the attempt, so the row's next claim has the same attempts again: a
    give-back retried (its commit's answer lost) must not undo that claim. The lease end tells them apart."""
    runtime, _ = gw
    (first,) = await runtime.db.transact(lambda session: outbox.claim(session, now=clock(), limit=1, lease=60))
    await runtime.db.transact(lambda session: outbox.unclaim(session, [first], now=clock()))
    clock.advance(1)
    (again,) = await runtime.db.transact(lambda session: outbox.claim(session, now=clock(), limit=1, lease=60))
    assert (again.id, again.attempts) == (first.id, first.attempts)  # the same fence but for the lease end
    await runtime.db.transact(lambda session: outbox.unclaim(session, [first], now=clock()))  # the retry
    stored = {n.id: n for n in await rows(runtime)}[first.id]
    assert (stored.status, stored.attempts, stored.next_attempt_at) == ("sending", 1, again.lease_end)
