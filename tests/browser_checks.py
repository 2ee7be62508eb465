"""What the browser tests share: Debian's chromium launched through Playwright, and axe-core run
on a page. `make test` installs both; a test that lacks them fails saying so, it never skips."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parent / "browser/node_modules/axe-core/axe.min.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SERIOUS = ("serious", "critical")


def require_browser() -> None:
    assert Path(CHROMIUM).exists(), "chromium is missing: `make test` installs it (apt-get install chromium)"
    assert AXE.exists(), "axe-core is missing: `make test` installs it (npm ci --prefix tests/browser)"


async def launch(playwright: Any) -> Any:
    """Debian's chromium (Playwright's own download needs the internet, which tests do not have)."""
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium refuses root without it
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=args)


async def serious_findings(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now: "rule (impact, nodes)"."""
    await page.evaluate(AXE.read_text("utf-8"))
    violations = await page.evaluate(
        "axe.run(document).then(r => r.violations.map(v => [v.id, v.impact, v.nodes.length]))")
    return [f"{rule} ({impact}, {nodes})" for rule, impact, nodes in violations if impact in SERIOUS]
