"""What the README's screenshot scripts share: a gateway in a throwaway folder (SQLite, files for
email and SMS, its secrets in that folder too), served on a free local port, and Debian's
chromium launched through Playwright as the tests do."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.config import load_settings


def find_chromium(script: str) -> str | None:
    chromium = shutil.which("chromium")
    if chromium is None:
        print(f"{script}: chromium is missing (apt-get install chromium)", file=sys.stderr)
    return chromium


@asynccontextmanager
async def served_gateway(now: datetime, seed: Callable[[Runtime], Awaitable[Any]],
                         **sections: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
    """(the base URL, what `seed` returned), the clock fixed at `now`; `sections` add settings."""
    folder = Path(tempfile.mkdtemp(prefix="pgw-shots-"))
    overrides: dict[str, dict[str, Any]] = {
        "database": {"url": f"sqlite+aiosqlite:///{folder / 'gateway.db'}"}, "sweeps": {"enabled": False},
        "email": {"maildir": str(folder / "mail"), "from": "Atendimento <atendimento@example.com>"},
        "sms": {"file": str(folder / "sms.jsonl")},
        "consumer_page": {"secret_file": str(folder / "consumer-page.key")},
    }
    for name, values in sections.items():
        overrides[name] = {**overrides.get(name, {}), **values}
    runtime = build_runtime(load_settings(environ={}, discover=False, overrides=overrides), clock=lambda: now)
    runner = None
    try:
        await prepare(runtime)
        seeded = await seed(runtime)
        runner = web.AppRunner(web_app(runtime, run_dispatcher=False), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", seeded  # type: ignore[union-attr]
    finally:
        if runner is not None:
            await runner.cleanup()
        await runtime.aclose()
        shutil.rmtree(folder, ignore_errors=True)


async def launch(playwright: Any, chromium: str) -> Any:
    return await playwright.chromium.launch(executable_path=chromium,
                                            args=["--no-sandbox"] if os.geteuid() == 0 else [])
