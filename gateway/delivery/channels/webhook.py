"""Outbound webhooks: a signed POST of a CloudEvent to upstream.

The signature is HMAC-SHA256 over "<timestamp>.<body>" with the shared secret, sent as
`Webhook-Signature: t=<unix seconds>,v1=<hex>`; the receiver recomputes it and refuses
timestamps older than a few minutes (replays). `Webhook-Id` repeats across retries so
upstream can drop duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable

import aiohttp

from gateway.delivery.channels.base import Message, Receipt
from gateway.delivery.errors import PermanentDeliveryError, TransientDeliveryError, UnknownOutcomeError

RETRYABLE_STATUS = {408, 425, 429}


def sign(secret: str, body: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: str, header: str, *, now: float, tolerance: float = 300.0) -> bool:
    """For receivers (and tests): the signature matches and is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookTransport:
    sends_receipts = False

    def __init__(self, secret: str, timeout: float, clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.timeout = timeout
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def send(self, message: Message) -> Receipt:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body = message.text
        headers = {
            "Content-Type": "application/cloudevents+json",
            "Webhook-Id": str(message.notification_id),
            "Webhook-Signature": sign(self.secret, body, int(self.clock())),
        }
        try:
            async with asyncio.timeout(self.timeout):
                async with self._session.post(message.to, data=body.encode(), headers=headers) as response:
                    status = response.status
                    await response.read()
        except TimeoutError as exc:
            raise UnknownOutcomeError(f"webhook timed out after {self.timeout:g} s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransientDeliveryError(f"webhook endpoint unreachable: {exc.os_error}") from exc
        except aiohttp.ClientError as exc:
            raise UnknownOutcomeError(f"webhook connection failed: {type(exc).__name__}") from exc
        if 200 <= status < 300:
            return Receipt(provider_id=None, status="delivered")
        if status >= 500 or status in RETRYABLE_STATUS:
            raise TransientDeliveryError(f"webhook endpoint answered HTTP {status}", code=str(status))
        raise PermanentDeliveryError(f"webhook endpoint refused with HTTP {status}", code=str(status))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
