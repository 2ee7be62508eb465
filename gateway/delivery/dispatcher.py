"""The worker loop: claim due notifications, send them, record what happened.

Shaped like procrastinate's worker: a stop event, a wake-up event (set when something
is enqueued, or a send finishes), a poll interval as the fallback, at most `workers`
sends in flight, and on stop a graceful wait for the sends in flight, then cancellation.

Sends never write. Each turn of the loop is one transaction that records every send that
finished since the last turn and claims rows for the slots that freed: on SQLite's single
writer, two transactions per message (claim, record) would queue behind each other and cap
the drain rate. A row stays leased until its outcome is committed, so a crash between the
send and the record leaves it to be sent again when the lease expires.

Without a backlog (the last claim found fewer due rows than it asked for), the loop waits
TURN_GATHER after a wake-up before turning, so that the events and sends of those few
milliseconds share one turn: under a steady stream a turn per event and another per send
would cost the database writer more than the events themselves (profiled: ~1 ms of CPU per
turn on SQLite, most of it writing pages at commit). With a backlog, turns follow at once,
and each claims up to CLAIM_AHEAD rows beyond the free slots: a finished send starts the
next claimed row at once, without a turn, and the loop turns (recording what finished,
claiming more) only when REFILL_AT claimed rows are left to start. Draining a backlog with a
turn per slot that freed cost more than the sends (profiled on the SMS drain: a turn for
every 4.5 messages, the database's CPU near the Twilio SDK's). A row claimed ahead is ours
under the lease like one being sent; one whose lease is half gone before its turn comes is
given back unsent, as is every row claimed ahead at shutdown. After a SIGKILL the claimed
rows come back when their lease ends, marked "duplicate possible": the sends in flight and
the outcomes not yet written (RECORD_AFTER at most) may have left; the rows claimed ahead did
not, but nothing recorded says which were which.

A live worker keeps its claims. Each turn, before it claims, records what finished, gives
back the rows claimed ahead whose lease is half gone, and renews the lease of each send in
flight claimed more than a third of a lease ago (RENEW_AFTER); the loop turns at least that
often, and at shutdown every send in flight is renewed for the wait. So this worker never
claims its own row again, and another takes one over only if this one stalled (its loop, or
the database) for two thirds of a lease. Before, a send slower than its lease (a relay taking
its time, a machine starved of CPU) was claimed again and went twice while its first copy was
still on its way: seen with a one-second lease in the SIGTERM test under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import cache

from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.config import DispatchSettings
from gateway.delivery import outbox
from gateway.delivery.channels.base import Message, Transport
from gateway.delivery.error_codes import readable_code
from gateway.delivery.errors import DeliveryError, UnknownOutcomeError
from gateway.delivery.outbox import Claimed, Result
from gateway.delivery.retry import RetryPolicy
from gateway.delivery.status_hooks import StatusHooks
from gateway.delivery.unsubscribe_links import UnsubscribeLinks
from gateway.delivery.verp import ReturnPaths
from gateway.observability import Metrics, mask
from gateway.store.database import Database
from gateway.store.installation import installation_key

TURN_GATHER = 0.01  # seconds: added latency at most, per turn, when there is no backlog
CLAIM_AHEAD = 128  # rows claimed beyond the free slots when there is a backlog
REFILL_AT = CLAIM_AHEAD // 4  # with this many claimed rows left to start, a turn claims more
# A turn is wanted once RECORD_AT outcomes wait to be written; sends go on starting meanwhile, until
# RECORD_AFTER wait (besides the sends in flight). With the two equal, as before, every turn found the
# sends stopped: they waited for its commit, ~3.5 ms on SQLite's writer and ~6-8 ms on PostgreSQL
# (round trips each waiting for a busy loop), a third to two fifths of an SMS drain's time. And
# most of a turn's CPU on SQLite's writer does not grow with its outcomes (2.1-2.3 ms at ~34 of
# them, 2.7-2.9 at ~60, a fifth of it writing the WAL's pages at commit): 64 a turn rather than
# 32 took ~8 µs off an SMS's CPU on SQLite (bench/README.md, fifteenth round). A SIGKILL can make
# the next claim send again what was in flight or waiting: at most `workers` + RECORD_AFTER
# messages, each marked "duplicate possible".
RECORD_AFTER = 128
RECORD_AT = RECORD_AFTER // 2
RENEW_AFTER = 1 / 3  # of the lease: a send in flight this long has its lease renewed at the next turn
GIVE_BACK_AFTER = 1 / 2  # of the lease: a row claimed ahead and not started this long goes back unsent

log = logging.getLogger(__name__)

DB_RETRY_DELAY = 1.0  # seconds to wait after the database failed a turn before trying again
LOG_LEVELS = {"queued": logging.WARNING, "unknown": logging.WARNING, "failed": logging.ERROR, "dead": logging.ERROR,
              "undelivered": logging.ERROR}


def message_id_for(notification_id: int, sender: str, installation: str) -> str:
    """Deterministic per notification, so a resend of it is recognisable as one, and unique across
    installations (the database's own key): mailbox providers drop a message whose id they saw."""
    return f"<notification-{notification_id}.{installation}@{_message_id_domain(sender)}>"


@cache
def _message_id_domain(sender: str) -> str:
    # The one sender of a running gateway, parsed once: `parseaddr` is pure Python, ~30 µs an
    # email in a profile of the end-to-end bench.
    return parseaddr(sender)[1].rpartition("@")[2] or "protocol-gateway.invalid"


class Dispatcher:
    def __init__(
        self,
        db: Database,
        transports: dict[str, Transport],
        settings: DispatchSettings,
        *,
        sender: str,
        reply_to: str | None,
        public_url: str,
        metrics: Metrics,
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        hooks: StatusHooks | None = None,
        fallback_every: float | None = None,
        return_paths: ReturnPaths | None = None,
        unsubscribe: UnsubscribeLinks | None = None,
    ) -> None:
        self.db = db
        self.transports = transports
        self.settings = settings
        self.sender = sender
        self.reply_to = reply_to
        self.public_url = public_url
        self.metrics = metrics
        self.policy = policy or RetryPolicy(
            base=settings.retry_base,
            cap=settings.retry_max,
            give_up_after=settings.give_up_after,
            unknown_retry_after=settings.unknown_retry_after,
        )
        self.clock = clock
        self.hooks = hooks
        self.return_paths = return_paths  # each email's own envelope sender, when bounces are set up
        self.unsubscribe = unsubscribe  # List-Unsubscribe on proactive emails, when set up
        self._wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._sending: dict[asyncio.Task[Result], tuple[datetime, Claimed]] = {}  # leased since, row
        self._finished: list[Result] = []  # sent, not yet recorded
        self._recording = 0  # results in the turn under way, not yet committed
        self._ready: deque[tuple[datetime, Claimed]] = deque()  # claimed (when), not yet started
        self._unclaim: list[Claimed] = []  # claimed ahead and not sent: given back at the next turn
        self._backlog = False  # the last claim found as many due rows as it asked for
        # The no-receipt fallback check runs from this loop every `fallback_every` seconds.
        self.fallback_every = fallback_every
        self._fallback_checked: datetime | None = None
        self._installation: str | None = None  # read from the database at the first turn

    def wake(self) -> None:
        """Something was enqueued: look for due rows now rather than at the next poll."""
        self._wakeup.set()

    def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()

    async def run(self) -> None:
        log.info("dispatcher started", extra={"action": "dispatcher_started", "workers": self.settings.workers})
        try:
            while not self._stop.is_set():
                await self._check_fallbacks()
                self._wakeup.clear()
                await self._turn()
                with contextlib.suppress(TimeoutError):  # often enough to renew the leases in time
                    await asyncio.wait_for(self._wakeup.wait(), timeout=min(
                        self.settings.poll_interval, self.settings.lease * RENEW_AFTER))
                if not self._backlog:
                    with contextlib.suppress(TimeoutError):  # gather what else arrives meanwhile
                        await asyncio.wait_for(self._stop.wait(), timeout=TURN_GATHER)
        finally:
            await self._drain()
            log.info("dispatcher stopped", extra={"action": "dispatcher_stopped"})

    async def run_until_idle(self) -> None:
        """Send everything due now and record it (for the CLI, tests and benchmarks).

        Driven by its caller, it runs whatever an earlier `stop()` said: that ended `run()`."""
        self._stop.clear()
        while True:
            self._wakeup.clear()
            claimed = await self._turn()
            if not (claimed or self._sending or self._finished or self._ready or self._unclaim):
                return
            if self._sending:
                with contextlib.suppress(TimeoutError):  # a turn at least this often renews the leases
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self.settings.lease * RENEW_AFTER)

    async def _turn(self, *, claim: bool = True, hold: float | None = None) -> list[Claimed]:
        """One transaction: record what finished, follow it up, give back what was claimed ahead
        and not sent, renew the leases of slow sends, claim for the free slots (and ahead of them,
        with a backlog). Everything this worker holds is settled before it claims: it never
        claims a row of its own again. `hold`: renew every send in flight, for that long at least."""
        now = self.clock()
        self._give_back_stale(now)
        results, self._finished = self._finished, []
        unclaim, self._unclaim = self._unclaim, []
        lease = self.settings.lease if hold is None else max(hold, self.settings.lease)
        renew = {task: row for task, (since, row) in self._sending.items()
                 if hold is not None or self._lease_past(since, now, RENEW_AFTER)}
        self._recording = len(results)
        room = 0
        if claim:
            wanted = self.settings.workers + (CLAIM_AHEAD if self._backlog else 0)
            room = wanted - len(self._sending) - len(self._ready)
        if not results and not unclaim and not renew and room <= 0:
            return []

        def turn(session: Session) -> tuple[int, list[Claimed]]:
            # Read in the turn's transaction, so that a database that is down fails the turn
            # like any other (logged, retried) rather than the dispatcher.
            if self._installation is None:
                self._installation = installation_key(session)
            queued = 0
            if results:
                outbox.record(session, results)
                if self.hooks is not None:
                    queued = self.hooks.after_send(session, results)
            if unclaim:
                outbox.unclaim(session, unclaim, now=now)
            if renew:
                outbox.renew(session, list(renew.values()), lease_end=now + timedelta(seconds=lease))
            claimed = outbox.claim(session, now=now, limit=room, lease=self.settings.lease) if room > 0 else []
            return queued, claimed

        try:
            queued, claimed = await self.db.transact(turn)
        except Exception as exc:  # the database is away: keep the outcomes, try again shortly
            self._finished = results + self._finished
            self._unclaim = unclaim + self._unclaim
            log.warning("dispatcher turn failed", extra={"action": "outbox_turn_failed", "error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=DB_RETRY_DELAY)
            return []
        finally:
            self._recording = 0
        for task, row in renew.items():
            if task in self._sending:  # (still in flight)
                self._sending[task] = (now, row)
        for result in results:
            self._observe(result)
        if room > 0:
            self._backlog = len(claimed) == room
        self._ready.extend((now, row) for row in claimed)
        self._start()
        if queued:
            self._wakeup.set()
        return claimed

    def _unrecorded(self) -> int:
        """Messages that may have left with nothing committed to say so: a crash sends them again."""
        return len(self._sending) + len(self._finished) + self._recording

    def _lease_past(self, since: datetime, now: datetime, share: float) -> bool:
        """Whether more than `share` of a lease taken (or renewed) at `since` is gone by `now`."""
        return (now - since).total_seconds() > self.settings.lease * share

    def _give_back_stale(self, now: datetime) -> None:
        """Rows claimed ahead whose lease is half gone go back (at the turn, before its claim)."""
        while self._ready and self._lease_past(self._ready[0][0], now, GIVE_BACK_AFTER):
            self._unclaim.append(self._ready.popleft()[1])

    def _start(self) -> None:
        """Start claimed rows in the free slots; one whose lease is half gone goes back unsent.

        At most `workers` in flight, and at most `workers` + RECORD_AFTER sent or in flight without
        a record: what a SIGKILL can make the next claim send twice."""
        if not self._ready or self._stop.is_set():  # stopping: what is claimed and not started goes back
            return
        now = self.clock()
        workers = self.settings.workers
        while self._ready and len(self._sending) < workers and self._unrecorded() < workers + RECORD_AFTER:
            claimed_at, row = self._ready.popleft()
            if self._lease_past(claimed_at, now, GIVE_BACK_AFTER):
                self._unclaim.append(row)
                continue
            task = asyncio.create_task(self._deliver(row), name=f"send-{row.id}")
            self._sending[task] = (claimed_at, row)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[Result]) -> None:
        self._sending.pop(task, None)
        if not task.cancelled():
            self._finished.append(task.result())
        if self._stop.is_set():
            self._wakeup.set()
            return
        self._start()
        # A turn records what finished and claims more: wanted once RECORD_AT outcomes wait, before
        # RECORD_AFTER of them would hold the slots of the sends that could follow, or the claimed
        # rows run low.
        if len(self._finished) >= RECORD_AT or len(self._ready) <= REFILL_AT:
            self._wakeup.set()

    async def _check_fallbacks(self) -> None:
        """Messages with no delivery receipt in time take their chain's next step (at most once per `fallback_every`)."""
        now = self.clock()
        if self.hooks is None or not self.fallback_every:
            return
        if self._fallback_checked is not None and (now - self._fallback_checked).total_seconds() < self.fallback_every:
            return
        self._fallback_checked = now
        try:
            queued = await self.db.transact(lambda session: self.hooks.chains.sweep(session, at=now))
        except Exception as exc:  # the next check will catch up: the query selects all overdue
            log.warning("fallback check failed", extra={"action": "fallback_check_failed", "error": type(exc).__name__})
            return
        if queued:
            self._wakeup.set()

    def _message(self, row: Claimed) -> Message:
        if row.channel == "email":
            return Message(
                notification_id=row.id, channel="email", to=row.recipient, text=row.body_text,
                subject=row.subject, html=row.body_html, message_id=message_id_for(row.id, self.sender, self._installation or ""),
                reply_to=self.reply_to,
                return_path=self.return_paths.for_notification(row.id) if self.return_paths else None,
                headers=self.unsubscribe.headers(row.id, row.template) if self.unsubscribe else {},
            )
        # Twilio posts each SMS's and WhatsApp message's receipts here, naming the notification.
        receipts = f"{self.public_url}/v1/webhooks/twilio/status?notification={row.id}"
        if row.channel == "sms":
            return Message(notification_id=row.id, channel="sms", to=row.recipient, text=row.body_text,
                           status_callback=receipts)
        if row.channel == "whatsapp":
            content = row.whatsapp_content or {}
            return Message(
                notification_id=row.id, channel="whatsapp", to=row.recipient, text=row.body_text,
                status_callback=receipts, window_open=row.window_open, content_sid=content.get("content_sid"),
                content_variables=content.get("variables"),
            )
        return Message(notification_id=row.id, channel=row.channel, to=row.recipient, text=row.body_text)

    async def _deliver(self, row: Claimed) -> Result:
        """Send one claimed row and say what came of it; never raises, never writes."""
        started = self.clock()
        try:
            receipt = await self.transports[row.channel].send(self._message(row))
        except DeliveryError as exc:
            now = self.clock()
            decision = self.policy.decide(exc, attempts=row.attempts, created_at=row.give_up_from, now=now)
            self.metrics.provider_errors.labels(row.channel, exc.code or readable_code(exc, row.channel)).inc()
            return Result(row, started, now, decision.status, decision.next_attempt_at,
                          error=str(exc)[:1000], error_code=exc.code, provider=exc.provider, tried=tuple(exc.tried))
        except Exception as exc:  # a bug in a transport must not kill the loop; treat as unknown
            log.exception("transport crashed", extra={"action": "outbox_transport_error", "notification": row.id})
            now = self.clock()
            decision = self.policy.decide(UnknownOutcomeError(repr(exc)), attempts=row.attempts,
                                          created_at=row.give_up_from, now=now)
            return Result(row, started, now, decision.status, decision.next_attempt_at, error=repr(exc)[:1000])
        return Result(row, started, self.clock(), receipt.status, provider_id=receipt.provider_id,
                      provider=receipt.provider, tried=receipt.tried)

    def _observe(self, result: Result) -> None:
        row = result.claimed
        m = self.metrics
        m.child(m.notifications, row.channel, row.template, result.status).inc()
        m.child(m.send_seconds, row.channel).observe((result.finished_at - result.started_at).total_seconds())
        if result.status in ("sent", "delivered"):
            m.child(m.event_to_send_seconds, row.channel).observe((result.finished_at - row.created_at).total_seconds())
        action = {"sent": "outbox_sent", "delivered": "outbox_sent", "queued": "outbox_retry"}.get(
            result.status, f"outbox_{result.status}"
        )
        # A retry or an unknown outcome is a warning and a refusal for good an error, each with
        # the provider's words (addresses and phones in them masked by the log formatter):
        # a relay refusing every message for a day must show in the log, not hide at info.
        level = LOG_LEVELS.get(result.status, logging.INFO)
        log.log(
            level, "notification %s", result.status,
            extra={"action": action, "notification": row.id, "channel": row.channel, "to": mask(row.recipient),
                   "attempt": row.attempts, "error_code": result.error_code, "error": result.error,
                   "next_attempt_at": result.next_attempt_at.isoformat() if result.next_attempt_at else None},
        )

    async def _drain(self) -> None:
        """Give back what was claimed ahead, let sends in flight finish within the shutdown timeout
        and record them; release the rest."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout
        self._unclaim.extend(row for _, row in self._ready)
        self._ready.clear()
        if self._sending:
            # Now rather than after the wait: other workers may send the rows given back meanwhile,
            # and no send in flight has its lease run out while it finishes.
            await self._turn(claim=False, hold=self.settings.shutdown_timeout)
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=max(0.0, deadline - loop.time()))
        interrupted = [row for _, row in self._sending.values()]
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
        if self._finished or self._unclaim:
            await self._turn(claim=False)
        if interrupted:
            with contextlib.suppress(Exception):
                await self.db.transact(lambda session: outbox.release(session, interrupted, now=self.clock()))
            log.warning("sends interrupted at shutdown", extra={"action": "outbox_released", "count": len(interrupted)})
