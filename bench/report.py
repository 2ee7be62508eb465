"""Results: a markdown table per scenario, the raw JSON next to it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.stats import median

DRAIN_TARGET = 0.85  # the gateway's drain should reach this share of raw aiosmtplib
E2E_TARGET_RATE, E2E_TARGET_P99 = 200, 250.0  # events/s, ms: end-to-end p99 target on SQLite
# A rate is sustained when achieved >= this share of offered, every email arrived by the
# end of the run plus the grace, and the end-to-end p99 is under this (bench/e2e.py).
E2E_SUSTAINED_SHARE, E2E_SUSTAINED_P99, E2E_GRACE = 0.95, 1000.0, 5.0  # share, ms, seconds
# Issue 20's goals at 50 clients: events/s and the share of the raw aiohttp server's rate.
INGEST_GOALS = {"sqlite": (1000, 0.35), "postgresql": (600, 0.0)}
LATENCIES = ("p50_ms", "p95_ms", "p99_ms")


def summarize(rounds: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (scenario, database, concurrency, what): medians over the rounds, in first-seen order."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rounds:
        concurrency = row.get("concurrency", row.get("clients", row.get("connections")))
        groups.setdefault((row["scenario"], row["database"], concurrency, row["what"]), []).append(row)
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
            entry["cpu_us_per_event"] = median([r.get("cpu_us_per_event", float("nan")) for r in rows])
            entry["gc_us_per_event"] = median([r.get("gc_us_per_event", float("nan")) for r in rows])
        elif scenario == "e2e":
            entry.update(_e2e_entry(rows))
        elif scenario == "processes":
            entry.update(_processes_entry(rows))
        else:
            entry["bytes_per_message"] = median([r["bytes_per_message"] for r in rows])
        summary.append(entry)
    for entry in summary:
        entry["ratio"] = None
        if entry["role"] == "gateway":
            base = _peer(summary, entry, "baseline")
            entry["ratio"] = entry["rate"] / base["rate"] if base else None
            raw = _peer(summary, entry, "raw")
            if raw:
                entry["ratio_to_raw"] = entry["rate"] / raw["rate"]
            reference = _peer(summary, entry, "reference")
            if reference:
                entry["ratio_to_reference"] = entry["rate"] / reference["rate"]
    return summary


def _e2e_entry(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the latencies; a rate is sustained only if every round sustained it."""
    return {
        "offered_rate": rows[0]["offered_rate"],
        **{k: median([r[k] for r in rows]) for k in (*LATENCIES, "max_ms", "http_p99_ms", "lag_p99_ms")},
        "errors": sum(r["errors"] for r in rows),
        "expected_emails": sum(r["expected_emails"] for r in rows), "delivered": sum(r["delivered"] for r in rows),
        "count": sum(r["count"] for r in rows),
        "all_arrived": all(r["all_arrived"] for r in rows), "sustainable": all(r["sustainable"] for r in rows),
        "cpu_ms_per_event": median([r.get("cpu_ms_per_event", float("nan")) for r in rows]),
        "gc_longest_ms": median([r.get("gc_longest_ms", float("nan")) for r in rows]),
        "gc_total_ms": median([r.get("gc_total_ms", float("nan")) for r in rows]),
    }


def _processes_entry(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "processes": rows[0]["processes"], "workers": rows[0]["workers"],
        "count": sum(r["count"] for r in rows), "distinct": sum(r["distinct"] for r in rows),
        "duplicates": sum(r["duplicates"] for r in rows),
        "recorded_sent": sum(r["recorded_sent"] for r in rows),
        "sent_by": [r["sent_by"] for r in rows],
    }


def _peer(summary: list[dict[str, Any]], entry: dict[str, Any], role: str) -> dict[str, Any] | None:
    """The row of that role measured with the same scenario, database and concurrency."""
    key = (entry["scenario"], entry["database"], entry["concurrency"])
    return next((e for e in summary if e["role"] == role and (e["scenario"], e["database"], e["concurrency"]) == key),
                None)


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f} %"


def _cpu(value: float | None) -> str:
    """This process's CPU an accepted event (the gateway's, the raw server's); blank where not measured."""
    return "" if value is None or math.isnan(value) else f"{value:,.0f}"


def ingest_table(summary: list[dict[str, Any]]) -> list[str]:
    lines = ["| database | clients | what | events/s (median) | gateway ÷ raw server | gateway ÷ baseline "
             "| gateway ÷ one commit per event | p50 ms | p95 ms | p99 ms | errors | CPU µs/event "
             "| of it GC µs/event | events/s per round |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    verdicts = []
    for e in summary:
        if e["scenario"] == "ingest":
            lines.append(f"| {e['database']} | {e['concurrency']} | {e['what']} | {e['rate']:.0f} "
                         f"| {_ratio(e.get('ratio_to_raw'))} | {_ratio(e['ratio'])} "
                         f"| {_ratio(e.get('ratio_to_reference'))} "
                         f"| {e['p50_ms']:.1f} | {e['p95_ms']:.1f} | {e['p99_ms']:.1f} | {e['errors']} "
                         f"| {_cpu(e.get('cpu_us_per_event'))} | {_cpu(e.get('gc_us_per_event'))} "
                         f"| {', '.join(f'{r:.0f}' for r in e['rates'])} |")
            if e["role"] == "gateway" and e["ratio"] is not None:
                met = "met" if e["ratio"] > 1 else "NOT met"
                verdicts.append(f"- {e['database']}, {e['concurrency']} clients: gateway at {_ratio(e['ratio'])} of "
                                f"one INSERT + COMMIT per event (target: above it): **{met}**")
            if e["role"] == "gateway" and e.get("ratio_to_raw") is not None:
                goal = INGEST_GOALS[e["database"]]
                met = "met" if e["rate"] >= goal[0] and e["ratio_to_raw"] >= goal[1] else "NOT met"
                share = f" and ≥ {goal[1]:.0%} of it" if goal[1] else ""
                verdicts.append(f"- {e['database']}, {e['concurrency']} clients: {e['rate']:.0f} events/s, "
                                f"{_ratio(e['ratio_to_raw'])} of the raw aiohttp server (issue 20's goal at 50 "
                                f"clients: ≥ {goal[0]:,} events/s{share}): **{met}**")
            if e["role"] == "gateway" and e.get("ratio_to_reference") is not None:
                verdicts.append(f"- {e['database']}, {e['concurrency']} clients: group commit gives "
                                f"{_ratio(e['ratio_to_reference'])} of the same gateway committing once per event")
    return lines + ([""] + verdicts if verdicts else [])


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


def _ms(value: float) -> str:
    return "–" if value != value else f"{value:.0f}"  # NaN: nothing arrived


def e2e_table(summary: list[dict[str, Any]]) -> list[str]:
    lines = ["| database | offered events/s | achieved events/s (median) | achieved ÷ offered | p50 ms | p95 ms "
             "| p99 ms | max ms | HTTP answer p99 ms | generator lag p99 ms | errors | emails arrived "
             "| sustained | gateway CPU ms/event | longest GC pause ms | GC ms in all | achieved per round |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for e in summary:
        if e["scenario"] == "e2e":
            lines.append(f"| {e['database']} | {e['offered_rate']} | {e['rate']:.0f} "
                         f"| {_ratio(e['rate'] / e['offered_rate'])} | {_ms(e['p50_ms'])} | {_ms(e['p95_ms'])} "
                         f"| {_ms(e['p99_ms'])} | {_ms(e['max_ms'])} | {_ms(e['http_p99_ms'])} "
                         f"| {_ms(e['lag_p99_ms'])} | {e['errors']} | {e['delivered']}/{e['count']} "
                         f"| {'yes' if e['sustainable'] else '**no**'} | {e.get('cpu_ms_per_event', float('nan')):.2f} "
                         f"| {_ms(e.get('gc_longest_ms', float('nan')))} | {_ms(e.get('gc_total_ms', float('nan')))} "
                         f"| {', '.join(f'{r:.0f}' for r in e['rates'])} |")
    return lines + [""] + e2e_verdicts(summary)


def e2e_verdicts(summary: list[dict[str, Any]]) -> list[str]:
    verdicts = []
    for database in dict.fromkeys(e["database"] for e in summary if e["scenario"] == "e2e"):
        rows = [e for e in summary if e["scenario"] == "e2e" and e["database"] == database]
        sustained = [e["offered_rate"] for e in rows if e["sustainable"]]
        tried = ", ".join(str(e["offered_rate"]) for e in rows)
        verdicts.append(f"- {database}: highest sustainable rate among those tried ({tried}): "
                        + (f"**{max(sustained)} events/s**" if sustained else "**none**"))
        at_target = next((e for e in rows if e["offered_rate"] == E2E_TARGET_RATE), None)
        if database != "sqlite":
            continue
        if at_target is None:
            verdicts.append(f"- sqlite: e2e p99 at {E2E_TARGET_RATE} ev/s not measured "
                            f"({E2E_TARGET_RATE} was not among the rates tried)")
        else:
            met = "met" if at_target["p99_ms"] < E2E_TARGET_P99 and at_target["all_arrived"] else "NOT met"
            verdicts.append(f"- sqlite: e2e p99 at {E2E_TARGET_RATE} ev/s = {_ms(at_target['p99_ms'])} ms "
                            f"(target < {E2E_TARGET_P99:.0f} ms): **{met}**")
    return verdicts


def sms_table(summary: list[dict[str, Any]], scenario: str = "sms") -> list[str]:
    lines = ["| database | in flight | what | notifications/s (median) | gateway ÷ raw | bytes/request "
             "| notifications/s per round |",
             "|---|---:|---|---:|---:|---:|---|"]
    verdicts = []
    for e in summary:
        if e["scenario"] == scenario:
            lines.append(f"| {e['database']} | {e['concurrency']} | {e['what']} | {e['rate']:.0f} | {_ratio(e['ratio'])} "
                         f"| {e['bytes_per_message']:.0f} | {', '.join(f'{r:.0f}' for r in e['rates'])} |")
            if e["ratio"] is not None:
                what = "WhatsApp messages" if scenario == "whatsapp" else "SMS"
                verdicts.append(f"- {e['database']}: the gateway sends {what} at {_ratio(e['ratio'])} of the raw "
                                f"Twilio SDK's rate")
    return lines + [""] + verdicts


def processes_table(summary: list[dict[str, Any]]) -> list[str]:
    lines = ["| database | connections, workers each | what | notifications/s (median) | ÷ 1 process "
             "| delivered once | duplicates | recorded sent | sends per process, each round "
             "| notifications/s per round |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|---|"]
    verdicts = []
    for e in summary:
        if e["scenario"] == "processes":
            lines.append(f"| {e['database']} | {e['concurrency']}, {e['workers']} | {e['what']} | {e['rate']:.0f} "
                         f"| {_ratio(e['ratio'])} | {e['distinct']}/{e['count']} | {e['duplicates']} "
                         f"| {e['recorded_sent']}/{e['count']} | {'; '.join(map(str, e['sent_by']))} "
                         f"| {', '.join(f'{r:.0f}' for r in e['rates'])} |")
            if e["ratio"] is not None:
                verdicts.append(f"- {e['database']}: {e['what']} drain at {_ratio(e['ratio'])} of one process's rate")
    return lines + [""] + verdicts


# What shares the cores in each scenario: the figures are what all of it gets together.
SCENARIO_PROCESSES = {
    "ingest": "the gateway (the bench process) and the HTTP load generator (a child process)",
    "drain": "the gateway or raw aiosmtplib (the bench process) and the SMTP sink (a child process)",
    "e2e": "the gateway with its dispatcher (the bench process), the open-loop load generator and the "
           "SMTP sink (two child processes)",
    "sms": "the gateway or the raw Twilio SDK (the bench process) and the fake Twilio API (a child process)",
    "whatsapp": "the gateway or the raw Twilio SDK (the bench process) and the fake Twilio API (a child process)",
    "processes": "1 or 2 `protocol-gateway run` daemons and the SMTP sink (child processes; the bench "
                 "process only waits and counts)",
}


def ceiling_lines(machine: dict[str, Any], scenarios: list[str], databases: list[str]) -> list[str]:
    server = " and the PostgreSQL server" if "postgresql" in databases else ""
    lines = [f"- ceiling: {machine['nproc']} cores for everything below{server}; no scenario has a core "
             "of its own, so each figure is what these cores give the gateway, its load generator and its "
             "sink together"]
    lines += [f"  - {name}: {SCENARIO_PROCESSES[name]}" for name in scenarios if name in SCENARIO_PROCESSES]
    return lines


def machine_lines(machine: dict[str, Any]) -> list[str]:
    libs = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items())
    return [
        f"- machine: nproc {machine['nproc']} ({machine['cpu']}), {machine['platform']}",
        f"- Python {machine['python']} ({machine['implementation']}), SQLite {machine['sqlite']}",
        f"- load average (1, 5, 15 min) at start {machine['load_average_at_start']}, "
        f"at end {machine.get('load_average_at_end', [])}",
        f"- {libs}",
        f"- commit {machine['commit']}",
    ]


def markdown(run: dict[str, Any]) -> str:
    a = run["arguments"]
    summary = run["summary"]
    lines = [f"# Benchmark {run['started_at']}", "", f"Command: `{run['command']}`", ""]
    if a.get("note"):
        lines += [f"Note: {a['note']}", ""]
    lines += machine_lines(run["machine"])
    lines += ceiling_lines(run["machine"], a.get("scenarios", []), list(run.get("databases", {})))
    lines += [f"- {name}: " + ", ".join(f"{k} {v}" for k, v in info.items())
              for name, info in run.get("databases", {}).items()] + [""]
    if "plot" in run:
        lines += [f"Plot: `{run['plot']}`" if run["plot"] else f"Plot: none ({run.get('plot_skipped', 'not drawn')})",
                  ""]
    if any(e["scenario"] == "ingest" for e in summary):
        lines += [f"## Ingest: POST /v1/events ({a['events']} events a round, median of {a['rounds']} rounds, "
                  f"dispatcher {a['ingest_dispatcher']})", ""]
        lines += ingest_table(summary) + [""]
    if any(e["scenario"] == "drain" for e in summary):
        lines += [f"## Drain: outbox to SMTP ({a['notifications']} emails a round, {a['connections']} connections, "
                  f"median of {a['rounds']} rounds)", ""]
        lines += drain_table(summary) + [""]
    lines += scenario_sections(run)
    return "\n".join(lines)


def scenario_sections(run: dict[str, Any]) -> list[str]:
    """End to end, SMS drain and processes: their headings, definitions and tables."""
    a, summary = run["arguments"], run["summary"]
    lines: list[str] = []
    if any(e["scenario"] == "e2e" for e in summary):
        lines += [f"## End to end: POST to SMTP sink acceptance ({a['e2e_seconds']:g} s per rate, email only, "
                  f"{a['connections']} connections, median of {a['rounds']} rounds)", "",
                  f"Sustained: achieved ≥ {E2E_SUSTAINED_SHARE:.0%} of offered, every email arrived within "
                  f"the run plus a {E2E_GRACE:g} s grace, and end-to-end p99 under {E2E_SUSTAINED_P99:.0f} ms, "
                  "in every round. End to end: from the time the POST was due (open loop: the generator's "
                  "own lag is included) to the sink's acceptance, `time.time()` in both processes; "
                  "HTTP answer: from the POST's actual send.", ""]
        lines += e2e_table(summary) + [""]
    if any(e["scenario"] == "sms" for e in summary):
        lines += [f"## SMS drain: outbox to the Twilio API ({a['sms_notifications']} SMS a round, "
                  f"median of {a['rounds']} rounds)", ""]
        lines += sms_table(summary) + [""]
    if any(e["scenario"] == "whatsapp" for e in summary):
        lines += [f"## WhatsApp drain: outbox to the Twilio API as approved templates ({a['sms_notifications']} "
                  f"messages a round, median of {a['rounds']} rounds)", ""]
        lines += sms_table(summary, "whatsapp") + [""]
    if any(e["scenario"] == "processes" for e in summary):
        lines += [f"## Processes: `protocol-gateway run` daemons on one PostgreSQL "
                  f"({a['process_notifications']} emails a round, median of {a['rounds']} rounds)", ""]
        lines += processes_table(summary) + [""]
    elif "processes" in a.get("scenarios", []):
        lines += ["## Processes: skipped", "", "PostgreSQL only, and this run had none (give `--pg URL`).", ""]
    return lines


def write(run: dict[str, Any], folder: Path, stem: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    table, raw = folder / f"{stem}.md", folder / f"{stem}.json"
    table.write_text(markdown(run), encoding="utf-8")
    raw.write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
    return table, raw
