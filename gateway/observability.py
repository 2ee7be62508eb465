"""Metrics, and JSON-line logs with personal data masked.

Every log record carries a stable `action` (`outbox_sent`, `event_accepted`...) that
tests and dashboards rely on; the prose message may change. Fields that may hold
personal data are masked before they are written, and so is anything in a message
that looks like an email address or a phone number.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Internationalised addresses too (RFC 6531: `jösé@example.com`, `maria@müller.example`): `\w` is
# Unicode here, so a letter outside ASCII no longer lets an address through in clear.
_EMAIL = re.compile(r"([\w.%+-])[\w.%+'-]*@([\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,})")
# A phone has at most 15 digits (E.164); protocol numbers are longer or sit in fields named
# for them, which are not scrubbed (SAFE_FIELDS), so operators can still search logs by number.
# Not after "12:" or "." either: the seconds and fractions of a time ("15:22:08.294123") are no phone.
_PHONE = re.compile(r"(?<![\d.])(?<!\d:)\+?\d[\d\s().-]{6,18}\d(?![\d])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
BREAKER_VALUES = {"closed": 0.0, "half_open": 0.5, "open": 1.0}
SAFE_FIELDS = frozenset({"action", "protocol", "number", "notification", "event_type", "logger", "level", "time"})


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_phone(value: str) -> str:
    """'+5511987654321' -> '+55119****4321': at least four digits hidden, whatever the length
    ('11987654321' -> '119****4321')."""
    digits = value.strip()
    if len(digits) <= 8:
        return "****"
    return f"{digits[:min(6, len(digits) - 8)]}****{digits[-4:]}"


def mask(value: str | None) -> str | None:
    """'maria@example.com' -> 'm***@example.com'; '+5511987654321' -> '+55119****4321'."""
    if value is None:
        return None
    return mask_email(value) if "@" in value else mask_phone(value)


def scrub(text: str) -> str:
    """Mask anything in free text that looks like an email address or a phone number."""
    if text.isascii() and "@" not in text and len(text) - len(text.translate(_NO_DIGITS)) < 8:
        # Neither pattern can change it: an address needs its "@", a phone 8 digits at least. Most of
        # a log line's texts ("notification sent", "sms", a masked phone): ~0.3 µs each, against
        # 1.4-4 for the two patterns. ASCII only, as `\d` matches other scripts' digits too.
        return text
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(_mask_phone_match, text)


_NO_DIGITS = str.maketrans("", "", "0123456789")


def _mask_phone_match(match: re.Match[str]) -> str:
    if _DATE.search(match.group(0)):
        return match.group(0)
    digits = re.sub(r"[\s().-]", "", match.group(0))
    return mask_phone(digits) if 8 <= len(digits.lstrip("+")) <= 15 else match.group(0)


_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = scrub(value) if isinstance(value, str) and key not in SAFE_FIELDS else value
        if record.exc_info:
            entry["exception"] = scrub("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(entry, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of writing, not the one at set-up: a
    command run in-process (tests, the demo) may have swapped or closed the earlier one."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # type: ignore[no-untyped-def]
        pass


def configure_logging(level: str = "INFO") -> None:
    """JSON lines to stderr: stdout is kept for a command's result."""
    handler = _StderrHandler()
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "sqlalchemy.engine", "apscheduler", "aiosqlite", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Metrics:
    """The gateway's Prometheus metrics, in a registry of its own (one per runtime, so tests stay apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}  # see child()
        self.notifications = Counter(
            "gateway_notifications", "Send outcomes by channel, template and status",
            ["channel", "template", "status"], registry=r,
        )
        self.send_seconds = Histogram(
            "gateway_send_seconds", "Time of one provider call", ["channel"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.event_to_send_seconds = Histogram(
            "gateway_event_to_send_seconds", "From enqueue to the provider's acceptance", ["channel"], registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 3600),
        )
        self.provider_errors = Counter(
            "gateway_provider_errors", "Provider errors by channel and code", ["channel", "code"], registry=r
        )
        # Per named provider (relay, account): the failover's view, codes readable (smtp_550, timeout).
        self.provider_sends = Counter(
            "gateway_provider_sends", "Sends per provider by outcome (sent, refused, failed_over, unknown)",
            ["channel", "provider", "outcome"], registry=r,
        )
        self.provider_failures = Counter(
            "gateway_provider_failures", "Errors per provider by readable code (smtp_550, twilio_21211, timeout...)",
            ["channel", "provider", "code"], registry=r,
        )
        self.provider_breaker = Gauge(
            "gateway_provider_breaker_open", "A provider's circuit breaker: 0 closed, 0.5 half-open, 1 open",
            ["channel", "provider"], registry=r,
        )
        self.events = Counter("gateway_events", "Events accepted by type", ["type", "outcome"], registry=r)
        self.outbox_depth = Gauge("gateway_outbox_depth", "Notifications by status", ["status"], registry=r)
        self.outbox_oldest_due_seconds = Gauge(
            "gateway_outbox_oldest_due_seconds",
            "How long the oldest due notification has waited past its time (0 when none is due)", registry=r
        )
        self.outbox_dead = Gauge(
            "gateway_outbox_dead", "Notifications that gave up (dead), waiting for operations", registry=r
        )
        # Sweeps (deadline reminders, retention...) report each run through observe_sweep().
        self.sweep_runs = Counter(
            "gateway_sweep_runs", "Sweep runs by sweep and outcome (ok, error)", ["sweep", "outcome"], registry=r
        )
        self.sweep_seconds = Histogram(
            "gateway_sweep_seconds", "Duration of one sweep run", ["sweep"], registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300),
        )
        self.sweep_items = Counter(
            "gateway_sweep_items", "What sweep runs did (notifications queued, records anonymized...)",
            ["sweep"], registry=r,
        )
        self.sweep_last_success = Gauge(
            "gateway_sweep_last_success_timestamp_seconds", "When each sweep last finished well (Unix time)",
            ["sweep"], registry=r,
        )
        # The consumer's page: pages answered (shown, or not found: a wrong, expired or revoked
        # link) and what consumers asked for from it.
        self.consumer_pages = Counter(
            "gateway_consumer_pages", "Consumer pages answered by outcome (shown, not_found)", ["outcome"], registry=r
        )
        self.consumer_page_requests = Counter(
            "gateway_consumer_page_requests", "History requests made from the consumer's page by channel and "
            "outcome (queued, limited)", ["channel", "outcome"], registry=r,
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered. prometheus_client checks the values and takes a lock at
        every call (~1 µs), and each message sent asks it four times, each event once. For labels
        from closed sets only (channels, templates, statuses, providers, event types): a child is
        kept for good, as the metric itself keeps it once asked."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def observe_sweep(self, sweep: str, *, seconds: float, ok: bool = True, items: int = 0,
                      finished_at: datetime | None = None) -> None:
        """The hook a sweep calls after each run: its duration, outcome and how much it did."""
        self.sweep_runs.labels(sweep, "ok" if ok else "error").inc()
        self.sweep_seconds.labels(sweep).observe(seconds)
        if items:
            self.sweep_items.labels(sweep).inc(items)
        if ok:
            self.sweep_last_success.labels(sweep).set((finished_at or datetime.now(timezone.utc)).timestamp())

    @contextmanager
    def time_sweep(self, sweep: str) -> Iterator[SweepRun]:
        """`with metrics.time_sweep("deadline_reminders") as run: run.items = queued`; an
        exception counts the run as an error and goes on up."""
        run = SweepRun()
        started = time.perf_counter()
        try:
            yield run
        except BaseException:
            self.observe_sweep(sweep, seconds=time.perf_counter() - started, ok=False)
            raise
        self.observe_sweep(sweep, seconds=time.perf_counter() - started, items=run.items)

    def set_breakers(self, states: Mapping[str, Mapping[str, str]]) -> None:
        """channel -> provider -> breaker state, as a scrape finds them."""
        for channel, providers in states.items():
            for provider, state in providers.items():
                self.provider_breaker.labels(channel, provider).set(BREAKER_VALUES.get(state, 1.0))

    def set_outbox(self, depth: Mapping[str, int], *, oldest_due_seconds: float, dead: int) -> None:
        """The outbox as a scrape finds it: every status is set, zero included, so none goes stale."""
        for status, count in depth.items():
            self.outbox_depth.labels(status).set(count)
        self.outbox_oldest_due_seconds.set(oldest_due_seconds)
        self.outbox_dead.set(dead)


@dataclass
class SweepRun:
    items: int = 0
