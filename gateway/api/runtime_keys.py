"""Typed keys under which the web app holds what app.py built."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.config import Settings
from gateway.delivery.status_hooks import StatusHooks
from gateway.observability import Metrics
from gateway.protocols.inbound import InboundSMS
from gateway.protocols.service import ProtocolService
from gateway.rendering.templates import Templates
from gateway.store.database import Database

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
DB: web.AppKey[Database] = web.AppKey("db", Database)
SERVICE: web.AppKey[ProtocolService] = web.AppKey("service", ProtocolService)
TEMPLATES: web.AppKey[Templates] = web.AppKey("templates", Templates)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
INBOUND: web.AppKey[InboundSMS] = web.AppKey("inbound", InboundSMS)
STATUS_HOOKS: web.AppKey[StatusHooks] = web.AppKey("status_hooks", StatusHooks)
# The clock the runtime was given: handlers read "now" from it, never from the wall (tests fix it).
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
# Readiness checks: name -> async callable returning None when fine, or a reason.
READINESS: web.AppKey[dict[str, Any]] = web.AppKey("readiness", dict)
# channel -> transport, as built: /readyz and /metrics read the providers' breakers from them.
TRANSPORTS: web.AppKey[dict[str, Any]] = web.AppKey("transports", dict)
# The unsubscribe links' verifier (None when email.unsubscribe.secret is unset).
UNSUBSCRIBE: web.AppKey[Any] = web.AppKey("unsubscribe")
