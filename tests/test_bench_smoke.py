"""`python -m bench --smoke` still runs end to end and writes its tables.

It asserts that the benchmark completes and reports the rows it should, never how fast
anything was: figures belong in bench/results/, measured, not in a test's assertions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT = 300  # seconds; the smoke run takes a few on an idle machine


def test_smoke_run_writes_a_table_with_every_scenario_row(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_TIMEOUT, env=os.environ.copy(),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    (table,) = tmp_path.glob("smoke-*.md")
    (raw,) = tmp_path.glob("smoke-*.json")
    run = json.loads(raw.read_text(encoding="utf-8"))
    databases = ["sqlite"] + (["postgresql"] if os.environ.get("GATEWAY_TEST_DATABASE_URL") else [])
    rows = {(e["scenario"], e["database"], e["concurrency"], e["role"]) for e in run["summary"]}
    expected = {("ingest", db, clients, role) for db in databases for clients in (1, 10)
                for role in ("baseline", "gateway")}
    expected |= {("drain", db, 4, role) for db in databases for role in ("baseline", "gateway", "reference")}
    assert rows == expected

    text = table.read_text(encoding="utf-8")
    assert "## Ingest" in text and "## Drain" in text
    assert f"nproc {run['machine']['nproc']}" in text and f"Python {run['machine']['python']}" in text
    for db in databases:
        for clients in (1, 10):
            assert f"| {db} | {clients} | gateway |" in text
        assert f"| {db} | 4 | gateway |" in text
    # Every message the gateway was asked to send reached the sink and was recorded as sent.
    drains = [r for r in run["rounds"] if r["scenario"] == "drain"]
    assert all(r["sink_received"] == r["count"] for r in drains)
    assert all(r["recorded_sent"] == r["count"] for r in drains if r["role"] == "gateway")
