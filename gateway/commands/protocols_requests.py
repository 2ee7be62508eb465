"""`protocol-gateway protocols requests NUMBER | fulfil NUMBER REQUEST_ID [--note TEXT]`: what the
consumer asked for, with its legal clock, and marking a postal request fulfilled.

Results go to stdout as JSON. Exit status: 0 done, 1 no such protocol or request, or not a
postal request, 2 usage or settings problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from gateway.commands.database import with_database
from gateway.commands.protocols import _actions
from gateway.commands.protocols_hold import _actor
from gateway.config import load_settings
from gateway.errors import NotFound, ServiceError
from gateway.protocols.requests import NOTE_MAX, fulfil_postal, requests_document
from gateway.store.database import Database
from gateway.store.models import ConsumerRequest, Protocol

EXIT_REFUSED = 1


def cmd_requests(args: argparse.Namespace) -> int:
    async def work(db: Database) -> list[dict[str, Any]]:
        async with db.read() as session:
            protocol_id = await session.scalar(select(Protocol.id).where(Protocol.number == args.number))
            if protocol_id is None:
                raise NotFound(f"no protocol {args.number}")
            rows = (await session.scalars(select(ConsumerRequest).where(ConsumerRequest.protocol_id == protocol_id)
                                          .order_by(ConsumerRequest.id))).all()
            return requests_document(rows)

    return _run(args, work)


def cmd_fulfil(args: argparse.Namespace) -> int:
    if args.note is not None and len(args.note) > NOTE_MAX:
        print(f"protocols fulfil: --note: at most {NOTE_MAX} characters", file=sys.stderr)
        return 2

    async def work(db: Database) -> dict[str, Any]:
        document, changed = await fulfil_postal(db, args.number, args.request_id, at=datetime.now(timezone.utc),
                                                by=_actor(), note=args.note)
        return {**document, "changed": changed}

    return _run(args, work)


def _run(args: argparse.Namespace, work: Any) -> int:
    try:
        result = asyncio.run(with_database(load_settings(args.config), work))
    except ServiceError as exc:
        print(f"protocols {args.protocols_command}: {exc.detail}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(result, ensure_ascii=False))
    return 0


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
