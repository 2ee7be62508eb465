"""A few seconds of `make soak` in the fast suite, so the soak cannot rot (bench/soak.py)."""

from __future__ import annotations

from pathlib import Path

from bench.soak import soak


async def test_a_short_soak_passes_every_check_and_writes_its_report(tmp_path: Path) -> None:
    outcome, report = await soak(3, 30, results=tmp_path, quiet=True)
    assert outcome.ok, report.read_text()
    assert len(outcome.acknowledged) >= 80 and outcome.statuses == {"sent": 2 * len(outcome.acknowledged)}
    assert outcome.refused_recipients > 0  # the 451s happened, and were retried through
    assert outcome.rss and report.read_text().startswith("# Soak ") and "memory flat | ok" in report.read_text()
