"""Bearer keys and scopes for /v1 (the Twilio webhooks check signatures instead)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.api import key_usage, request_limits
from gateway.api.keys import KeyInfo, verify
from gateway.api.problems import Problem
from gateway.api.runtime_keys import CLOCK, DB

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SCOPE_ATTR = "__required_scope__"
KEY_INFO: web.RequestKey[KeyInfo] = web.RequestKey("api_key", KeyInfo)


def requires(scope: str) -> Callable[[Handler], Handler]:
    """Mark a handler with the scope it needs; the middleware enforces it."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, SCOPE_ATTR, scope)
        return handler

    return mark


def _is_protected(path: str) -> bool:
    return path.startswith("/v1/") and not path.startswith("/v1/webhooks/")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_protected(request.path):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "send an API key as 'Authorization: Bearer <key>'",
                      headers={"WWW-Authenticate": 'Bearer realm="protocol-gateway"'})
    key = await verify(request.app[DB], token.strip())
    if key is None:
        raise Problem(401, "the API key is not valid or was revoked",
                      headers={"WWW-Authenticate": 'Bearer realm="protocol-gateway", error="invalid_token"'})
    scope = _scope_of(request)
    if scope is not None and not key.allows(scope):
        raise Problem(403, f"this key lacks the scope {scope!r}")
    # Before the body is read or parsed: a flood must cost us as little as possible.
    request_limits.check(request, key.name)
    await key_usage.note_use(request.app[DB], key, request.app[CLOCK]())
    request[KEY_INFO] = key
    return await handler(request)


def _scope_of(request: web.Request) -> str | None:
    match_info: Any = request.match_info
    handler = getattr(match_info, "handler", None)
    return getattr(handler, SCOPE_ATTR, None)


def current_key(request: web.Request) -> KeyInfo:
    return request[KEY_INFO]
