"""The run's summary as one PNG beside its markdown: throughput bars and end-to-end latency.

One panel per scenario that ran. Throughput scenarios (ingest, drain, SMS drain,
processes): a group of bars per database and concurrency, the baseline (or one process)
beside the gateway (or two), and the reference where there is one, so the ratios of the
tables can be seen at a glance. End to end: p50 and p99 from the POST to the sink's
acceptance against the offered rate, per database, on a log scale, with the 250 ms target
and the 1 s limit of "sustained" drawn across.

matplotlib is in the `bench` extra (`make bench`), not in the test extra: without it the
plot is skipped and the report says so.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.report import E2E_SUSTAINED_P99, E2E_TARGET_P99

THROUGHPUT = ("ingest", "drain", "sms", "whatsapp", "processes")
ROLE_ORDER = ("baseline", "gateway", "reference")
COLOURS = {"baseline": "#9e9e9e", "gateway": "#1f77b4", "reference": "#c7c7c7"}
TITLES = {"ingest": "Ingest: POST /v1/events", "drain": "Drain: outbox to SMTP",
          "sms": "SMS drain: outbox to the Twilio API", "whatsapp": "WhatsApp drain: outbox to the Twilio API", "processes": "Processes on one PostgreSQL",
          "e2e": "End to end: POST to SMTP sink acceptance"}
UNITS = {"ingest": "events/s", "drain": "emails/s", "sms": "SMS/s", "whatsapp": "messages/s", "processes": "emails/s"}
CONCURRENCY = {"ingest": "clients", "drain": "connections", "sms": "in flight", "whatsapp": "in flight",
               "processes": "connections"}


def write_plot(summary: list[dict[str, Any]], path: Path) -> str | None:
    """Draw the PNG at `path`; returns None, or why there is no plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: `make bench` installs it"
    panels: list[tuple[str, list[dict[str, Any]]]] = []
    for scenario in (*THROUGHPUT, "e2e"):
        rows = [e for e in summary if e["scenario"] == scenario]
        if rows:
            panels.append((scenario, rows))
    if not panels:
        return "nothing to plot"
    columns = min(3, len(panels))
    rows_of_panels = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(6 * columns, 4.5 * rows_of_panels), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, (scenario, rows) in zip(flat, panels):
        if scenario == "e2e":
            _latency(ax, rows)
        else:
            _throughput(ax, scenario, rows)
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _throughput(ax: Any, scenario: str, rows: list[dict[str, Any]]) -> None:
    """One group per (database, concurrency); one bar per variant, coloured by its role."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in rows:
        groups.setdefault(f"{e['database']}\n{CONCURRENCY[scenario]} {e['concurrency']}", []).append(e)
    width = 0.8 / max(len(g) for g in groups.values())
    labelled: set[str] = set()
    for x, group in enumerate(groups.values()):
        group = sorted(group, key=lambda e: ROLE_ORDER.index(e["role"]) if e["role"] in ROLE_ORDER else 9)
        for i, e in enumerate(group):
            left = x - width * (len(group) - 1) / 2 + i * width
            legend = e["what"] if e["what"] not in labelled else None
            labelled.add(e["what"])
            ax.bar(left, e["rate"], width, color=COLOURS.get(e["role"], "#ff7f0e"), label=legend)
            ax.annotate(f"{e['rate']:.0f}", (left, e["rate"]), ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, 1.3 * max((e["rate"] for e in rows), default=1))  # room for the legend above the bars
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
    ax.set_ylabel(f"{UNITS[scenario]}, median of rounds")
    ax.set_title(TITLES[scenario], fontsize=10)
    ax.legend(fontsize=7)


def _latency(ax: Any, e2e: list[dict[str, Any]]) -> None:
    for n, database in enumerate(dict.fromkeys(e["database"] for e in e2e)):
        rows = sorted((e for e in e2e if e["database"] == database), key=lambda e: e["offered_rate"])
        rates = [e["offered_rate"] for e in rows]
        for key, style in (("p50_ms", "--"), ("p99_ms", "-")):  # one colour per database
            ax.plot(rates, [e[key] for e in rows], style, marker="o", color=f"C{n}", label=f"{database} {key[:3]}")
    ax.axhline(E2E_TARGET_P99, color="green", linewidth=0.8, linestyle=":",
               label=f"target p99 {E2E_TARGET_P99:.0f} ms (SQLite, 200/s)")
    ax.axhline(E2E_SUSTAINED_P99, color="red", linewidth=0.8, linestyle=":", label="sustained: p99 < 1 s")
    ax.set_yscale("log")
    ax.set_xlabel("offered events/s")
    ax.set_ylabel("POST → SMTP sink acceptance, ms")
    ax.set_title(TITLES["e2e"], fontsize=10)
    ax.legend(fontsize=7)
