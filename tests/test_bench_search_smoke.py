"""bench/search.py at a tiny size (the fast suite keeps a small version of every bench): it fills,
searches every way and reports, and writes its table, on SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench import search


def test_the_search_bench_runs_and_writes_its_table(tmp_path: Path, capsys) -> None:
    assert search.main(["--protocols", "300", "--repeat", "2", "--results", str(tmp_path)]) == 0
    table = (tmp_path / "search-sqlite-300.md").read_text()
    assert "| by email (any case) | 2 |" in table and "| the last 365 days, by category |" in table
    assert "by number (baseline)" in capsys.readouterr().out


def test_the_search_bench_measures_a_file_it_filled_before_and_keeps_it(tmp_path: Path) -> None:
    kept = tmp_path / "kept.db"
    asyncio.run(search.prepare("sqlite", str(kept), 300))
    assert search.main(["--database", str(kept), "--protocols", "300", "--repeat", "2",
                        "--results", str(tmp_path)]) == 0
    assert "| overdue, first page | 2 |" in (tmp_path / "search-sqlite-300.md").read_text()
    assert kept.stat().st_size > 0
