"""Running `python -m bench.memory`: the arguments, each database filled and watched, the report written."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import memory, standalone
from bench.memory import IDLE_SECONDS, PHASE_TIMEOUT, SMOKE, SMOKE_IDLE
from bench.memory.fill import build_store, drop_store
from bench.memory.report import markdown, reference
from bench.memory.watch import Limits, observe
from bench.progress import say


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=memory.__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocols", type=int, default=1_000_000, help="protocols in the store (default 1,000,000)")
    p.add_argument("--queued", type=int, default=100_000, help="queued confirmation emails (default 100,000)")
    p.add_argument("--pg", metavar="URL", help="also measure on this PostgreSQL server (a database is created "
                                               "and dropped on it)")
    p.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only (with --pg)")
    p.add_argument("--idle", type=float, default=IDLE_SECONDS,
                   help=f"seconds at rest measured (default {IDLE_SECONDS:g})")
    p.add_argument("--note", default="", help="a line for the report: what code was measured, what else ran")
    p.add_argument("--settle-timeout", type=float, default=PHASE_TIMEOUT, metavar="SECONDS",
                   help=f"most time for the start-up sweeps' own messages to go out (default {PHASE_TIMEOUT:g})")
    p.add_argument("--drain-timeout", type=float, default=PHASE_TIMEOUT, metavar="SECONDS",
                   help=f"most time for the drain; a drain cut short reports its rate and a projection "
                        f"(default {PHASE_TIMEOUT:g})")
    p.add_argument("--smoke", action="store_true", help="2,000 protocols, 200 queued: checks the bench runs")
    p.add_argument("--out", type=Path, default=None, help=f"where the report goes (default {standalone.RESULTS}; "
                                                             f"with --smoke, {standalone.SMOKE_RESULTS})")
    args = p.parse_args(argv)
    if args.smoke:
        args.protocols, args.queued, args.idle = SMOKE["protocols"], SMOKE["queued"], SMOKE_IDLE
    if not 0 < args.queued <= args.protocols:
        p.error("--queued must be between 1 and --protocols")
    if args.no_sqlite and not args.pg:
        p.error("--no-sqlite needs --pg")
    args.out = standalone.out_folder(args.out, args.smoke)
    return args


async def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gateway-bench-memory-") as tmp:
        folder = Path(tmp)
        say(f"{kind}: filling {args.protocols:,} protocols, {args.queued:,} of them with a queued email")
        started = time.perf_counter()
        url = await build_store(kind, folder, args.pg, args.protocols, args.queued)
        fill_seconds = time.perf_counter() - started
        say(f"{kind}: filled in {fill_seconds:.0f} s")
        try:
            limits = Limits(settle=args.settle_timeout, drain=args.drain_timeout)
            out = await observe(kind, url, folder, n=args.protocols, queued=args.queued, idle=args.idle, limits=limits)
        finally:
            await drop_store(kind, url, args.pg)
        out["fill_seconds"] = fill_seconds
        if kind == "sqlite":
            out["file_bytes"] = (folder / "gateway.db").stat().st_size
        return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = standalone.start_run("bench.memory", argv, vars(args))
    with contextlib.suppress(ImportError):
        import psutil

        run["machine"]["libraries"]["psutil"] = psutil.__version__
    say(f"memory: nproc {run['machine']['nproc']}, load average {run['machine']['load_average_at_start']}")
    run["reference"] = reference()
    kinds = ([] if args.no_sqlite else ["sqlite"]) + (["postgresql"] if args.pg else [])
    run["databases"] = [asyncio.run(measure(kind, args)) for kind in kinds]
    standalone.finish_run(run)
    stem = ("smoke-memory-" if args.smoke else "memory-") + standalone.stamp(run)
    text = markdown(run)
    table, raw = standalone.write(run, text, args.out, stem)
    print(text)
    say(f"wrote {table} and {raw}")
    return 0 if all(all(out["checks"].values()) for out in run["databases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
