"""`python -m bench.transactions`: the CPU one SQLite transaction costs the gateway before any work in it.

    python -m bench.transactions                    # 3,000 transactions a round, 5 rounds
    python -m bench.transactions --transactions 10000 --rounds 7
    python -m bench.transactions --smoke            # tiny sizes: proves it runs

Every event opened alone (a quiet moment: group commit has nothing to share), every turn of
the dispatcher and every read of the API and the console is one transaction on SQLite: the
pool's checkout, a trip to the connection's aiosqlite thread and back, a session, BEGIN and
COMMIT. This bench times transactions that do nothing else, in CPU time of this process
(`time.process_time`: both threads), for:

- the gateway's write transaction (`Database.transact`) and read transaction (`Database.query`),
  each taking its connection (so BEGIN and COMMIT run) and running no statement;
- a read through an `AsyncSession` (`Database.read`, as most API and console pages read) that
  runs `SELECT 1`;
- the baseline, aiosqlite alone on a database of its own in the same mode (WAL,
  synchronous=NORMAL): BEGIN IMMEDIATE and COMMIT, one trip each, what a plain aiosqlite server
  pays for a transaction;
- the floor: one trip to aiosqlite's thread running nothing.

Variants run in turn each round. Tables to stdout and to
bench/results/transactions-<date>-<time>.md, every round in the .json beside it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench import standalone
from bench.progress import say
from gateway.store.database import Database

VARIANTS = {
    "transact": "gateway: Database.transact (write), BEGIN IMMEDIATE and COMMIT",
    "query": "gateway: Database.query (read), BEGIN and COMMIT",
    "read": "gateway: Database.read (AsyncSession), SELECT 1",
    "aiosqlite": "aiosqlite alone: BEGIN IMMEDIATE, COMMIT (a trip each)",
    "trip": "aiosqlite alone: one trip running nothing",
}


def _begin_and_commit(session: Session) -> None:
    session.connection()  # a session begins (BEGIN, then COMMIT at the end) only once it takes one


async def _cpu_per(count: int, one: Callable[[], Awaitable[Any]]) -> float:
    started = time.process_time()
    for _ in range(count):
        await one()
    return (time.process_time() - started) / count * 1e6


async def measure(transactions: int, rounds: int, folder: Path) -> dict[str, Any]:
    db = Database(f"sqlite+aiosqlite:///{folder / 'transactions.db'}")
    raw = await aiosqlite.connect(folder / "raw.db", isolation_level=None)
    for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"):  # as the gateway's connections
        async with raw.execute(pragma):
            pass
    figures: dict[str, list[float]] = {name: [] for name in VARIANTS}

    async def plain() -> None:
        async with raw.execute("BEGIN IMMEDIATE"):
            pass
        await raw.commit()

    async def read() -> None:
        async with db.read() as session:
            await session.execute(text("SELECT 1"))

    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "transact": lambda: db.transact(_begin_and_commit),
        "query": lambda: db.query(_begin_and_commit),
        "read": read,
        "aiosqlite": plain,
        "trip": lambda: raw._execute(lambda: None),  # aiosqlite's own queue (pinned below 0.23 for it)
    }
    try:
        for call in calls.values():  # connect, warm: not timed
            await _cpu_per(50, call)
        for r in range(1, rounds + 1):
            for name in standalone.in_turn(VARIANTS, r):
                figures[name].append(await _cpu_per(transactions, calls[name]))
            say(f"round {r}/{rounds}: " + ", ".join(f"{n} {figures[n][-1]:.0f} µs" for n in VARIANTS))
    finally:
        await raw.close()
        await db.dispose()
    return standalone.cpu_summary(figures)


def markdown(run: dict[str, Any]) -> str:
    f, a = run["figures"], run["arguments"]
    lines = [f"# The CPU of an empty SQLite transaction {run['started_at']}", "", f"Command: `{run['command']}`", ""]
    lines += standalone.machine_lines(run["machine"]) + [""]
    lines += [f"## CPU µs of this process per transaction ({a['transactions']} a round, {a['rounds']} rounds)", ""]
    lines += standalone.cpu_table(f, VARIANTS)
    lines += ["", f"- Database.transact ÷ aiosqlite's BEGIN IMMEDIATE + COMMIT: "
              f"{f['transact']['median_us'] / f['aiosqlite']['median_us']:.2f}×", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = standalone.sized_arguments(argv, prog="bench.transactions", doc=__doc__, size="transactions",
                                      default=3000, what="transactions", rounds=5, order="in turn", smoke=(30, 1))
    run = standalone.in_temporary_folder(lambda folder: measure(args.transactions, args.rounds, folder))
    return standalone.measured("bench.transactions", argv, args, run, markdown, "transactions-")


if __name__ == "__main__":
    sys.exit(main())
