"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api.runtime_keys import CLOCK, DB, METRICS, READINESS, SETTINGS, TRANSPORTS
from gateway.delivery.admin import outbox_stats
from gateway.delivery.providers import provider_probe_problems, provider_states
from gateway.store.outage import connect_failure


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    for name, check in request.app[READINESS].items():
        try:
            reason = await check()
        except Exception as exc:  # a readiness probe reports, it never raises
            reason = connect_failure(exc) or type(exc).__name__
        checks[name] = "ok" if reason is None else reason
    ready = all(v == "ok" for v in checks.values())
    providers = _providers(request)
    # Said here as well as at start-up: whoever watches /readyz may never read the start-up log.
    warnings = [line for _, line in request.app[SETTINGS].warnings()]
    body = {"status": "ready" if ready else "not ready", "checks": checks, "providers": providers, "warnings": warnings}
    if ready:
        return web.json_response(body)
    return web.json_response({"type": "/problems/unavailable", "title": "Service Unavailable", "status": 503,
                              "detail": "not ready: " + ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok"),
                              "checks": checks, "providers": providers, "warnings": warnings}, status=503,
                             content_type="application/problem+json")


def _providers(request: web.Request) -> dict[str, dict[str, dict[str, str]]]:
    """channel -> provider -> {"breaker": closed|open|half_open, "probe": ok|what is wrong}."""
    transports = request.app[TRANSPORTS]
    problems = provider_probe_problems(transports)
    return {channel: {name: {"breaker": state, "probe": problems[channel].get(name, "ok")}
                      for name, state in states.items()}
            for channel, states in provider_states(transports).items()}


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    try:
        async with request.app[DB].read() as session:
            stats = await outbox_stats(session, now=request.app[CLOCK]())
    except Exception:  # metrics stay up when the database is down; the outbox gauges go stale
        stats = None
    m.set_breakers(provider_states(request.app[TRANSPORTS]))
    if stats is not None:
        m.set_outbox(stats.depth, oldest_due_seconds=stats.oldest_due_seconds, dead=stats.dead)
    return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
