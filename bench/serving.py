"""The gateway as the ingest and end-to-end benches serve it, and the collector's pauses.

`served` starts the gateway in this process (`gateway.app.start`) and freezes what start-up
built, as `protocol-gateway run` does before it serves (gateway/daemon/heap.py); it thaws
once the round is over, so that the next round's collections can free this one's gateway.
`GCPauses` times every garbage collection of this process while it is open (`gc.callbacks`):
each one stops the loop, which is the HTTP server, the dispatcher and the SMTP client here.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bench.child import HOST
from gateway.app import Runtime, start
from gateway.daemon.heap import freeze_start_up, thaw


@contextlib.asynccontextmanager
async def served(runtime: Runtime) -> AsyncIterator[tuple[web.AppRunner, int]]:
    """The runner and its port; on leaving, the gateway is stopped and its runtime closed."""
    runner, port = await start(runtime, HOST, 0)
    try:
        freeze_start_up()
        yield runner, port
    finally:
        try:
            await runner.cleanup()  # stops the dispatcher and closes the runtime
        finally:
            thaw()


class GCPauses:
    """`with GCPauses() as pauses:` then `pauses.figures()`: how many collections, the longest
    and their total, in ms of the wall clock (a pause, whatever else the machine did)."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._began = 0.0

    def _note(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._began) * 1000)

    def __enter__(self) -> GCPauses:
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._note)

    def figures(self) -> dict[str, Any]:
        return {"gc_pauses": len(self.pauses), "gc_longest_ms": max(self.pauses, default=0.0),
                "gc_total_ms": sum(self.pauses)}
