"""`protocol-gateway`: run, migrate, keys, demo.

A command's result goes to stdout and nothing else does; logs go to stderr as JSON lines.
A wrong setting stops the command with one line naming the key, exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence
from datetime import datetime, timezone

from gateway.api import keys
from gateway.config import ConfigError, Settings, load_settings
from gateway.observability import configure_logging

EXIT_USAGE = 2
# Command groups in modules of their own; each module has register(commands, common).
COMMAND_MODULES: tuple[str, ...] = ("gateway.commands.templates", "gateway.commands.outbox", "gateway.commands.protocols",
                                    "gateway.commands.schedules", "gateway.commands.protocols_hold",
                                    "gateway.commands.protocols_requests")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.app import serve

    serve(_settings(args))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from gateway.store.database import Database
    from gateway.store.migrate import migrate

    settings = _settings(args)

    async def go() -> tuple[str | None, str | None]:
        db = Database(settings.database_url)
        try:
            return await migrate(db)
        finally:
            await db.dispose()

    before, after = asyncio.run(go())
    print(f"database at revision {after}" + (f" (was {before or 'empty'})" if before != after else " (up to date)"))
    return 0


async def _with_db(settings: Settings, work):  # type: ignore[no-untyped-def]
    from gateway.store.database import Database
    from gateway.store.migrate import migrate

    db = Database(settings.database_url)
    try:
        await migrate(db)
        return await work(db)
    finally:
        await db.dispose()


def cmd_keys_create(args: argparse.Namespace) -> int:
    scopes = keys.parse_scopes(args.scopes)
    key = asyncio.run(_with_db(_settings(args), lambda db: keys.create_key(
        db, args.name, scopes, now=datetime.now(timezone.utc))))
    print(key)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    rows = asyncio.run(_with_db(_settings(args), keys.list_keys))
    print(f"{'NAME':<24} {'SCOPES':<40} {'CREATED':<20} STATUS")
    for k in rows:
        status = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.name:<24} {','.join(sorted(k.scopes)):<40} {k.created_at:%Y-%m-%d %H:%M}     {status}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    asyncio.run(_with_db(_settings(args), lambda db: keys.revoke(db, args.name, now=datetime.now(timezone.utc))))
    print(f"revoked {args.name}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return asyncio.run(run_demo(sys.stdout))


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="settings file (default: GATEWAY_CONFIG, else ./settings.toml if present)")
    parser = argparse.ArgumentParser(prog="protocol-gateway", parents=[common],
                                     description="Issues, sends and resends customer-service protocol numbers.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", parents=[common], help="start the daemon").set_defaults(func=cmd_run)
    commands.add_parser("migrate", parents=[common], help="upgrade the database schema").set_defaults(func=cmd_migrate)
    commands.add_parser("demo", parents=[common],
                        help="run the daemon in a temporary folder, open a sample protocol, show what the consumer got"
                        ).set_defaults(func=cmd_demo)

    keys_parser = commands.add_parser("keys", parents=[common], help="API keys")
    key_commands = keys_parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", parents=[common], help="create a key and print it (only once)")
    create.add_argument("name")
    create.add_argument("--scopes", required=True, help=f"comma-separated: {', '.join(keys.SCOPES)}")
    create.set_defaults(func=cmd_keys_create)
    key_commands.add_parser("list", parents=[common], help="list keys (never the keys themselves)"
                            ).set_defaults(func=cmd_keys_list)
    revoke = key_commands.add_parser("revoke", parents=[common], help="revoke a key by name")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_keys_revoke)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "config"):
        args.config = None
    configure_logging()
    try:
        return args.func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except keys.KeyRefused as exc:
        print(f"protocol-gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
