"""Whether each transport could send now, asked without sending anything.

A transport that can (`probe()`: an SMTP session up to MAIL FROM, the Twilio account, a
writable folder) is asked at start and then at most once per `dispatch.probe_interval`,
when /readyz wants to know: the answer is cached, so a load balancer polling /readyz
never turns into a connection to the provider per request, and a refresh runs in the
background while /readyz answers with what is known. A failing probe is a warning, never
a refusal to start: the outbox keeps every message until the transport works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from gateway.delivery.channels.base import Transport
from gateway.delivery.errors import DeliveryError

log = logging.getLogger("gateway.delivery.probes")

PROBE_TIMEOUT = 30.0  # seconds: a probe hanging longer than this counts as failed


class TransportProbes:
    def __init__(self, transports: dict[str, Transport], *, every: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.transports = transports
        self.every = every
        self.clock = clock  # a monotonic clock: only the age of the last answer matters
        self.results: dict[str, str | None] = {}  # channel -> None (fine) or what is wrong
        self._checked_at: float | None = None
        self._refresh: asyncio.Task[None] | None = None

    async def check(self) -> dict[str, str | None]:
        """Probe every transport now (together) and keep the answers."""
        channels = [c for c, t in self.transports.items() if callable(getattr(t, "probe", None))]
        answers = await asyncio.gather(*(self._probe(c) for c in channels))
        self._checked_at = self.clock()
        for channel, answer in zip(channels, answers):
            self._note(channel, answer)
        return dict(self.results)

    async def _probe(self, channel: str) -> str | None:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await self.transports[channel].probe()  # type: ignore[attr-defined]
        except DeliveryError as exc:
            return str(exc)
        except TimeoutError:
            return f"no answer within {PROBE_TIMEOUT:g}s"
        except Exception as exc:  # a bug in a probe says "not ready", it never stops the daemon
            log.exception("transport probe crashed", extra={"action": "transport_probe_error", "channel": channel})
            return f"probe failed: {type(exc).__name__}"
        return None

    def _note(self, channel: str, answer: str | None) -> None:
        before = self.results.get(channel, "unknown")
        self.results[channel] = answer
        if answer is not None and answer != before:
            log.warning("%s transport is not working: %s; messages wait in the outbox", channel, answer,
                        extra={"action": "transport_probe_failed", "channel": channel, "error": answer})
        elif answer is None and before not in (None, "unknown"):
            log.info("%s transport works again", channel, extra={"action": "transport_probe_ok", "channel": channel})

    def problems(self) -> dict[str, str]:
        """What is known to be wrong, per channel; starts a refresh in the background when stale."""
        stale = self._checked_at is None or self.clock() - self._checked_at >= self.every
        if stale and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._refresh_quietly(), name="transport-probes")
        return {c: r for c, r in self.results.items() if r is not None}

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self.check()

    async def aclose(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
            with contextlib.suppress(BaseException):
                await self._refresh
