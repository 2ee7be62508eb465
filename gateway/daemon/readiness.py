"""What /readyz asks: each check answers None when fine, or what is wrong, in words."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import text

from gateway.daemon.disk import low_space

if TYPE_CHECKING:
    from gateway.app import Runtime

Check = Callable[[], Awaitable[str | None]]


def readiness_checks(runtime: Runtime, tasks: dict[str, asyncio.Task[None]]) -> dict[str, Check]:
    async def database() -> str | None:
        async with runtime.db.read() as session:
            await session.execute(text("SELECT 1"))
        return None

    async def transports() -> str | None:
        missing = [c for c in ("email", "sms", "whatsapp") if c not in runtime.transports]
        failing = [f"{c}: {why}" for c, why in runtime.probes.problems().items()]
        return "; ".join([*(f"{c}: not configured" for c in missing), *failing]) or None

    async def disk() -> str | None:
        return await asyncio.to_thread(low_space, runtime.settings)

    async def dispatcher() -> str | None:
        task = tasks.get("task")
        return None if task is not None and not task.done() else "not running"

    async def scheduler() -> str | None:
        if not runtime.settings.sweeps.enabled:
            return None  # turned off on purpose ([sweeps] enabled = false)
        return runtime.scheduler.not_ready() if runtime.scheduler else "not built"

    return {"database": database, "transports": transports, "disk": disk, "dispatcher": dispatcher,
            "scheduler": scheduler}
