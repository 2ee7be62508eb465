"""Builds the runtime from the settings: the one place where parts are made and wired.

Everything else receives its dependencies through its constructor. Tests build a
runtime with their own transports (a recording double, a real SMTP sink) passed in.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.api import keys
from gateway.api.routes import build_web_app
from gateway.api.runtime_keys import (CLOCK, DB, INBOUND, METRICS, READINESS, SERVICE, SETTINGS, STATUS_HOOKS, TEMPLATES,
                                      TRANSPORTS, UNSUBSCRIBE)
from gateway.web.console import add_console
from gateway.clock import utcnow
from gateway.config import Settings
from gateway.daemon.heap import freeze_start_up
from gateway.daemon.http_timeouts import body_deadline
from gateway.daemon.listen import CannotListen, bind, bind_bounces, bound_port
from gateway.daemon.private_files import keep_private
from gateway.daemon.readiness import readiness_checks
from gateway.delivery.chains import Chains
from gateway.delivery.channels.base import Transport
from gateway.delivery.channels.factory import build_whatsapp_transport
from gateway.delivery.channels.webhook import WebhookTransport
from gateway.delivery.dispatcher import Dispatcher
from gateway.delivery.probes import TransportProbes
from gateway.delivery.providers import build_transports
from gateway.delivery.status_hooks import StatusHooks
from gateway.delivery.unsubscribe_links import UnsubscribeLinks
from gateway.delivery.verp import ReturnPaths
from gateway.observability import Metrics
from gateway.protocols.page_links import PageLinks
from gateway.protocols.inbound import InboundSMS
from gateway.protocols.messages import MessageBuilder
from gateway.protocols.numbering import NumberFormat
from gateway.protocols.service import ProtocolService
from gateway.rendering.templates import Templates, warm_templates
from gateway.store.checkpoint import run_checkpoints
from gateway.store.database import Database
from gateway.store.listen import OutboxListener
from gateway.store.migrate import migrate
from gateway.store.preflight import require_reachable
from gateway.sweeps.runner import SweepRunner
from gateway.sweeps.scheduler import SweepScheduler
from gateway.sweeps.schedules import Schedule, load_schedules

if TYPE_CHECKING:
    from gateway.delivery.bounce_listener import BounceListener

log = logging.getLogger("gateway.app")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    templates: Templates
    transports: dict[str, Transport]
    metrics: Metrics
    dispatcher: Dispatcher
    service: ProtocolService
    messages: MessageBuilder
    hooks: StatusHooks
    inbound: InboundSMS
    probes: TransportProbes
    sweeps: SweepRunner | None = None
    scheduler: SweepScheduler | None = None
    bounces: BounceListener | None = None  # the DSN listener, when email.bounces.domain is set
    clock: Callable[[], datetime] = utcnow  # the one source of "now" for every part (tests pass a fixed one)

    async def aclose(self) -> None:
        await self.probes.aclose()
        for transport in self.transports.values():
            try:
                await transport.aclose()
            except Exception:  # closing is best effort; the process is ending
                log.warning("transport close failed", extra={"action": "transport_close_failed"})
        await self.db.dispose()


def build_runtime(
    settings: Settings,
    *,
    transports: dict[str, Transport] | None = None,
    db: Database | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Runtime:
    db = db or Database(settings.database_url, sqlite_synchronous=settings.database.sqlite_synchronous,
                        pool_size=max(10, settings.dispatch.workers + 2),
                        connect_timeout=settings.database.connect_timeout)
    templates = Templates(settings.templates_dir, settings.gateway.default_locale,
                          sms_transliterate=settings.sms.transliterate, auto_reload=settings.templates.reload)
    metrics = Metrics()
    if transports is None:
        transports = build_transports(settings, metrics, clock)
    elif "whatsapp" not in transports:  # a caller that brings its own email and SMS: WhatsApp as configured
        transports = {**transports, "whatsapp": build_whatsapp_transport(settings)}
    if settings.webhooks.url and "webhook" not in transports:
        assert settings.webhooks.secret is not None  # the settings refuse a url without one
        transports["webhook"] = WebhookTransport(settings.webhooks.secret.get_secret_value(), settings.webhooks.timeout)
    pages = page_links_for(settings)
    messages = MessageBuilder(templates, settings, pages)
    receipts = {channel: getattr(transports[channel], "sends_receipts", False) for channel in ("sms", "whatsapp")}
    hooks = StatusHooks(Chains(messages, settings.fallback, receipts=receipts), settings.webhooks)
    # A bad schedule file stops start-up here, naming the file and the key (a ConfigError).
    schedules = load_schedules(settings.schedules_dir, templates=templates, default_timezone=settings.gateway.timezone,
                               default_locale=settings.gateway.default_locale)
    return_paths = return_paths_for(settings)
    unsubscribe = unsubscribe_links_for(settings, schedules)
    dispatcher = Dispatcher(
        db, transports, settings.dispatch,
        sender=settings.email.sender, reply_to=settings.email.reply_to, public_url=settings.http.public_url,
        metrics=metrics, clock=clock, hooks=hooks,
        fallback_every=settings.fallback.check_interval if settings.fallback.enabled else None,
        return_paths=return_paths, unsubscribe=unsubscribe,
    )
    bounces = None
    if return_paths and settings.email.bounces.listen:
        from gateway.delivery.bounce_listener import BounceListener  # aiosmtpd only where bounces are set up

        bounces = BounceListener(db, hooks, return_paths, settings.email.bounces, clock=clock, wake=dispatcher.wake)
    numbers = NumberFormat(settings.gateway.number_format, settings.gateway.timezone, settings.gateway.check_digit)
    service = ProtocolService(db, messages, numbers, settings, on_enqueued=dispatcher.wake)
    inbound = InboundSMS(db, messages, settings, wake=dispatcher.wake)
    sweeps = SweepRunner(db, templates, settings, schedules, wake=dispatcher.wake, clock=clock, pages=pages)
    scheduler = SweepScheduler(sweeps, schedules, run_at_start=settings.sweeps.run_at_start, clock=clock)
    probes = TransportProbes(transports, every=settings.dispatch.probe_interval)
    return Runtime(settings, db, templates, transports, metrics, dispatcher, service, messages, hooks, inbound,
                   probes, sweeps=sweeps, scheduler=scheduler, bounces=bounces, clock=clock)


def unsubscribe_links_for(settings: Settings, schedules: list[Schedule]) -> UnsubscribeLinks | None:
    """Links on the templates sweeps send to consumers unasked (reminders), when a secret is set."""
    secret = settings.email.unsubscribe.secret
    if secret is None:
        return None
    proactive = {s.template for s in schedules if s.audience == "consumer" and s.template}
    return UnsubscribeLinks(settings.http.public_url, secret.get_secret_value(), proactive)


def page_links_for(settings: Settings) -> PageLinks | None:
    """Links to the consumer's page (consumer_page.enabled), keyed by its secret."""
    page = settings.consumer_page
    if not page.enabled:
        return None
    return PageLinks(settings.http.public_url,
                     secret=page.secret.get_secret_value() if page.secret else None,
                     secret_file=settings.path(page.secret_file))


def return_paths_for(settings: Settings) -> ReturnPaths | None:
    bounces = settings.email.bounces
    if not bounces.domain or bounces.secret is None:
        return None
    return ReturnPaths(bounces.domain, bounces.secret.get_secret_value(), bounces.local_part)


async def bootstrap_admin_key(runtime: Runtime) -> None:
    """First start with no key: create an admin key and write it to the configured file (mode 600)."""
    target = runtime.settings.auth.bootstrap_key_file
    if target is None or await keys.count_keys(runtime.db) > 0:
        return
    path = runtime.settings.path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = await keys.create_key(runtime.db, "admin", ["admin"], now=runtime.clock())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    os.chmod(path, 0o600)  # also when the file existed with looser bits
    log.info("admin key created", extra={"action": "admin_key_created", "path": str(path)})


async def prepare(runtime: Runtime) -> None:
    """Reach the database, migrate, create the first key: what must be true before serving.
    An unreachable database is one line naming database.url (DatabaseNotReady)."""
    await require_reachable(runtime.db, runtime.settings.origin("database.url"))
    await migrate(runtime.db)
    await bootstrap_admin_key(runtime)


def web_app(runtime: Runtime, *, run_dispatcher: bool = True) -> web.Application:
    """The HTTP side; with `run_dispatcher` (the daemon) it also runs the dispatcher loop.
    Tests that drive delivery step by step leave it off and call run_until_idle()."""
    app = build_web_app(runtime.settings.http.max_body)
    app[SETTINGS] = runtime.settings
    app[DB] = runtime.db
    app[SERVICE] = runtime.service
    app[TEMPLATES] = runtime.templates
    app[METRICS] = runtime.metrics
    app[INBOUND] = runtime.inbound
    app[STATUS_HOOKS] = runtime.hooks
    app[CLOCK] = runtime.clock
    app[TRANSPORTS] = runtime.transports
    app[UNSUBSCRIBE] = runtime.dispatcher.unsubscribe
    # Innermost: the body is read within http.read_timeout once the key and scope are checked.
    app.middlewares.append(body_deadline(runtime.settings.http.read_timeout))
    if runtime.settings.console.enabled:
        add_console(app, list(runtime.sweeps.schedules.values()) if runtime.sweeps else [])
    dispatcher_task: dict[str, asyncio.Task[None]] = {}
    app[READINESS] = readiness_checks(runtime, dispatcher_task)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        listener_stop = asyncio.Event()
        if runtime.db.is_sqlite:
            dispatcher_task["checkpoints"] = asyncio.create_task(
                run_checkpoints(runtime.db, listener_stop), name="checkpoints")
        if run_dispatcher:
            dispatcher_task["task"] = asyncio.create_task(runtime.dispatcher.run(), name="dispatcher")
            if not runtime.db.is_sqlite:  # other processes' enqueues wake this one at once
                listener = OutboxListener(runtime.db.postgres or runtime.db.url, runtime.dispatcher.wake)
                dispatcher_task["listener"] = asyncio.create_task(listener.run(listener_stop), name="listener")
            if runtime.scheduler and runtime.settings.sweeps.enabled:
                await runtime.scheduler.start()
            if runtime.bounces is not None:
                await runtime.bounces.start()
        yield
        if runtime.bounces is not None:
            await runtime.bounces.stop()
        if runtime.scheduler:
            await runtime.scheduler.stop()
        listener_stop.set()
        runtime.dispatcher.stop()
        if run_dispatcher:
            await dispatcher_task["task"]
            if "listener" in dispatcher_task:
                await dispatcher_task["listener"]
        if "checkpoints" in dispatcher_task:
            await dispatcher_task["checkpoints"]
        await runtime.aclose()

    app.cleanup_ctx.append(lifecycle)
    return app


async def start(runtime: Runtime, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve in the running loop (for the demo and tests); returns the runner and the bound port."""
    await prepare(runtime)
    runner = web.AppRunner(web_app(runtime), access_log=None,
                           keepalive_timeout=runtime.settings.http.keepalive_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, bound


def serve(settings: Settings) -> None:
    """`protocol-gateway run`: serve until SIGINT or SIGTERM (aiohttp's run_app owns the signals).

    The ports first (HTTP, then the bounce listener's; one line and exit status 2 when one is
    taken, before anything touches the database), then private files, the database (one line when it cannot be reached), the
    transports' probes (a warning each: the outbox keeps the messages), then serving.
    """
    sockets = bind(settings)
    try:
        bounce_sockets = bind_bounces(settings)
    except CannotListen:
        for sock in sockets:
            sock.close()
        raise
    keep_private(settings)

    async def make_app() -> web.Application:
        runtime = build_runtime(settings)
        if runtime.bounces is not None:
            runtime.bounces.sockets = bounce_sockets
        try:
            await prepare(runtime)
            await runtime.probes.check()  # a failing transport is logged now, and /readyz says so
        except BaseException:
            await runtime.aclose()
            raise
        warm_templates(runtime.templates)  # what is on disk now is what a broken edit falls back to
        app = web_app(runtime)
        frozen = freeze_start_up()  # last: all start-up built stays out of the collector's full passes
        log.info("serving", extra={"action": "http_started",
                                   "url": f"http://{settings.http.host}:{bound_port(sockets)}",
                                   "settings": str(settings.settings_file or "no settings file: defaults"),
                                   "email": settings.email.transport, "sms": settings.sms.transport,
                                   "whatsapp": settings.whatsapp.transport,
                                   "database": "sqlite" if runtime.db.is_sqlite else "postgresql",
                                   "templates": str(Path(settings.templates_dir)), "heap_frozen": frozen})
        for action, line in settings.warnings():  # works, but probably not what was meant; /readyz says it too
            log.warning(line, extra={"action": action})
        return app

    web.run_app(make_app(), sock=sockets, print=None, access_log=None,
                shutdown_timeout=settings.dispatch.shutdown_timeout,
                keepalive_timeout=settings.http.keepalive_timeout)
