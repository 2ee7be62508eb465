"""Where an ingested event's time goes: cProfile on the event loop and on the SQLite writer's thread.

    python -m bench.profile_ingest                    # SQLite, 2,000 events, 50 clients
    python -m bench.profile_ingest --pg URL           # PostgreSQL (the loop thread only: no writer thread)
    python -m bench.profile_ingest --events 5000 --top 40

The gateway runs in this process as in the ingest scenario (dispatcher parked), the load
generator in a child. On SQLite every transaction runs in the one writer connection's
aiosqlite thread (`Database.transact`), so a profiler is switched on inside that thread
too; the two profiles are printed apart, by cumulative time, then by own time. cProfile
roughly doubles the CPU of what it watches: read the shares, not the rates.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench.databases import PostgresStore, SQLiteStore
from bench.ingest import HOST, PARK, NullTransport, _load, park
from bench.progress import say
from bench.serving import served
from bench.settings import bench_settings
from gateway.api import keys
from gateway.app import build_runtime


async def _in_writer_thread(db: object, fn: object) -> None:
    """Run `fn()` in the SQLite writer connection's aiosqlite thread (a profiler is per thread)."""
    async with db.writer.connect() as connection:  # type: ignore[attr-defined]
        adapted = await connection.get_raw_connection()
        await adapted.driver_connection._execute(fn)


async def profile(store: SQLiteStore | PostgresStore, folder: Path, events: int, clients: int
                  ) -> tuple[cProfile.Profile, cProfile.Profile | None, float]:
    url = await store.clone(await store.template("profile"))
    settings = bench_settings(folder, url, dispatch={"poll_interval": PARK})
    runtime = build_runtime(settings, transports={"email": NullTransport(), "sms": NullTransport()})
    park(runtime)
    loop_profile, writer_profile = cProfile.Profile(), None
    try:
        async with served(runtime) as (_, port):
            key = await keys.create_key(runtime.db, "bench", ["events:write"], now=datetime.now(timezone.utc))
            if runtime.db.is_sqlite:
                writer_profile = cProfile.Profile()
                await _in_writer_thread(runtime.db, writer_profile.enable)
            loop_profile.enable()
            result = await _load(f"http://{HOST}:{port}", key, clients=clients, events=events, label="profile")
            loop_profile.disable()
            if writer_profile is not None:
                await _in_writer_thread(runtime.db, writer_profile.disable)
    finally:
        await store.drop(url)
    return loop_profile, writer_profile, events / result["elapsed"]


def _print(title: str, prof: cProfile.Profile, top: int) -> None:
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        print(f"\n## {title}, by {order}\n\n```\n{out.getvalue().strip()}\n```")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--pg", metavar="URL", default=None, help="profile on this PostgreSQL server instead of SQLite")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gateway-profile-") as tmp:
        store = PostgresStore(args.pg) if args.pg else SQLiteStore(Path(tmp))

        async def go() -> tuple[cProfile.Profile, cProfile.Profile | None, float]:
            try:
                return await profile(store, Path(tmp), args.events, args.clients)
            finally:
                await store.close()

        loop_profile, writer_profile, rate = asyncio.run(go())
    say(f"{store.name}: {args.events} events at {rate:.0f}/s under the profiler")
    _print("event loop thread", loop_profile, args.top)
    if writer_profile is not None:
        _print("SQLite writer thread", writer_profile, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
