"""`protocol-gateway protocols export NUMBER | verify FILE`: the evidence of a protocol.

Exit status: 0 done (verify: the digest matches), 1 no such protocol (verify: it does not
match), 2 usage or settings problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.commands.database import with_database
from gateway.commands.docs import module_doc
from gateway.errors import NotFound

if TYPE_CHECKING:
    from gateway.store.database import Database

EXIT_FAILED, EXIT_USAGE = 1, 2


def cmd_export(args: argparse.Namespace) -> int:
    from gateway.protocols import export  # here: `--help` need not load SQLAlchemy

    async def work(db: Database) -> dict[str, Any]:
        return await export.export_protocol(db, args.number, now=datetime.now(timezone.utc))

    try:
        document = asyncio.run(with_database(args.settings, work))
    except NotFound as exc:
        print(f"protocols export: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if args.output:
        # The record is personal data: the file is the user's alone, whatever the shell's umask.
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        print(f"{args.output}: sha256 {document['digest']['value']}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from gateway.protocols import export

    try:
        document = json.loads(args.file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"protocols verify: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if export.verify(document):
        print(f"ok: sha256 {document['digest']['value']} matches the record")
        return 0
    print("protocols verify: the digest does not match the record: it was changed after export", file=sys.stderr)
    return EXIT_FAILED


def _actions(commands: Any, common: argparse.ArgumentParser) -> Any:
    """The `protocols` group's actions; another module may add its own to the same group."""
    parser = commands.choices.get("protocols")
    if parser is None:
        parser = commands.add_parser("protocols", parents=[common], help="one protocol: export, verify, ...")
    for action in parser._actions:  # noqa: SLF001 (argparse has no public way to find them)
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return action
    return parser.add_subparsers(dest="protocols_command", required=True, metavar="ACTION")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    actions = _actions(commands, common)
    exporting = actions.add_parser(
        "export", parents=[common], help="the complete record of a protocol as JSON, with its SHA-256 digest",
        description=module_doc("gateway.protocols.export"), formatter_class=argparse.RawDescriptionHelpFormatter)
    exporting.add_argument("number", metavar="NUMBER")
    exporting.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE (default: stdout)")
    exporting.set_defaults(func=cmd_export)
    verifying = actions.add_parser("verify", parents=[common], help="check an export's digest against its record")
    verifying.add_argument("file", type=Path, metavar="FILE")
    verifying.set_defaults(func=cmd_verify)
