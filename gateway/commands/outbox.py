"""`protocol-gateway outbox list | retry | requeue`: dead letters for operations.

Exit status: 0 done, 1 refused (no such notification, one that must not be sent again),
2 usage or settings problem.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gateway.commands.database import with_database
from gateway.delivery import admin_options
from gateway.errors import ServiceError

if TYPE_CHECKING:
    from gateway.delivery import admin as outbox_admin
    from gateway.store.database import Database

EXIT_REFUSED, EXIT_USAGE = 1, 2


def _who(args: argparse.Namespace) -> str:
    reason = args.reason or "no reason given"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown user"
    return f"by {user} from the command line: {reason}"


def cmd_list(args: argparse.Namespace) -> int:
    from gateway.delivery import admin as outbox_admin  # here: `--help` need not load SQLAlchemy

    try:
        statuses = outbox_admin.parse_statuses(args.status)
    except ValueError as exc:
        print(f"outbox list: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def work(db: Database) -> list[outbox_admin.OutboxItem]:
        async with db.read() as session:
            return await outbox_admin.list_notifications(session, statuses=statuses, limit=args.limit,
                                                         before=args.before, protocol=args.protocol)

    items = asyncio.run(with_database(args.settings, work))
    if args.format == "json":
        print(json.dumps([i.as_dict() for i in items], ensure_ascii=False, indent=2))
        return 0
    print(f"{'ID':>8} {'STATUS':<11} {'CHANNEL':<7} {'TRIES':>5} {'PROVIDER':<12} {'PROTOCOL':<20} {'TO':<24} "
          f"{'CREATED':<17} ERROR")
    for i in items:
        error = f"{i.error_code or ''} {i.last_error or ''}".strip().replace("\n", " ")
        print(f"{i.id:>8} {i.status:<11} {i.channel:<7} {i.attempts:>5} {i.provider or '-':<12} {i.protocol or '-':<20} "
              f"{i.recipient or '-':<24} "
              f"{i.created_at:%Y-%m-%d %H:%M}  {error[:80]}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from gateway.delivery import admin as outbox_admin

    reason = _who(args)

    async def work(db: Database) -> outbox_admin.OutboxItem:
        async with db.write() as session:
            return await outbox_admin.retry(session, args.id, now=datetime.now(timezone.utc), reason=reason)

    try:
        item = asyncio.run(with_database(args.settings, work))
    except ServiceError as exc:
        print(f"outbox retry: {exc.detail}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"notification {item.id} queued again (attempts so far: {item.attempts})")
    return 0


def cmd_requeue(args: argparse.Namespace) -> int:
    from gateway.delivery import admin as outbox_admin

    now = datetime.now(timezone.utc)
    try:
        statuses = outbox_admin.parse_statuses(args.status)
        since = outbox_admin.parse_since(args.since, now=now) if args.since else None
    except ValueError as exc:
        print(f"outbox requeue: {exc}", file=sys.stderr)
        return EXIT_USAGE
    reason = _who(args)

    async def work(db: Database) -> list[int]:
        async with db.write() as session:
            return await outbox_admin.requeue(session, statuses=statuses, now=now, reason=reason, since=since,
                                              limit=args.limit, dry_run=args.dry_run)

    try:
        ids = asyncio.run(with_database(args.settings, work))
    except ValueError as exc:
        print(f"outbox requeue: {exc}", file=sys.stderr)
        return EXIT_USAGE
    verb = "would queue again" if args.dry_run else "queued again"
    print(f"{verb}: {len(ids)} notification{'s' if len(ids) != 1 else ''}" + (f" ({_ids(ids)})" if ids else ""))
    return 0


def _ids(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:20]))
    return shown + (f", ... {len(ids) - 20} more" if len(ids) > 20 else "")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("outbox", parents=[common], help="dead letters: list, retry, requeue notifications")
    actions = parser.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    why = argparse.ArgumentParser(add_help=False)
    why.add_argument("--reason", help="why, for the record (kept with the notification's attempts)")

    listing = actions.add_parser("list", parents=[common], help="notifications by status, newest first")
    listing.add_argument("--status", help="comma-separated statuses, or pending (queued, sending, unknown), "
                                          "attention (dead, failed, undelivered, unknown: the default), all")
    listing.add_argument("--limit", type=int, default=admin_options.DEFAULT_LIMIT,
                         help=f"at most this many (default {admin_options.DEFAULT_LIMIT}, "
                              f"max {admin_options.MAX_LIMIT})")
    listing.add_argument("--before", type=int, metavar="ID", help="only ids below this one (the next page)")
    listing.add_argument("--protocol", metavar="NUMBER", help="only this protocol's notifications")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.set_defaults(func=cmd_list)

    retry = actions.add_parser("retry", parents=[common, why], help="queue one notification again, due now")
    retry.add_argument("id", type=int, metavar="ID")
    retry.set_defaults(func=cmd_retry)

    requeue = actions.add_parser("requeue", parents=[common, why],
                                 help="queue again every notification in a status (never a delivered one)")
    requeue.add_argument("--status", required=True,
                         help=f"comma-separated, of {', '.join(admin_options.RETRYABLE)}")
    requeue.add_argument("--since", metavar="TIME",
                         help="only those whose last attempt ended at or after TIME (2026-11-22T10:00:00Z, or 2h ago)")
    requeue.add_argument("--limit", type=int, help="at most this many, oldest first")
    requeue.add_argument("--dry-run", action="store_true", help="list what would be queued, change nothing")
    requeue.set_defaults(func=cmd_requeue)
