"""`python -m bench --smoke` still runs end to end and writes its tables.

It asserts that the benchmark completes and reports the rows it should, never how fast
anything was: figures belong in bench/results/, measured, not in a test's assertions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT = 300  # seconds; the smoke run takes about 35 on an idle machine (daemons start in the processes one)
WORKERS = 8  # the dispatcher's default: the SMS scenario's concurrency


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
                for role in ("raw", "baseline", "gateway", "reference")}
    expected |= {("drain", db, 4, role) for db in databases for role in ("baseline", "gateway", "reference")}
    expected |= {("e2e", db, 20, "gateway") for db in databases}
    expected |= {(channel, db, WORKERS, role) for channel in ("sms", "whatsapp") for db in databases
                 for role in ("baseline", "gateway")}
    if "postgresql" in databases:
        expected |= {("processes", "postgresql", 4, role) for role in ("baseline", "gateway")}
    assert rows == expected

    text = table.read_text(encoding="utf-8")
    assert "## Ingest" in text and "## Drain" in text
    assert "## End to end" in text and "## SMS drain" in text and "## Processes" in text
    assert "## WhatsApp drain" in text
    assert f"nproc {run['machine']['nproc']}" in text and f"Python {run['machine']['python']}" in text
    assert f"ceiling: {run['machine']['nproc']} cores" in text
    assert "sqlite: e2e p99 at 200 ev/s" in text  # the target line, "not measured" at the smoke's one rate
    assert "highest sustainable rate" in text
    for db in databases:
        for clients in (1, 10):
            assert f"| {db} | {clients} | gateway |" in text
        assert f"| {db} | 4 | gateway |" in text
    # The raw aiohttp server (bench/raw_server.py) answered every POST with 202, having written it.
    raws = [r for r in run["rounds"] if r["scenario"] == "ingest" and r["role"] == "raw"]
    assert raws and all(r["errors"] == 0 and r["rows_written"] == r["count"] for r in raws)
    assert "gateway ÷ raw server" in text
    # The gateway's rounds time the collector's share of their CPU (gateway/daemon/heap.py), in the table.
    gateways = [r for r in run["rounds"] if r["scenario"] == "ingest" and r["role"] == "gateway"]
    assert gateways and all(0 <= r["gc_us_per_event"] <= r["cpu_us_per_event"] for r in gateways)
    assert "| of it GC µs/event |" in text
    # Every message the gateway was asked to send reached the sink and was recorded as sent.
    drains = [r for r in run["rounds"] if r["scenario"] == "drain"]
    assert all(r["sink_received"] == r["count"] for r in drains)
    assert all(r["recorded_sent"] == r["count"] for r in drains if r["role"] == "gateway")

    # End to end: each accepted POST's email was matched at the sink, by its Message-ID.
    e2e = [r for r in run["rounds"] if r["scenario"] == "e2e"]
    assert all(r["count"] == 40 and r["errors"] == 0 and r["delivered"] == r["count"] for r in e2e)
    # The collector's pauses in the gateway's process during the round (bench/serving.py), and in the table:
    # 40 events may pass without one, now that the daemon collects its young objects less often (heap.py).
    assert all(r["gc_pauses"] >= 0 and 0 <= r["gc_longest_ms"] <= r["gc_total_ms"] for r in e2e)
    assert "| longest GC pause ms |" in text
    sms = [r for r in run["rounds"] if r["scenario"] in ("sms", "whatsapp")]
    assert len(sms) == 4 * len(databases)
    assert all(r["fake_received"] == r["count"] == 20 for r in sms)
    assert all(r["recorded_sent"] == r["count"] for r in sms if r["role"] == "gateway")
    # Processes: every email delivered exactly once, by daemons that stopped cleanly.
    processes = [r for r in run["rounds"] if r["scenario"] == "processes"]
    assert len(processes) == (2 if "postgresql" in databases else 0)
    for r in processes:
        assert r["distinct"] == r["recorded_sent"] == r["count"] == 50 and r["duplicates"] == 0
        assert r["exit_codes"] == [0] * r["processes"] and sum(r["sent_by"]) == r["count"]
    if "postgresql" not in databases:
        assert "## Processes: skipped" in text

    # The plot is drawn when matplotlib is there (`make bench`), and said to be missing otherwise.
    if importlib.util.find_spec("matplotlib"):
        (plot,) = tmp_path.glob("smoke-*.png")
        assert f"Plot: `{plot.name}`" in text and plot.stat().st_size > 0
    else:
        assert not list(tmp_path.glob("*.png")) and "Plot: none (matplotlib is not installed" in text


def test_gc_pauses_times_each_collection_and_stops_counting_when_closed() -> None:
    import gc

    from bench.serving import GCPauses

    with GCPauses() as pauses:
        gc.collect()
        gc.collect(0)
    gc.collect()  # after the block: not counted
    figures = pauses.figures()
    assert figures["gc_pauses"] == 2 and 0 < figures["gc_longest_ms"] <= figures["gc_total_ms"]
