"""The standalone benches (`bench.memory`, `bench.peer`, `bench.render`, `bench.dispatch_cost`,
`bench.transactions`) and `bench.render_outputs` still run end to end.

Like tests/test_bench_smoke.py, they assert that each bench completes, writes its report with
the rows it should, and that the run's own checks held (every email sent and received, the
daemon stopped cleanly, Apprise's throttle seen), never how fast or how small anything was:
figures belong in bench/results/, measured, not in a test's assertions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT = 180  # seconds; each smoke run takes 10 to 30 on a shared machine
PG_URL = os.environ.get("GATEWAY_TEST_DATABASE_URL")


def run_smoke(module: str, folder: Path, *extra: str) -> tuple[str, dict[str, Any]]:
    completed = subprocess.run(
        [sys.executable, "-m", module, "--smoke", "--out", str(folder), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_TIMEOUT, env=os.environ.copy(),
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    (table,) = folder.glob("smoke-*.md")
    (raw,) = folder.glob("smoke-*.json")
    return table.read_text(encoding="utf-8"), json.loads(raw.read_text(encoding="utf-8"))


def test_memory_smoke_reports_every_phase_and_passes_its_checks(tmp_path: Path) -> None:
    text, run = run_smoke("bench.memory", tmp_path, *(["--pg", PG_URL] if PG_URL else []))

    databases = ["sqlite"] + (["postgresql"] if PG_URL else [])
    assert [out["database"] for out in run["databases"]] == databases
    assert all(value for value in run["reference"].values())
    for out in run["databases"]:
        assert out["checks"] and all(out["checks"].values()), out["checks"]
        assert out["backlog"] == {"sent": out["queued"]} and out["drained"]
        assert out["rss_at_healthz"] and out["rss_idle"] and out["peak_drain"] and out["peak"]
        assert out["samples"] and [p["phase"] for p in out["phases"]] == [
            "start", "start-up sweeps", "sweeps' messages", "idle", "drain", "stop"]
        assert out["schedules"] and {s["schedule"] for s in out["sweeps"]} == set(out["schedules"])
        assert f"| {out['database']} |" in text and f"## {out['database']}" in text
        assert f"- {out['database']}: peak RSS " in text and "(target < 200 MB)" in text
    assert "reference: python with gateway.cli and gateway.app imported" in text
    assert "**FAILED**" not in text


@pytest.mark.slow  # needs the `bench` extra (Apprise): `make test-all` and `make bench` install it, `make test` does not
def test_peer_smoke_reports_gateway_and_apprise_and_passes_its_checks(tmp_path: Path) -> None:
    text, run = run_smoke("bench.peer", tmp_path)

    assert run["checks"] and all(run["checks"].values()), run["checks"]
    assert [e["what"] for e in run["summary"]] == ["gateway", "per-email", "one-object", "as-installed"]
    assert all(r["sink_received"] == r["count"] for r in run["results"])
    installed = next(r for r in run["results"] if r["what"] == "as-installed")
    assert installed["default_rate_attr"] == installed["rate_attr"] > 0 and installed["secure_mode"] == "insecure"
    for label in ("| gateway: outbox drain", "| Apprise, throttle off, one Apprise object per email |",
                  "| Apprise, throttle off, one Apprise object for every email |",
                  "| Apprise as installed (throttle on), one Apprise object |"):
        assert label in text
    from bench.peer import TARGET  # issue 20 raised it from issue 6's 20×

    assert f"(target ≥ {TARGET:g}×): **" in text and "**FAILED**" not in text


def test_render_smoke_reports_gateway_alone_in_batches_and_plain_jinja(tmp_path: Path) -> None:
    text, run = run_smoke("bench.render", tmp_path)

    assert set(run["figures"]) == {"gateway", "gateway_batch", "baseline"}
    for figures in run["figures"].values():  # one round of the smoke's 20 events, each rendered by all three
        assert len(figures["rounds_us"]) == 1 and figures["median_us"] > 0
    assert "| gateway: MessageBuilder.render_each, an event alone |" in text
    assert "| gateway: the same in looks of 25 events, as a shared commit of the ingest |" in text
    assert "| plain Jinja2, same files and filters, context built once (baseline) |" in text


def test_dispatch_cost_smoke_reports_the_sdk_and_the_gateways_part(tmp_path: Path) -> None:
    text, run = run_smoke("bench.dispatch_cost", tmp_path)  # it stops with an error if a variant sent fewer

    for name in ("raw", "twilio", "null"):  # one round of the smoke's 30 SMS, each variant
        assert len(run["figures"][name]["rounds_us"]) == 1 and run["figures"][name]["median_us"] > 0
    for label in ("| raw Twilio SDK (create_async) |", "| gateway: dispatcher + TwilioTransport |",
                  "| gateway: dispatcher + a provider that accepts at once |"):
        assert label in text
    assert "SDK ÷ (SDK + gateway's part) = " in text
    # The split by thread: the raw SDK runs on the loop alone, the gateway's turns on SQLite's writer too.
    threads = run["figures"]["threads"]
    assert threads["raw"]["median_loop_us"] > 0 and all(len(threads[n]["rounds"]) == 1 for n in threads)
    assert threads["null"]["median_others_us"] > 0 and threads["twilio"]["median_others_us"] > 0
    assert "| voluntary context switches an SMS |" in text


def test_transactions_smoke_reports_the_gateways_transactions_and_aiosqlites(tmp_path: Path) -> None:
    text, run = run_smoke("bench.transactions", tmp_path)

    for name in ("transact", "query", "read", "aiosqlite", "trip"):  # one round of the smoke's 30, each
        assert len(run["figures"][name]["rounds_us"]) == 1 and run["figures"][name]["median_us"] > 0
    for label in ("| gateway: Database.transact (write), BEGIN IMMEDIATE and COMMIT |",
                  "| gateway: Database.query (read), BEGIN and COMMIT |",
                  "| gateway: Database.read (AsyncSession), SELECT 1 |",
                  "| aiosqlite alone: BEGIN IMMEDIATE, COMMIT (a trip each) |",
                  "| aiosqlite alone: one trip running nothing |"):
        assert label in text
    assert "- Database.transact ÷ aiosqlite's BEGIN IMMEDIATE + COMMIT: " in text


def test_render_outputs_writes_every_shipped_message_and_sees_an_edit(tmp_path: Path) -> None:
    # The tool that shows two trees render alike (bench.render_outputs): it covers every template,
    # locale, channel, sample and way of asking, and a one-character edit shows in its output.
    def run(folder: Path | None, out: Path) -> dict[str, Any]:
        extra = ["--folder", str(folder)] if folder else []
        completed = subprocess.run([sys.executable, "-m", "bench.render_outputs", *extra, str(out)], cwd=ROOT,
                                   capture_output=True, text=True, timeout=SMOKE_TIMEOUT, env=os.environ.copy())
        assert completed.returncode == 0, completed.stderr[-3000:]
        return json.loads(out.read_text(encoding="utf-8"))

    shipped = run(None, tmp_path / "shipped.json")
    assert not [k for k, v in shipped.items() if isinstance(v, str)]
    assert {k.split("/")[0] for k in shipped} >= {"protocol_opened", "protocol_history", "retention_notice"}
    assert len({k.rsplit("/", 1)[0] for k in shipped if k.startswith("protocol_opened/pt-BR/sms/")}) >= 1
    assert len([k for k in shipped if k.startswith("protocol_opened/pt-BR/email/sample/")]) == 16
    copy = tmp_path / "templates"
    shutil.copytree(ROOT / "gateway" / "templates", copy)
    ask = copy / "_partials" / "pt-BR" / "ask.j2"
    ask.write_text(ask.read_text(encoding="utf-8").replace("sem custo", "sem custo algum"), encoding="utf-8")
    edited = run(copy, tmp_path / "edited.json")
    changed = [k for k in shipped if shipped[k] != edited[k]]
    assert changed and all("/pt-BR/" in k for k in changed)
