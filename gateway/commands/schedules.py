"""`protocol-gateway schedules list | run NAME [--at TIME] [--dry-run]`.

`list` shows each sweep and its next runs; `run` runs one now (or as of `--at`), with its
progress on stderr and its result, one JSON object, on stdout. Exit status: 0 done, 1 refused
(anonymizing as of a time still to come), 2 usage, settings or schedule problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.commands.database import with_database

if TYPE_CHECKING:  # imported when a command runs: `--help` need not load SQLAlchemy
    from gateway.config import Settings
    from gateway.rendering.templates import Templates
    from gateway.store.database import Database
    from gateway.sweeps.schedules import Schedule

EXIT_REFUSED, EXIT_USAGE = 1, 2


def parse_at(value: str | None, zone: str) -> datetime:
    """An ISO 8601 time; without an offset it is read in `zone`. None: now."""
    if value is None or value == "now":
        return datetime.now(timezone.utc)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--at: expected an ISO 8601 time such as 2026-11-28T08:00 or 2026-11-28T11:00Z, "
                         f"got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(zone))


def _load(settings: Settings) -> tuple[Templates, list[Schedule]]:
    from gateway.rendering.templates import Templates
    from gateway.sweeps.schedules import load_schedules

    templates = Templates(settings.templates_dir, settings.gateway.default_locale,
                          sms_transliterate=settings.sms.transliterate)
    schedules = load_schedules(settings.schedules_dir, templates=templates, default_timezone=settings.gateway.timezone,
                               default_locale=settings.gateway.default_locale)
    return templates, schedules


def cmd_list(args: argparse.Namespace) -> int:
    settings = args.settings
    _, schedules = _load(settings)
    try:
        at = parse_at(args.at, settings.gateway.timezone)
    except ValueError as exc:
        print(f"schedules list: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"# {settings.schedules_dir}")
    for s in schedules:
        state = "" if s.enabled else "  (disabled)"
        offsets = f" offsets {','.join(o.label for o in s.offsets)}" if s.offsets else ""
        print(f"{s.name}{state}")
        print(f"  {s.kind} -> {s.audience} ({','.join(s.channels)}) template {s.template or '-'}{offsets}")
        print(f"  {s.when}")
        if s.enabled:
            runs = ", ".join(r.strftime("%Y-%m-%d %H:%M %Z") for r in s.next_runs(at, args.count))
            print(f"  next: {runs}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.protocols.retention import RetentionRefused
    from gateway.store.checkpoint import checkpointing
    from gateway.sweeps.runner import SweepRunner, UnknownSchedule

    settings = args.settings
    templates, schedules = _load(settings)
    by_name = {s.name: s for s in schedules}
    if args.name not in by_name:
        print(f"schedules run: no schedule {args.name!r}; known: {', '.join(by_name) or 'none'}", file=sys.stderr)
        return EXIT_USAGE
    try:
        at = parse_at(args.at, by_name[args.name].timezone)
    except ValueError as exc:
        print(f"schedules run: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    async def work(db: Database) -> dict[str, Any]:
        runner = SweepRunner(db, templates, settings, schedules)
        async with checkpointing(db):  # as in the daemon: commits do not copy the WAL back themselves
            result = await runner.run(args.name, at=at, dry_run=args.dry_run, progress=progress)
        return result.as_dict()

    try:
        result = asyncio.run(with_database(settings, work))
    except RetentionRefused as exc:
        print(f"schedules run: {exc.detail}", file=sys.stderr)
        return EXIT_REFUSED
    except UnknownSchedule:  # pragma: no cover - checked above
        return EXIT_USAGE
    print(json.dumps(result, ensure_ascii=False))
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("schedules", parents=[common], help="scheduled sweeps: list, run one by hand")
    actions = parser.add_subparsers(dest="schedules_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="each sweep and its next runs")
    listing.add_argument("--at", metavar="TIME", help="next runs after TIME (ISO 8601; default now)")
    listing.add_argument("--count", type=int, default=3, metavar="N", help="how many next runs (default 3)")
    listing.set_defaults(func=cmd_list)
    running = actions.add_parser("run", parents=[common], help="run one sweep now, with progress on stderr")
    running.add_argument("name", metavar="NAME")
    running.add_argument("--at", metavar="TIME",
                         help="as of TIME (ISO 8601; without an offset, in the schedule's time zone; default now)")
    running.add_argument("--dry-run", action="store_true", help="show what it would do; write nothing")
    running.set_defaults(func=cmd_run)
