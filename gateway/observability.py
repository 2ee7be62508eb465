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
import traceback
from datetime import datetime, timezone
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# A phone has at most 15 digits (E.164); protocol numbers are longer or sit in fields named
# for them, which are not scrubbed (SAFE_FIELDS), so operators can still search logs by number.
_PHONE = re.compile(r"(?<![\d])\+?\d[\d\s().-]{6,18}\d(?![\d])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
SAFE_FIELDS = frozenset({"action", "protocol", "number", "notification", "event_type", "logger", "level", "time"})


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_phone(value: str) -> str:
    digits = value.strip()
    if len(digits) <= 8:
        return "****"
    return f"{digits[:6]}****{digits[-4:]}"


def mask(value: str | None) -> str | None:
    """'maria@example.com' -> 'm***@example.com'; '+5511987654321' -> '+55119****4321'."""
    if value is None:
        return None
    return mask_email(value) if "@" in value else mask_phone(value)


def scrub(text: str) -> str:
    """Mask anything in free text that looks like an email address or a phone number."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(_mask_phone_match, text)


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


def configure_logging(level: str = "INFO") -> None:
    """JSON lines to stderr: stdout is kept for a command's result."""
    handler = logging.StreamHandler(sys.stderr)
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
        self.events = Counter("gateway_events", "Events accepted by type", ["type", "outcome"], registry=r)
        self.outbox_depth = Gauge("gateway_outbox_depth", "Notifications by status", ["status"], registry=r)
        self.outbox_oldest_due_seconds = Gauge(
            "gateway_outbox_oldest_due_seconds", "Age of the oldest due notification", registry=r
        )
