"""`python -m bench`: measure ingest and drain against baselines taken in the same run.

    python -m bench                       # defaults: 2000 events, clients 50; 2000 emails, 4 connections; 3 rounds
    python -m bench --clients 1,10,50 --events 5000
    python -m bench --smoke               # tiny sizes, a few seconds: proves the bench still runs
    python -m bench --pg postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

Progress goes to stderr; the tables go to stdout and to bench/results/<stem>.md, the raw
figures to <stem>.json next to it (smoke runs write to the temporary folder instead).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.databases import PostgresStore, SQLiteStore
from bench.drain import run_drain
from bench.ingest import run_ingest
from bench.progress import say

RESULTS = Path(__file__).resolve().parent / "results"
# Smoke figures measure nothing: they stay out of bench/results/.
SMOKE_RESULTS = Path(tempfile.gettempdir()) / "gateway-bench-smoke"
SMOKE = {"events": 50, "notifications": 50, "rounds": 1, "clients": [1, 10]}


def _counts(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("expected at least one positive number")
    return values


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected a positive number")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", type=lambda s: s.split(","), default=["ingest", "drain"],
                   help="comma-separated: ingest, drain (default: both)")
    p.add_argument("--clients", type=_counts, default=[50], help="concurrent HTTP clients, e.g. 1,10,50 (default 50)")
    p.add_argument("--events", type=_positive, default=2000, help="events per ingest round (default 2000)")
    p.add_argument("--ingest-dispatcher", choices=["parked", "running"], default="parked",
                   help="parked (default): the dispatcher sleeps during ingest; running: it claims and records "
                        "the new rows with do-nothing transports")
    p.add_argument("--notifications", type=_positive, default=2000, help="emails per drain round (default 2000)")
    p.add_argument("--connections", type=_positive, default=4, help="SMTP connections, gateway and raw (default 4)")
    p.add_argument("--workers", type=_positive, default=None,
                   help="dispatcher workers (default: the gateway's default, 8)")
    p.add_argument("--rounds", type=_positive, default=3, help="rounds of gateway and baseline each (default 3)")
    p.add_argument("--pg", metavar="URL", default=os.environ.get("GATEWAY_TEST_DATABASE_URL"),
                   help="also measure on this PostgreSQL server, creating and dropping databases on it "
                        "(default: $GATEWAY_TEST_DATABASE_URL)")
    p.add_argument("--no-pg", action="store_true", help="SQLite only, even if GATEWAY_TEST_DATABASE_URL is set")
    p.add_argument("--note", default="", help="a line for the report: what code was measured, what else ran")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes (50 events, clients 1,10, 50 emails, 1 round): checks the bench runs, measures nothing")
    p.add_argument("--out", type=Path, default=None,
                   help=f"where tables and JSON go (default {RESULTS}; with --smoke, {SMOKE_RESULTS})")
    args = p.parse_args(argv)
    unknown = set(args.scenarios) - {"ingest", "drain"}
    if unknown:
        p.error(f"unknown scenario {sorted(unknown)[0]!r}; expected ingest, drain")
    if args.smoke:
        for name, value in SMOKE.items():
            setattr(args, name, value)
    if args.out is None:
        args.out = SMOKE_RESULTS if args.smoke else RESULTS
    if args.no_pg:
        args.pg = None
    return args


async def measure(args: argparse.Namespace, folder: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
    stores: list[SQLiteStore | PostgresStore] = [SQLiteStore(folder)]
    if args.pg:
        stores.append(PostgresStore(args.pg))
    run["databases"] = {store.name: await store.describe() for store in stores}
    results: list[dict[str, Any]] = []
    try:
        if "ingest" in args.scenarios:
            results += await run_ingest(stores, folder, clients=args.clients, events=args.events,
                                        rounds=args.rounds, dispatcher=args.ingest_dispatcher)
        if "drain" in args.scenarios:
            results += await run_drain(stores, folder, notifications=args.notifications,
                                       connections=args.connections, rounds=args.rounds, workers=args.workers)
    finally:
        for store in stores:
            await store.close()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(timezone.utc)
    run: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        # A password in --pg stays out of the report.
        "command": re.sub(r"(://[^:/@\s]+):[^@\s]*@", r"\1:***@",
                          shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])),
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "pg"},
        "machine": machine.describe(),
    }
    say(f"nproc {run['machine']['nproc']}, Python {run['machine']['python']}; "
        f"databases: sqlite{', postgresql' if args.pg else ''}")
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        run["rounds"] = asyncio.run(measure(args, Path(tmp), run))
    run["machine"]["load_average_at_end"] = machine.load_average()
    run["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run["summary"] = report.summarize(run["rounds"])
    stem = ("smoke-" if args.smoke else "bench-") + started.strftime("%Y%m%d-%H%M%S")
    table, raw = report.write(run, args.out, stem)
    print(report.markdown(run))
    say(f"wrote {table} and {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
