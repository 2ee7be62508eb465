"""`protocol-gateway protocols list`: find protocols with the filters of GET /v1/protocols.

Exit status: 0 done (even when nothing matched), 2 a bad filter, usage or settings problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gateway.commands.database import with_database
from gateway.commands.protocols import _actions
from gateway.errors import InvalidFields
from gateway.protocols.query_limits import DEFAULT_LIMIT, MAX_LIMIT

if TYPE_CHECKING:
    from gateway.protocols import search
    from gateway.store.database import Database

EXIT_USAGE = 2
# Options that take a value, by the query parameter each stands for.
VALUED = ("number", "phone", "email", "status", "category", "profile", "opened_from", "opened_to", "limit", "cursor")


def cmd_list(args: argparse.Namespace) -> int:
    from gateway.protocols import search  # here: `--help` need not load SQLAlchemy

    query = {name: getattr(args, name) for name in VALUED if getattr(args, name) is not None}
    if args.overdue:
        query["overdue"] = "true"
    settings = args.settings
    try:
        filters = search.parse_filters(query, zone=settings.gateway.timezone, regions=settings.sms.allowed_countries)
    except InvalidFields as exc:
        for p in exc.problems:
            print(f"protocols list: --{p.field.replace('_', '-')}: {p.message}", file=sys.stderr)
        return EXIT_USAGE

    async def work(db: Database) -> tuple[list[search.Found], str | None]:
        async with db.read() as session:
            return await search.search(session, filters, now=datetime.now(timezone.utc))

    found, following = asyncio.run(with_database(settings, work))
    if args.format == "json":
        print(json.dumps({"protocols": [f.as_dict() for f in found], "next_cursor": following},
                         ensure_ascii=False, indent=2))
        return 0
    print(f"{'NUMBER':<20} {'STATUS':<10} {'OPENED':<17} {'DEADLINE':<17} {'CATEGORY':<16} SUBJECT")
    for f in found:
        print(f"{f.number:<20} {f.status:<10} {_when(f.opened_at):<17} {_when(f.deadline_at):<17} "
              f"{(f.category or '-')[:16]:<16} {f.subject[:60]}")
    if following:
        print(f"more: --cursor {following}")
    return 0


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    listing = _actions(commands, common).add_parser(
        "list", parents=[common], help="find protocols by contact, status, deadline, category, profile or date",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    listing.add_argument("--number", help="exactly this protocol number")
    listing.add_argument("--phone", help="the consumer's phone (E.164, or national)")
    listing.add_argument("--email", help="the consumer's address (case does not matter)")
    listing.add_argument("--status", help="comma-separated: open, resolved, reopened, anonymized")
    listing.add_argument("--overdue", action="store_true", help="open or reopened past the deadline")
    listing.add_argument("--category")
    listing.add_argument("--profile")
    listing.add_argument("--opened-from", dest="opened_from", metavar="YYYY-MM-DD", help="in gateway.timezone")
    listing.add_argument("--opened-to", dest="opened_to", metavar="YYYY-MM-DD", help="in gateway.timezone, included")
    listing.add_argument("--limit", help=f"at most {MAX_LIMIT} (default {DEFAULT_LIMIT})")
    listing.add_argument("--cursor", help="the value after `more: --cursor` of the previous page")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(func=cmd_list)
