"""What the standalone benches (`bench.memory`, `bench.peer`, the CPU benches) share: the run's
header and where it goes; for the CPU benches (`bench.render`, `bench.dispatch_cost`,
`bench.transactions`) also their options and their run.

Each writes `bench/results/<stem>.md` (the tables) and `<stem>.json` (every figure) like
`python -m bench` does; a `--smoke` run measures nothing and writes to the temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import machine
from bench.progress import say

RESULTS = Path(__file__).resolve().parent / "results"
# Smoke figures measure nothing: they stay out of bench/results/.
SMOKE_RESULTS = Path(tempfile.gettempdir()) / "gateway-bench-smoke"
MIB = 2**20


def command(prog: str, argv: list[str] | None) -> str:
    """The command line as run, with any password in a database URL masked."""
    args = sys.argv[1:] if argv is None else argv
    return re.sub(r"(://[^:/@\s]+):[^@\s]*@", r"\1:***@", shlex.join(["python", "-m", prog, *args]))


def start_run(prog: str, argv: list[str] | None, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command(prog, argv),
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in arguments.items() if k != "pg"},
        "machine": machine.describe(),
    }


def finish_run(run: dict[str, Any]) -> None:
    run["machine"]["load_average_at_end"] = machine.load_average()
    run["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")


def machine_lines(info: dict[str, Any], *, extra_libraries: dict[str, str] | None = None) -> list[str]:
    libraries = {**info["libraries"], **(extra_libraries or {})}
    return [
        f"- machine: nproc {info['nproc']} ({info['cpu']}), {info['platform']}",
        f"- Python {info['python']} ({info['implementation']}), SQLite {info['sqlite']}",
        f"- load average (1, 5, 15 min) at start {info['load_average_at_start']}, "
        f"at end {info.get('load_average_at_end', [])}",
        "- " + ", ".join(f"{k} {v}" for k, v in libraries.items()),
        f"- commit {info['commit']}",
    ]


def add_out_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where the report goes (default {RESULTS}; with --smoke, {SMOKE_RESULTS})")


def sized_arguments(argv: list[str] | None, *, prog: str, doc: str | None, size: str, default: int, what: str,
                    rounds: int, order: str, smoke: tuple[int, int],
                    more: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The options of a CPU bench: `--<size>` (`what` a round), `--rounds`, what `more` adds,
    `--smoke` and `--out`; a smoke run gets `smoke`'s (size, rounds), and a size under 1 is refused."""
    p = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(f"--{size}", type=int, default=default, help=f"{what} a round (default {default})")
    p.add_argument("--rounds", type=int, default=rounds, help=f"rounds of each variant, {order} (default {rounds})")
    if more is not None:
        more(p)
    p.add_argument("--smoke", action="store_true",
                   help=f"{smoke[0]} {what}, {smoke[1]} round: proves it runs, measures nothing")
    add_out_argument(p)
    args = p.parse_args(argv)
    if args.smoke:
        setattr(args, size, smoke[0])
        args.rounds = smoke[1]
    if getattr(args, size) < 1 or args.rounds < 1:
        p.error(f"--{size} and --rounds must be at least 1")
    return args


def in_temporary_folder(measure: Callable[[Path], Awaitable[Any]]) -> Callable[[], Any]:
    """`measure(folder)` run to its end in a temporary folder of its own, removed afterwards."""

    def run() -> Any:
        with tempfile.TemporaryDirectory() as tmp:
            return asyncio.run(measure(Path(tmp)))

    return run


def measured(prog: str, argv: list[str] | None, args: argparse.Namespace, measure: Callable[[], Any],
             markdown: Callable[[dict[str, Any]], str], prefix: str) -> int:
    """Run a CPU bench's `measure()` under the run's header, then print and write its report."""
    folder = out_folder(args.out, args.smoke)
    run = start_run(prog, argv, {k: v for k, v in vars(args).items() if k != "out"})
    run["figures"] = measure()
    publish(run, markdown, folder, "smoke-" if args.smoke else prefix)
    return 0


def in_turn(variants: Iterable[str], r: int) -> list[str]:
    """The variants in the order of round `r`: each round starts one further along, so that none
    always runs first (on a warmer or a colder machine)."""
    names = list(variants)
    return names[r % len(names):] + names[:r % len(names)]


def cpu_summary(figures: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Each variant's CPU µs: every round, the median and the minimum (what the report shows)."""
    return {name: {"rounds_us": [round(v, 1) for v in values], "median_us": round(statistics.median(values), 1),
                   "min_us": round(min(values), 1)} for name, values in figures.items()}


def cpu_table(summary: dict[str, dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """A row a variant of `cpu_summary`'s figures: median, minimum and every round."""
    return ["| what | median | min | rounds |", "|---|---:|---:|---|"] + [
        f"| {label} | {summary[n]['median_us']:.0f} | {summary[n]['min_us']:.0f} | "
        f"{', '.join(f'{v:.0f}' for v in summary[n]['rounds_us'])} |" for n, label in labels.items()]


def out_folder(out: Path | None, smoke: bool) -> Path:
    return out if out is not None else (SMOKE_RESULTS if smoke else RESULTS)


def write(run: dict[str, Any], text: str, folder: Path, stem: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    table, raw = folder / f"{stem}.md", folder / f"{stem}.json"
    table.write_text(text, encoding="utf-8")
    raw.write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
    return table, raw


def publish(run: dict[str, Any], markdown: Callable[[dict[str, Any]], str], folder: Path, prefix: str) -> None:
    """Finish the run, print its tables and write them with every figure: `<prefix><stamp>.md`
    and `.json` (a smoke run's prefix starts `smoke-`)."""
    finish_run(run)
    text = markdown(run)
    print(text)
    table, raw = write(run, text, folder, prefix + stamp(run))
    say(f"wrote {table} and {raw}")


def stamp(run: dict[str, Any]) -> str:
    return datetime.fromisoformat(run["started_at"]).strftime("%Y%m%d-%H%M%S")


def mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / MIB:.1f}"
