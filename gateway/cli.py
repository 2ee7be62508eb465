"""`protocol-gateway`: run, migrate, keys, demo, and the command groups of commands/.

A command's result goes to stdout and nothing else does; logs go to stderr as JSON lines,
after one line saying which settings file the command reads. A wrong setting, a database
that is missing, unreachable or at another schema, or a port in use stops the command with
one line naming the key, exit status 2. Only `run` and `migrate` create a database or
change its schema. A reader that goes away (`| head`) ends the command quietly.

Importing this module loads neither SQLAlchemy nor the database drivers nor the settings'
models: `--help`, `--version` and the template commands start in a fraction of a second
(`tests/test_cli_imports.py`); each command imports what it uses when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from gateway.api.scopes import SCOPES
from gateway.commands.database import with_database

if TYPE_CHECKING:
    from gateway.config import Settings

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # as a tool killed by SIGPIPE, which Python ignores
# Command groups in modules of their own; each module has register(commands, common).
COMMAND_MODULES: tuple[str, ...] = ("gateway.commands.templates", "gateway.commands.outbox", "gateway.commands.protocols",
                                    "gateway.commands.schedules", "gateway.commands.protocols_hold",
                                    "gateway.commands.protocols_list", "gateway.commands.reports",
                                    "gateway.commands.protocols_requests")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # reading the metadata takes a while

    try:
        return version("protocol-gateway")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.app import serve

    serve(args.settings)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from gateway.daemon.private_files import keep_private
    from gateway.store.database import Database
    from gateway.store.migrate import migrate
    from gateway.store.preflight import require_reachable

    settings: Settings = args.settings
    keep_private(settings)  # the database it may create holds personal data

    async def go() -> tuple[str | None, str | None]:
        db = Database(settings.database_url, connect_timeout=settings.database.connect_timeout)
        try:
            await require_reachable(db, settings.origin("database.url"))
            return await migrate(db)
        finally:
            await db.dispose()

    before, after = asyncio.run(go())
    print(f"database at revision {after}" + (f" (was {before or 'empty'})" if before != after else " (up to date)"))
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from gateway.api import keys

    scopes = keys.parse_scopes(args.scopes)
    sources = keys.parse_sources(args.sources) if args.sources is not None else None
    key = asyncio.run(with_database(args.settings, lambda db: keys.create_key(
        db, args.name, scopes, now=datetime.now(timezone.utc), sources=sources)))
    print(key)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from gateway.api import keys

    rows = asyncio.run(with_database(args.settings, keys.list_keys))
    print(f"{'NAME':<24} {'SCOPES':<40} {'CREATED':<20} {'LAST USED':<20} {'STATUS':<24} SOURCES")
    for k in rows:
        status = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        sources = ",".join(sorted(k.sources)) if k.sources is not None else "any"
        # To the minute, as it is written (gateway.api.key_usage).
        used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never"
        print(f"{k.name:<24} {','.join(sorted(k.scopes)):<40} {k.created_at:%Y-%m-%d %H:%M}     {used:<20} "
              f"{status:<24} {sources}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from gateway.api import keys

    asyncio.run(with_database(args.settings, lambda db: keys.revoke(db, args.name, now=datetime.now(timezone.utc))))
    print(f"revoked {args.name}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return asyncio.run(run_demo(sys.stdout))


class _Version(argparse.Action):
    """`--version`, looked up only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"protocol-gateway {_version()}")  # on stdout, as argparse's own action does
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="settings file (default: GATEWAY_CONFIG, else ./settings.toml if present)")
    parser = argparse.ArgumentParser(prog="protocol-gateway", parents=[common],
                                     description="Issues, sends and resends customer-service protocol numbers.")
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", parents=[common], help="start the daemon").set_defaults(func=cmd_run)
    commands.add_parser("migrate", parents=[common], help="upgrade the database schema").set_defaults(func=cmd_migrate)
    commands.add_parser("demo", parents=[common],
                        help="run the daemon in a temporary folder, open a sample protocol, show what the consumer got"
                        ).set_defaults(func=cmd_demo, own_settings=True)

    keys_parser = commands.add_parser("keys", parents=[common], help="API keys")
    key_commands = keys_parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", parents=[common], help="create a key and print it (only once)")
    create.add_argument("name")
    create.add_argument("--scopes", required=True, help=f"comma-separated: {', '.join(SCOPES)}")
    create.add_argument("--sources", help="comma-separated CloudEvents sources the key may post as (default: any)")
    create.set_defaults(func=cmd_keys_create)
    key_commands.add_parser("list", parents=[common], help="list keys (never the keys themselves)"
                            ).set_defaults(func=cmd_keys_list)
    revoke = key_commands.add_parser("revoke", parents=[common], help="revoke a key by name")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_keys_revoke)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, common)
    return parser


def _key_refused(exc: Exception) -> bool:
    keys = sys.modules.get("gateway.api.keys")  # not loaded: a key command never ran
    return keys is not None and isinstance(exc, keys.KeyRefused)


def _database_failure(exc: Exception) -> str | None:
    """What to say when the database became unavailable during the command; None for anything else.
    Neither SQLAlchemy nor asyncpg loaded: the command never touched a database."""
    if "sqlalchemy" not in sys.modules and "asyncpg" not in sys.modules:
        return None
    from asyncpg import InterfaceError, PostgresError
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.store.outage import connect_failure, database_unavailable

    if not isinstance(exc, (SQLAlchemyError, PostgresError, InterfaceError)) or not database_unavailable(exc):
        return None
    return connect_failure(exc) or type(exc).__name__


def announce_settings(settings: Settings) -> None:
    """Which settings the command reads, on stderr: a command run in the wrong folder says so."""
    where = f"settings from {settings.settings_file}" if settings.settings_file else "no settings file: defaults"
    if settings.origins:
        where += f", and {len(settings.origins)} GATEWAY_* variable{'s' if len(settings.origins) != 1 else ''}"
    print(f"protocol-gateway: {where}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "config"):
        args.config = None
    # Past parsing (`--help` and `--version` never get here); the database's modules only when used.
    from gateway.config import ConfigError, load_settings
    from gateway.observability import configure_logging

    configure_logging()
    try:
        try:
            if not getattr(args, "own_settings", False):
                args.settings = load_settings(args.config)
                if args.func is not cmd_run:  # the daemon says it in its "serving" log line instead
                    announce_settings(args.settings)
            code = args.func(args)
            sys.stdout.flush()  # a reader gone away shows here, inside the try, not at exit
            return code
        except ConfigError as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            return 130
        except Exception as exc:
            if _key_refused(exc):
                print(f"protocol-gateway: {exc}", file=sys.stderr)
                return 1
            failure = _database_failure(exc)
            if failure is None:
                raise
            # The database went away after the command's first check: still one line, no traceback.
            print(f"protocol-gateway: the database became unavailable: {failure}", file=sys.stderr)
            return EXIT_USAGE
    except BrokenPipeError:
        # `protocol-gateway templates list | head`: the reader has what it wanted. Point stdout
        # at /dev/null so that the interpreter's last flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
