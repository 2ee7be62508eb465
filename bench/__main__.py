"""`python -m bench`: measure the gateway against baselines taken in the same run.

    python -m bench                       # every scenario, default sizes, 3 rounds
    python -m bench --scenarios ingest,drain --clients 1,10,50 --events 5000
    python -m bench --scenarios e2e --e2e-rates 50,100,200 --e2e-seconds 20
    python -m bench --smoke               # tiny sizes: proves the bench still runs
    python -m bench --pg postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

Scenarios: ingest, drain (email), e2e (POST to SMTP sink at steady rates), sms (drain
through the Twilio SDK), whatsapp (the same with approved WhatsApp templates), processes (1 and 2 daemons on PostgreSQL; needs --pg).
Progress goes to stderr; the tables go to stdout and to bench/results/<stem>.md, the raw
figures to <stem>.json and a plot to <stem>.png next to it (smoke runs write to the
temporary folder instead).
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

from gateway.config import DispatchSettings

from bench import machine, report
from bench.databases import PostgresStore, SQLiteStore
from bench.drain import run_drain
from bench.e2e import run_e2e
from bench.ingest import run_ingest
from bench.plot import write_plot
from bench.processes import run_processes
from bench.progress import say
from bench.sms import run_sms

RESULTS = Path(__file__).resolve().parent / "results"
# Smoke figures measure nothing: they stay out of bench/results/.
SMOKE_RESULTS = Path(tempfile.gettempdir()) / "gateway-bench-smoke"
SMOKE = {"events": 50, "notifications": 50, "rounds": 1, "clients": [1, 10], "e2e_rates": [20], "e2e_seconds": 2.0,
         "sms_notifications": 20, "process_notifications": 50}
SCENARIOS = ("ingest", "drain", "e2e", "sms", "whatsapp", "processes")


def _counts(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("expected at least one positive number")
    return values


def _scenarios(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown scenario {unknown[0] if unknown else text!r}; "
                                         f"expected some of {', '.join(SCENARIOS)}")
    return names


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("expected a positive number of seconds")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected a positive number")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", type=_scenarios, default=list(SCENARIOS),
                   help=f"comma-separated, some of {', '.join(SCENARIOS)} (default: all)")
    p.add_argument("--clients", type=_counts, default=[50], help="concurrent HTTP clients, e.g. 1,10,50 (default 50)")
    p.add_argument("--events", type=_positive, default=2000, help="events per ingest round (default 2000)")
    p.add_argument("--ingest-dispatcher", choices=["parked", "running"], default="parked",
                   help="parked (default): the dispatcher sleeps during ingest; running: it claims and records "
                        "the new rows with do-nothing transports")
    p.add_argument("--notifications", type=_positive, default=2000, help="emails per drain round (default 2000)")
    p.add_argument("--connections", type=_positive, default=4, help="SMTP connections, gateway and raw (default 4)")
    p.add_argument("--workers", type=_positive, default=None,
                   help="dispatcher workers, and the raw Twilio SDK's concurrent senders (default: the gateway's "
                        "default, 8)")
    p.add_argument("--e2e-rates", type=_counts, default=[50, 100, 200, 300, 400],
                   help="end to end: offered events/s, each run in turn (default 50,100,200,300,400)")
    p.add_argument("--e2e-seconds", type=_seconds, default=10.0, help="end to end: seconds at each rate (default 10)")
    p.add_argument("--sms-notifications", type=_positive, default=2000, help="SMS (or WhatsApp messages) per drain round of the sms and whatsapp scenarios (default 2000)")
    p.add_argument("--process-notifications", type=_positive, default=2000,
                   help="emails per processes round (default 2000; PostgreSQL only)")
    p.add_argument("--processes", type=_counts, default=[1, 2],
                   help="processes scenario: daemon counts to compare, the first is the reference (default 1,2)")
    p.add_argument("--rounds", type=_positive, default=3, help="rounds of gateway and baseline each (default 3)")
    p.add_argument("--pg", metavar="URL", default=os.environ.get("GATEWAY_TEST_DATABASE_URL"),
                   help="also measure on this PostgreSQL server, creating and dropping databases on it "
                        "(default: $GATEWAY_TEST_DATABASE_URL)")
    p.add_argument("--no-pg", action="store_true", help="SQLite only, even if GATEWAY_TEST_DATABASE_URL is set")
    p.add_argument("--note", default="", help="a line for the report: what code was measured, what else ran")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes (50 events, clients 1,10, 50 emails, e2e 20 events/s for 2 s, 20 SMS, 50 emails "
                        "for the processes, 1 round): checks the bench runs, measures nothing")
    p.add_argument("--out", type=Path, default=None,
                   help=f"where tables and JSON go (default {RESULTS}; with --smoke, {SMOKE_RESULTS})")
    args = p.parse_args(argv)
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
    workers = args.workers or DispatchSettings().workers
    results: list[dict[str, Any]] = []
    try:
        if "ingest" in args.scenarios:
            results += await run_ingest(stores, folder, clients=args.clients, events=args.events,
                                        rounds=args.rounds, dispatcher=args.ingest_dispatcher)
        if "drain" in args.scenarios:
            results += await run_drain(stores, folder, notifications=args.notifications,
                                       connections=args.connections, rounds=args.rounds, workers=args.workers)
        if "e2e" in args.scenarios:
            results += await run_e2e(stores, folder, rates=args.e2e_rates, seconds=args.e2e_seconds,
                                     rounds=args.rounds, connections=args.connections, workers=workers)
        if "sms" in args.scenarios:
            results += await run_sms(stores, folder, notifications=args.sms_notifications, rounds=args.rounds,
                                     workers=workers)
        if "whatsapp" in args.scenarios:
            results += await run_sms(stores, folder, notifications=args.sms_notifications, rounds=args.rounds,
                                     workers=workers, channel="whatsapp")
        if "processes" in args.scenarios:
            pg = [store for store in stores if isinstance(store, PostgresStore)]
            if pg:
                results += await run_processes(pg[0], folder, notifications=args.process_notifications,
                                               processes=args.processes, connections=args.connections,
                                               rounds=args.rounds, workers=workers)
            else:
                say("processes: skipped, it needs PostgreSQL (--pg URL)")
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
    plot = args.out / f"{stem}.png"
    skipped = write_plot(run["summary"], plot)
    run["plot"] = None if skipped else plot.name
    if skipped:
        run["plot_skipped"] = skipped
        say(f"no plot: {skipped}")
    table, raw = report.write(run, args.out, stem)
    print(report.markdown(run))
    say(f"wrote {table}, {raw}" + (f" and {plot}" if run["plot"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
