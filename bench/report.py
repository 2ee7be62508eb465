"""Results: a markdown table per scenario, the raw JSON next to it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.stats import median

DRAIN_TARGET = 0.85  # the gateway's drain should reach this share of raw aiosmtplib
LATENCIES = ("p50_ms", "p95_ms", "p99_ms")


def summarize(rounds: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (scenario, database, concurrency, what): medians over the rounds, in first-seen order."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rounds:
        key = (row["scenario"], row["database"], row.get("clients", row.get("connections")), row["what"])
        groups.setdefault(key, []).append(row)
    summary = []
    for (scenario, database, concurrency, what), rows in groups.items():
        entry: dict[str, Any] = {
            "scenario": scenario, "database": database, "concurrency": concurrency, "what": what,
            "role": rows[0]["role"],
            "rounds": len(rows), "rate": median([r["rate"] for r in rows]),
            "rates": [round(r["rate"], 1) for r in rows],
        }
        if scenario == "ingest":
            entry.update({k: median([r[k] for r in rows]) for k in LATENCIES})
            entry["errors"] = sum(r["errors"] for r in rows)
        else:
            entry["bytes_per_message"] = median([r["bytes_per_message"] for r in rows])
        summary.append(entry)
    for entry in summary:
        entry["ratio"] = None
        if entry["role"] == "gateway":
            base = _peer(summary, entry, "baseline")
            entry["ratio"] = entry["rate"] / base["rate"] if base else None
            reference = _peer(summary, entry, "reference")
            if reference:
                entry["ratio_to_reference"] = entry["rate"] / reference["rate"]
    return summary


def _peer(summary: list[dict[str, Any]], entry: dict[str, Any], role: str) -> dict[str, Any] | None:
    """The row of that role measured with the same scenario, database and concurrency."""
    key = (entry["scenario"], entry["database"], entry["concurrency"])
    return next((e for e in summary if e["role"] == role and (e["scenario"], e["database"], e["concurrency"]) == key),
                None)


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f} %"


def ingest_table(summary: list[dict[str, Any]]) -> list[str]:
    lines = ["| database | clients | what | events/s (median) | gateway ÷ baseline | p50 ms | p95 ms | p99 ms "
             "| errors | events/s per round |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for e in summary:
        if e["scenario"] == "ingest":
            lines.append(f"| {e['database']} | {e['concurrency']} | {e['what']} | {e['rate']:.0f} | {_ratio(e['ratio'])} "
                         f"| {e['p50_ms']:.1f} | {e['p95_ms']:.1f} | {e['p99_ms']:.1f} | {e['errors']} "
                         f"| {', '.join(f'{r:.0f}' for r in e['rates'])} |")
    return lines


def drain_table(summary: list[dict[str, Any]]) -> list[str]:
    lines = ["| database | connections | what | notifications/s (median) | gateway ÷ raw | bytes/message "
             "| notifications/s per round |",
             "|---|---:|---|---:|---:|---:|---|"]
    verdicts = []
    for e in summary:
        if e["scenario"] == "drain":
            lines.append(f"| {e['database']} | {e['concurrency']} | {e['what']} | {e['rate']:.0f} | {_ratio(e['ratio'])} "
                         f"| {e['bytes_per_message']:.0f} | {', '.join(f'{r:.0f}' for r in e['rates'])} |")
            if e["ratio"] is not None:
                met = "met" if e["ratio"] >= DRAIN_TARGET else "NOT met"
                verdicts.append(f"- {e['database']}: gateway drains at {_ratio(e['ratio'])} of raw aiosmtplib "
                                f"(target ≥ {DRAIN_TARGET:.0%}): **{met}**")
            if e.get("ratio_to_reference") is not None:
                verdicts.append(f"- {e['database']}: and at {_ratio(e['ratio_to_reference'])} of raw aiosmtplib "
                                f"that builds each email as it goes")
    return lines + [""] + verdicts


def machine_lines(machine: dict[str, Any]) -> list[str]:
    libs = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items())
    return [
        f"- machine: nproc {machine['nproc']} ({machine['cpu']}), {machine['platform']}",
        f"- Python {machine['python']} ({machine['implementation']}), SQLite {machine['sqlite']}",
        f"- load average (1, 5, 15 min) at start {machine['load_average_at_start']}, "
        f"at end {machine.get('load_average_at_end', [])}",
        f"- {libs}",
        f"- commit {machine['commit']}",
        "- the gateway (this process), the load generator or the SMTP sink (each a child process) "
        "share these cores",
    ]


def markdown(run: dict[str, Any]) -> str:
    a = run["arguments"]
    summary = run["summary"]
    lines = [f"# Benchmark {run['started_at']}", "", f"Command: `{run['command']}`", ""]
    if a.get("note"):
        lines += [f"Note: {a['note']}", ""]
    lines += machine_lines(run["machine"])
    lines += [f"- {name}: " + ", ".join(f"{k} {v}" for k, v in info.items())
              for name, info in run.get("databases", {}).items()] + [""]
    if any(e["scenario"] == "ingest" for e in summary):
        lines += [f"## Ingest: POST /v1/events ({a['events']} events a round, median of {a['rounds']} rounds, "
                  f"dispatcher {a['ingest_dispatcher']})", ""]
        lines += ingest_table(summary) + [""]
    if any(e["scenario"] == "drain" for e in summary):
        lines += [f"## Drain: outbox to SMTP ({a['notifications']} emails a round, {a['connections']} connections, "
                  f"median of {a['rounds']} rounds)", ""]
        lines += drain_table(summary) + [""]
    return "\n".join(lines)


def write(run: dict[str, Any], folder: Path, stem: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    table, raw = folder / f"{stem}.md", folder / f"{stem}.json"
    table.write_text(markdown(run), encoding="utf-8")
    raw.write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
    return table, raw
