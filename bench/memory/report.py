"""The report: the reference interpreters' RSS, then the Markdown tables and checks of a run."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench import standalone
from bench.memory import ROOT, SAMPLE_EVERY, TARGET_BYTES
from bench.memory.watch import start_up_sweeps

# The reference


REFERENCE_SNIPPET = """
import sys
{imports}
for line in open('/proc/self/status'):
    if line.startswith('VmRSS:'):
        print(int(line.split()[1]) * 1024)
"""


def reference() -> dict[str, int | None]:
    """RSS of a bare interpreter, and of one that imported what `protocol-gateway run` imports first."""
    found: dict[str, int | None] = {}
    for label, imports in (("python, nothing imported", ""),
                           ("python with gateway.cli and gateway.app imported", "import gateway.cli, gateway.app")):
        done = subprocess.run([sys.executable, "-c", REFERENCE_SNIPPET.format(imports=imports)], capture_output=True,
                              text=True, timeout=120, cwd=ROOT)
        found[label] = int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
    return found


# The report


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 10**6:.1f}"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:,.0f} s" + (f" ({seconds / 3600:.1f} h)" if seconds >= 3600 else "")


def phase_rows(out: dict[str, Any]) -> list[str]:
    lines = ["| phase | seconds | RSS at its end (MiB) | highest sample (MiB) |", "|---|---:|---:|---:|"]
    for p in out.get("phases", []):
        if p["phase"] != "stop":
            lines.append(f"| {p['phase']} | {p['seconds']:.1f} | {standalone.mib(p['rss_end'])} "
                         f"| {standalone.mib(p['rss_max'])} |")
    return lines


def _phase_peak(out: dict[str, Any], name: str) -> int | None:
    return next((p["rss_max"] for p in out.get("phases", []) if p["phase"] == name), None)


def summary_row(out: dict[str, Any]) -> str:
    mib = standalone.mib
    sweeps_peak = _phase_peak(out, "start-up sweeps")
    drain = ("" if out.get("drained") else "cut short at ") + _s(out.get("drain_seconds"))
    return (f"| {out['database']} | {_s(out.get('fill_seconds'))} | {mib(out.get('rss_at_healthz'))} "
            f"| {mib(sweeps_peak)} | {mib(out.get('rss_idle'))} | {mib(out.get('peak_drain'))} "
            f"| {mib(out.get('peak'))} "
            f"| {drain} | {out.get('rate') or 0:,.1f} | {out.get('bytes_per_message', 0):,.0f} |")


def verdict(out: dict[str, Any]) -> str:
    met = out.get("peak") is not None and out["peak"] < TARGET_BYTES
    return (f"- {out['database']}: peak RSS {standalone.mib(out.get('peak'))} MiB = {_mb(out.get('peak'))} MB "
            f"(target < 200 MB): **{'met' if met else 'NOT met'}**")


def database_section(out: dict[str, Any]) -> list[str]:
    mib = standalone.mib
    size = f", file {out['file_bytes'] / 2**20:,.0f} MiB" if out.get("file_bytes") else ""
    lines = [f"## {out['database']}{size}", "", *phase_rows(out), ""]
    if not out.get("settled"):
        lines.append(f"- the start-up sweeps' messages were still going out after {_s(out.get('settle_seconds'))} s "
                     f"(--settle-timeout): {out.get('due_at_idle', 0):,} due when the idle phase began")
    if not out.get("drained"):
        lines.append(f"- **the drain was cut short** after {_s(out.get('drain_seconds'))} s (--drain-timeout): "
                     f"{out.get('backlog', {}).get('sent', 0):,} of {out['queued']:,} sent, "
                     f"{out.get('rate') or 0:,.1f}/s; at that rate the whole backlog would take about "
                     f"{_duration(out.get('projected_drain_seconds'))}")
    reset = "reset at the start of the drain" if out.get("peak_reset") else "could not be reset: sampled maximum"
    first = start_up_sweeps(out)
    sweeps = "; ".join(f"{s.get('schedule')} {s['action'].removeprefix('sweep_')}"
                       + "".join(f", {s[k]:,} {k}" for k in ("considered", "enqueued", "late") if s.get(k))
                       for s in first)
    later = len(out.get("sweeps", [])) - len(first)
    if later:
        sweeps += f"; then {later} periodic runs while the bench went on"
    lines += [f"- VmHWM before the drain {mib(out.get('hwm_before_drain'))} MiB; "
              f"during the drain ({reset}) {mib(out.get('peak_drain'))} MiB",
              f"- drain: {out.get('released', 0):,} emails released, first sent after "
              f"{_s(out.get('first_sent_after'))} s, last after {_s(out.get('drain_seconds'))} s; "
              f"statuses at the end {json.dumps(out.get('backlog', {}), sort_keys=True)}",
              f"- start-up sweeps: {sweeps}", "",
              "| check | |", "|---|---|",
              *[f"| {name} | {'ok' if good else '**FAILED**'} |" for name, good in out["checks"].items()], ""]
    return lines


def markdown(run: dict[str, Any]) -> str:
    a = run["arguments"]
    source = run["databases"][0].get("rss_source", "?") if run["databases"] else "?"
    lines = [f"# Memory: the daemon with {a['protocols']:,} protocols and {a['queued']:,} queued notifications",
             "", f"Command: `{run['command']}`", ""]
    if a.get("note"):
        lines += [f"Note: {a['note']}", ""]
    lines += standalone.machine_lines(run["machine"])
    lines += [f"- the daemon (`protocol-gateway run`), the SMTP sink (bench/sink.py) and this bench are three "
              f"processes sharing these cores; the daemon's RSS sampled every {SAMPLE_EVERY * 1000:.0f} ms with "
              f"{source}"]
    lines += [f"- reference: {label}: {standalone.mib(value)} MiB" for label, value in run["reference"].items()]
    lines += ["", "| database | fill s | RSS at /healthz (MiB) | peak in start-up sweeps (MiB) | RSS at idle (MiB) "
              "| peak in drain, VmHWM (MiB) | peak overall (MiB) | drain s | notifications/s | bytes/message |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [summary_row(out) for out in run["databases"]]
    lines += ["", *[verdict(out) for out in run["databases"]], ""]
    for out in run["databases"]:
        lines += database_section(out)
    return "\n".join(lines)
