"""`protocol-gateway protocols requests NUMBER | fulfil NUMBER REQUEST_ID [--note TEXT]`: what the
consumer asked for, with its legal clock, and marking a postal request fulfilled.

Results go to stdout as JSON. Exit status: 0 done, 1 no such protocol or request, or not a
postal request, 2 usage or settings problem.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gateway.commands.protocols import _actions
from gateway.commands.protocols_hold import _actor, _run
from gateway.protocols.query_limits import NOTE_MAX

if TYPE_CHECKING:
    from gateway.store.database import Database


def cmd_requests(args: argparse.Namespace) -> int:
    from gateway.protocols.requests import protocol_requests  # here: `--help` need not load SQLAlchemy

    async def work(_settings: Any, db: Database) -> list[dict[str, Any]]:
        return await protocol_requests(db, args.number)

    return _run(args, work)


def cmd_fulfil(args: argparse.Namespace) -> int:
    if args.note is not None and len(args.note) > NOTE_MAX:
        print(f"protocols fulfil: --note: at most {NOTE_MAX} characters", file=sys.stderr)
        return 2
    from gateway.protocols.requests import fulfil_postal

    async def work(_settings: Any, db: Database) -> dict[str, Any]:
        document, changed = await fulfil_postal(db, args.number, args.request_id, at=datetime.now(timezone.utc),
                                                by=_actor(), note=args.note)
        return {**document, "changed": changed}

    return _run(args, work)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    actions = _actions(commands, common)
    listing = actions.add_parser("requests", parents=[common],
                                 help="what the consumer asked for, with its legal clock (JSON)")
    listing.add_argument("number", metavar="NUMBER")
    listing.set_defaults(func=cmd_requests)
    fulfil = actions.add_parser("fulfil", parents=[common], help="mark a postal request fulfilled (with a note)")
    fulfil.add_argument("number", metavar="NUMBER")
    fulfil.add_argument("request_id", type=int, metavar="REQUEST_ID", help="its id (protocols requests NUMBER)")
    fulfil.add_argument("--note", help="what was done, for the record (no personal data)")
    fulfil.set_defaults(func=cmd_fulfil)
