"""The worker loop: claim due notifications, send them, record what happened.

Shaped like procrastinate's worker: a stop event, a wake-up event (set when something
is enqueued in this process, or a send finishes and frees a slot), a poll interval as
the fallback, at most `workers` sends in flight, and on stop a graceful wait for the
sends in flight, then cancellation. Outcomes are written in group commits: concurrent
sends that finish together share one transaction, which keeps SQLite's single writer
from capping the drain rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parseaddr

from gateway import outbox
from gateway.channels.base import DeliveryError, Message, Transport, UnknownOutcomeError
from gateway.config import DispatchSettings
from gateway.observability import Metrics, mask
from gateway.outbox import Claimed, Result
from gateway.retry import RetryPolicy
from gateway.status_hooks import StatusHooks
from gateway.store.database import Database

log = logging.getLogger("gateway.dispatch")

DB_RETRY_DELAY = 1.0  # seconds to wait after the database failed a claim before trying again


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def message_id_for(notification_id: int, sender: str) -> str:
    """Deterministic Message-ID: a resend of the same notification is recognisable as one."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "protocol-gateway.invalid"
    return f"<notification-{notification_id}@{domain}>"


class GroupCommit:
    """Collects results and writes all that are waiting in one transaction."""

    def __init__(self, db: Database, hooks: StatusHooks | None = None, wake: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.hooks = hooks
        self.wake = wake
        self._pending: list[tuple[Result, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def write(self, result: Result) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((result, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            queued = 0
            try:
                async with self.db.write() as session:
                    results = [r for r, _ in batch]
                    await outbox.record(session, results)
                    if self.hooks is not None:
                        queued = await self.hooks.after_send(session, results)
            except Exception as exc:  # the database is down: the leases will bring these rows back
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
                if queued:
                    self.wake()


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
        self._wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._inflight: dict[asyncio.Task[None], Claimed] = {}
        self.hooks = hooks
        self._recorder = GroupCommit(db, hooks, self.wake)
        # The no-receipt fallback check runs from this loop every `fallback_every` seconds.
        self.fallback_every = fallback_every
        self._fallback_checked: datetime | None = None

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
                free = self.settings.workers - len(self._inflight)
                claimed = await self._claim(free) if free > 0 else []
                for row in claimed:
                    self._start(row)
                if free > 0 and len(claimed) == free:
                    continue  # a full batch: more may be due at once
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self.settings.poll_interval)
        finally:
            await self._drain()
            log.info("dispatcher stopped", extra={"action": "dispatcher_stopped"})

    async def run_until_idle(self) -> None:
        """Send everything due now and wait for it (for the CLI, tests and benchmarks)."""
        while True:
            free = self.settings.workers - len(self._inflight)
            claimed = await self._claim(free) if free > 0 else []
            for row in claimed:
                self._start(row)
            if not self._inflight:
                return
            if not claimed or free == 0:
                await asyncio.wait(list(self._inflight), return_when=asyncio.FIRST_COMPLETED)

    async def _check_fallbacks(self) -> None:
        """SMS with no delivery receipt in time go by email (at most once per `fallback_every`)."""
        now = self.clock()
        if self.hooks is None or not self.fallback_every:
            return
        if self._fallback_checked is not None and (now - self._fallback_checked).total_seconds() < self.fallback_every:
            return
        self._fallback_checked = now
        try:
            async with self.db.write() as session:
                queued = await self.hooks.fallback.sweep(session, at=now)
        except Exception as exc:  # the next check will catch up: the query selects all overdue
            log.warning("fallback check failed", extra={"action": "fallback_check_failed", "error": type(exc).__name__})
            return
        if queued:
            self.wake()

    async def _claim(self, limit: int) -> list[Claimed]:
        try:
            async with self.db.write() as session:
                return await outbox.claim(session, now=self.clock(), limit=limit, lease=self.settings.lease)
        except Exception as exc:
            log.warning("claim failed", extra={"action": "outbox_claim_failed", "error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=DB_RETRY_DELAY)
            return []

    def _start(self, row: Claimed) -> None:
        task = asyncio.create_task(self._deliver(row), name=f"send-{row.id}")
        self._inflight[task] = row
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._wakeup.set()  # a slot is free

    def _message(self, row: Claimed) -> Message:
        if row.channel == "email":
            return Message(
                notification_id=row.id, channel="email", to=row.recipient, text=row.body_text,
                subject=row.subject, html=row.body_html, message_id=message_id_for(row.id, self.sender),
                reply_to=self.reply_to,
            )
        if row.channel == "sms":
            return Message(
                notification_id=row.id, channel="sms", to=row.recipient, text=row.body_text,
                status_callback=f"{self.public_url}/v1/webhooks/twilio/status?notification={row.id}",
            )
        return Message(notification_id=row.id, channel=row.channel, to=row.recipient, text=row.body_text)

    async def _deliver(self, row: Claimed) -> None:
        started = self.clock()
        try:
            receipt = await self.transports[row.channel].send(self._message(row))
        except DeliveryError as exc:
            now = self.clock()
            decision = self.policy.decide(exc, attempts=row.attempts, created_at=row.created_at, now=now)
            result = Result(row, started, now, decision.status, decision.next_attempt_at,
                            error=str(exc)[:1000], error_code=exc.code)
            if isinstance(exc, UnknownOutcomeError):
                self.metrics.provider_errors.labels(row.channel, exc.code or "timeout").inc()
            else:
                self.metrics.provider_errors.labels(row.channel, exc.code or type(exc).__name__).inc()
        except Exception as exc:  # a bug in a transport must not kill the loop; treat as unknown
            log.exception("transport crashed", extra={"action": "outbox_transport_error", "notification": row.id})
            now = self.clock()
            decision = self.policy.decide(UnknownOutcomeError(repr(exc)), attempts=row.attempts,
                                          created_at=row.created_at, now=now)
            result = Result(row, started, now, decision.status, decision.next_attempt_at, error=repr(exc)[:1000])
        else:
            now = self.clock()
            result = Result(row, started, now, receipt.status, provider_id=receipt.provider_id)
        try:
            await self._recorder.write(result)
        except Exception as exc:
            log.warning("outcome not recorded", extra={"action": "outbox_record_failed", "notification": row.id,
                                                       "error": type(exc).__name__})
            return
        self._observe(row, result)

    def _observe(self, row: Claimed, result: Result) -> None:
        self.metrics.notifications.labels(row.channel, row.template, result.status).inc()
        self.metrics.send_seconds.labels(row.channel).observe((result.finished_at - result.started_at).total_seconds())
        if result.status in ("sent", "delivered"):
            self.metrics.event_to_send_seconds.labels(row.channel).observe(
                (result.finished_at - row.created_at).total_seconds()
            )
        action = {"sent": "outbox_sent", "delivered": "outbox_sent", "queued": "outbox_retry"}.get(
            result.status, f"outbox_{result.status}"
        )
        log.info(
            "notification %s", result.status,
            extra={"action": action, "notification": row.id, "channel": row.channel, "to": mask(row.recipient),
                   "attempt": row.attempts, "error_code": result.error_code,
                   "next_attempt_at": result.next_attempt_at.isoformat() if result.next_attempt_at else None},
        )

    async def _drain(self) -> None:
        """Let sends in flight finish within the shutdown timeout, then cancel and release the rest."""
        if not self._inflight:
            return
        _, pending = await asyncio.wait(list(self._inflight), timeout=self.settings.shutdown_timeout)
        if not pending:
            return
        interrupted = [self._inflight[t] for t in pending if t in self._inflight]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with self.db.write() as session:
                await outbox.release(session, interrupted, now=self.clock())
        log.warning("sends interrupted at shutdown", extra={"action": "outbox_released", "count": len(interrupted)})
