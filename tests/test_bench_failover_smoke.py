"""`python -m bench.failover` still runs and reports every variant: it asserts what was
delivered and recorded, never how fast (figures belong in bench/results/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COUNT = 20


def test_the_failover_bench_runs_and_every_email_reaches_the_healthy_relay(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.failover", "--notifications", str(COUNT), "--rounds", "1", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert completed.returncode == 0, completed.stderr[-3000:]
    (raw,) = tmp_path.glob("failover-*.json")
    rows = {r["variant"]: r for r in json.loads(raw.read_text(encoding="utf-8"))["rounds_raw"]}
    assert set(rows) == {"raw", "one relay", "first refusing", "first down", "refusing, no breaker"}
    assert all(r["healthy_received"] == COUNT for r in rows.values())
    assert all(rows[v]["recorded_sent"] == COUNT for v in rows if v != "raw")
    assert rows["refusing, no breaker"]["failed_over"] == COUNT  # every send asked the refusing relay first
    assert 0 < rows["first refusing"]["failed_over"] < COUNT  # the breaker opened part way
    assert (tmp_path / raw.name.replace(".json", ".md")).is_file()
