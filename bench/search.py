"""`python -m bench.search`: search (GET /v1/protocols) and the compliance report over many protocols.

    python -m bench.search                                   # 1,000,000 protocols on SQLite
    python -m bench.search --pg postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
    python -m bench.search --protocols 20000 --sqlite --pg URL   # both, smaller
    python -m bench.search --database /tmp/search-1m.db          # a file filled before, migrated and kept

The store is filled as bench/sweeps.py fills it (its rows: 800 days of br-sac protocols, one
event and two notifications each), with the search columns the service writes (the address
digest) and five categories. Then, through `gateway.protocols.search` and `reports` on the
gateway's own engine (what the API handlers call, minus HTTP), each kind of search runs
`--repeat` times with random values and its latency is timed: p50, p99 and max; the report
runs over the last 365 days and over everything. Figures to stdout and bench/results/search-<db>-<n>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.databases import migrated_sqlite
from bench.sweeps import AT, RESULTS, fill_postgres, fill_sqlite, rows, say

CATEGORIES = ("billing", "delivery", "cancellation", "product", "other")


def search_rows(n: int) -> Iterator[tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]]:
    for protocol, event, notes in rows(n, in_time_order=False):  # rows() gives the address digest the search reads
        protocol["category"] = CATEGORIES[protocol["id"] % len(CATEGORIES)]
        yield protocol, event, notes


def queries(n: int, rng: random.Random) -> dict[str, Any]:
    """Each kind of search: a function of the random generator giving its query string."""
    def one() -> int:
        return rng.randrange(1, n + 1)

    def day() -> str:
        return (AT - timedelta(days=rng.randrange(0, 800))).date().isoformat()

    return {
        # The baseline: the lookup that existed before search (GET /v1/protocols/{number}'s own query).
        "by number (baseline)": lambda: {"number": f"{(AT - timedelta(days=1)):%Y%m%d}{one():08d}0"},
        "by phone": lambda: {"phone": f"+55119{one() % 100_000_000:08d}"},
        "by email (any case)": lambda: {"email": f"C{one()}@Example.com"},
        "newest first, first page": lambda: {},
        "open, first page": lambda: {"status": "open"},
        "overdue, first page": lambda: {"overdue": "true"},
        "category, first page": lambda: {"category": rng.choice(CATEGORIES)},
        "one day opened": lambda: {"opened_from": (d := day()), "opened_to": d},
        "category and a month": lambda: {"category": rng.choice(CATEGORIES),
                                         "opened_from": (d := day())[:8] + "01", "opened_to": d},
    }


async def measure(url: str, n: int, repeat: int) -> dict[str, Any]:
    from gateway.protocols import reports, search
    from gateway.store.database import Database

    db = Database(url)
    rng = random.Random(7)
    out: dict[str, Any] = {"search": {}, "report": {}}
    try:
        async def timed(query: dict[str, str]) -> tuple[float, str | None]:
            filters = search.parse_filters(query, zone="America/Sao_Paulo", regions=["BR"])
            start = time.perf_counter()
            async with db.read() as session:
                _found, following = await search.search(session, filters, now=AT)
            return (time.perf_counter() - start) * 1000, following

        for kind, make in queries(n, rng).items():
            await timed(make())  # warm: the first use of a statement compiles it
            times = [(await timed(make()))[0] for _ in range(repeat)]
            out["search"][kind] = _stats(times)
            say(f"  {kind}: p99 {out['search'][kind]['p99_ms']:.2f} ms")
        # Deep pages: 20 pages of 50 newest first, each from the previous page's cursor.
        query: dict[str, str] = {}
        times = []
        for _ in range(20):
            ms, following = await timed(query)
            times.append(ms)
            if following is None:
                break
            query = {"cursor": following}
        out["search"]["20 pages by cursor"] = _stats(times)
        # A cursor halfway down (a client that paged far, or an export): the page after it.
        from sqlalchemy import select

        from gateway.store.models import Protocol
        async with db.read() as session:
            middle = (await session.execute(select(Protocol.opened_at, Protocol.id).order_by(
                Protocol.opened_at, Protocol.id).offset(n // 2).limit(1))).one_or_none()
        if middle is not None:
            halfway = {"cursor": search.encode_cursor(middle.opened_at, middle.id)}
            await timed(halfway)
            times = [(await timed(halfway))[0] for _ in range(max(repeat // 10, 3))]
            kind = "a page halfway down, by cursor"
            out["search"][kind] = _stats(times)
            say(f"  {kind}: p99 {out['search'][kind]['p99_ms']:.2f} ms")
        for label, days in (("the last 365 days", 365), ("everything (800 days)", 800)):
            for group in reports.GROUPS:
                period = reports.parse_period({"from": (AT - timedelta(days=days - 1)).date().isoformat(),
                                               "to": AT.date().isoformat(), "group_by": group},
                                              zone="America/Sao_Paulo", now=AT)
                start = time.perf_counter()
                report = await reports.compliance_report(db, period, at=AT)
                seconds = time.perf_counter() - start
                out["report"][f"{label}, by {group}"] = {"seconds": round(seconds, 3), "opened": report.total.opened}
                say(f"  report {label} by {group}: {seconds:.2f} s ({report.total.opened:,} protocols)")
    finally:
        await db.dispose()
    return out


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"runs": len(times), "p50_ms": round(statistics.median(ordered), 3), "p99_ms": round(p99, 3),
            "max_ms": round(ordered[-1], 3)}


async def prepare(kind: str, target: str, n: int) -> str:
    from gateway.store.database import Database
    from gateway.store.migrate import migrate

    url = f"sqlite+aiosqlite:///{target}" if kind == "sqlite" else target
    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.dispose()
    say(f"filling {kind} with {n:,} protocols")
    if kind == "sqlite":
        fill_sqlite(Path(target), n, source=search_rows(n))
    else:
        await fill_postgres(target, n, source=search_rows(n))
    return url


def table(kind: str, n: int, figures: dict[str, Any]) -> str:
    lines = [f"# Search and compliance report, {kind}, {n:,} protocols", "",
             "| search | runs | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['runs']} | {v['p50_ms']} | {v['p99_ms']} | {v['max_ms']} |"
              for k, v in figures["search"].items()]
    lines += ["", "| compliance report | protocols | seconds |", "|---|---|---|"]
    lines += [f"| {k} | {v['opened']:,} | {v['seconds']} |" for k, v in figures["report"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocols", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=300, help="searches of each kind")
    parser.add_argument("--sqlite", action="store_true", help="with --pg: SQLite as well")
    parser.add_argument("--pg", metavar="URL", help="an empty PostgreSQL database (postgresql+asyncpg://...)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the figures go (default bench/results)")
    parser.add_argument("--database", type=Path, metavar="FILE",
                        help="a SQLite file this bench filled before with --protocols rows: migrated to the newest "
                             "schema (timed), measured, kept (filling a million takes minutes)")
    args = parser.parse_args(argv)
    targets = ([("sqlite", None)] if args.sqlite or not args.pg else []) + ([("postgresql", args.pg)] if args.pg else [])
    args.results.mkdir(exist_ok=True)
    for kind, url in targets:
        with tempfile.TemporaryDirectory(prefix="bench-search-") as folder:
            if kind == "sqlite" and args.database:
                db_url = asyncio.run(migrated_sqlite(args.database))
            else:
                target = url or str(Path(folder) / "gateway.db")
                db_url = asyncio.run(prepare(kind, target, args.protocols))
            figures = asyncio.run(measure(db_url, args.protocols, args.repeat))
        text = table(kind, args.protocols, figures)
        sys.stdout.write(text)
        stem = args.results / f"search-{kind}-{args.protocols}"
        stem.with_suffix(".md").write_text(text)
        stem.with_suffix(".json").write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
