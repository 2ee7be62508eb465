"""`protocol-gateway protocols hold | release | anonymize NUMBER`: legal hold, and anonymizing by decision.

A legal hold keeps a record out of anonymization until it is released; both are audited.
`anonymize` removes one protocol's personal data now, refused under a legal hold or before
its minimum retention has ended. Results go to stdout as JSON. Exit status: 0 done, 1 refused
or no such protocol, 2 usage or settings problem.
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
from gateway.commands.protocols import _actions
from gateway.errors import ServiceError

if TYPE_CHECKING:
    from gateway.store.database import Database

EXIT_REFUSED = 1


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def _run(args: argparse.Namespace, work: Any) -> int:
    settings = args.settings
    try:
        result = asyncio.run(with_database(settings, lambda db: work(settings, db)))
    except ServiceError as exc:
        print(f"protocols {args.protocols_command}: {exc.detail}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(result, ensure_ascii=False))
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    from gateway.protocols.legal_hold import set_legal_hold  # here: `--help` need not load SQLAlchemy

    async def work(_settings: Any, db: Database) -> dict[str, Any]:
        return await set_legal_hold(db, args.number, True, at=datetime.now(timezone.utc), actor=_actor(),
                                    reason=args.reason)
    return _run(args, work)


def cmd_release(args: argparse.Namespace) -> int:
    from gateway.protocols.legal_hold import set_legal_hold

    async def work(_settings: Any, db: Database) -> dict[str, Any]:
        return await set_legal_hold(db, args.number, False, at=datetime.now(timezone.utc), actor=_actor(),
                                    reason=args.reason)
    return _run(args, work)


def cmd_anonymize(args: argparse.Namespace) -> int:
    from gateway.protocols.anonymize import anonymize_number
    from gateway.protocols.profiles import Profiles

    async def work(settings: Any, db: Database) -> dict[str, Any]:
        return await anonymize_number(db, Profiles.from_settings(settings), args.number, at=datetime.now(timezone.utc),
                                      abandoned_after=settings.retention.abandoned_after, actor=_actor(),
                                      dry_run=args.dry_run, vacuum=settings.retention.vacuum)
    return _run(args, work)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    actions = _actions(commands, common)
    hold = actions.add_parser("hold", parents=[common], help="place a legal hold: never anonymized while it holds")
    hold.add_argument("number", metavar="NUMBER")
    hold.add_argument("--reason", help="why (kept in the audit entry; no personal data)")
    hold.set_defaults(func=cmd_hold)
    release = actions.add_parser("release", parents=[common], help="lift a legal hold")
    release.add_argument("number", metavar="NUMBER")
    release.add_argument("--reason", help="why (kept in the audit entry)")
    release.set_defaults(func=cmd_release)
    anonymize = actions.add_parser("anonymize", parents=[common],
                                   help="remove a protocol's personal data now (refused before its retention ends)")
    anonymize.add_argument("number", metavar="NUMBER")
    anonymize.add_argument("--dry-run", action="store_true", help="say whether it would be allowed; change nothing")
    anonymize.set_defaults(func=cmd_anonymize)
