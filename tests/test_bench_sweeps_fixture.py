"""The sweeps bench's store looks like one the service filled: ids in the order protocols were
opened, each consumer's phone unrelated to its protocol's id (bench/sweeps.py, `rows`); and the
bench runs end to end on a tiny store (its figures belong in bench/results/, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.sweeps import rows

ROOT = Path(__file__).resolve().parent.parent


def test_ids_follow_the_opening_time_and_phones_do_not():
    protocols = [protocol for protocol, _event, _notes in rows(3000)]
    assert [p["id"] for p in protocols] == list(range(1, 3001))
    opened = [p["opened_at"] for p in protocols]
    assert opened == sorted(opened)
    phones = [p["consumer_phone"] for p in protocols]
    assert len(set(phones)) == len(phones)
    # Unrelated to the id: about half of the neighbours go down, not all up as in id order.
    down = sum(a > b for a, b in zip(phones, phones[1:], strict=False))
    assert 0.3 < down / len(phones) < 0.7


def test_the_older_fixture_is_kept_for_the_search_bench():
    protocols = [protocol for protocol, _event, _notes in rows(200, in_time_order=False)]
    assert [p["consumer_phone"] for p in protocols] == [f"+55119{i:08d}" for i in range(1, 201)]
    opened = [p["opened_at"] for p in protocols]
    assert opened != sorted(opened)


def test_the_sweeps_bench_runs_and_names_its_commit(tmp_path):
    """`python -m bench.sweeps` end to end on a tiny store: fills it, anonymizes what expired, reports."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.sweeps", "--protocols", "300", "--cases", "anonymize", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr[-3000:]
    (report,) = tmp_path.glob("sweeps-sqlite-300-*.md")
    text = report.read_text(encoding="utf-8")
    assert ", commit " in text
    (row,) = [line for line in text.splitlines() if line.startswith("| retention expiry, anonymize |")]
    assert " anonymized, WAL truncated |" in row
    figures = json.loads(next(tmp_path.glob("sweeps-sqlite-300-*.json")).read_text(encoding="utf-8"))
    assert figures[0]["result"]["anonymized"] == figures[0]["result"]["considered"] > 0
