"""`protocol-gateway reports compliance`: the compliance report of GET /v1/reports/compliance.

Exit status: 0 done, 2 a bad option, usage or settings problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gateway.commands.database import with_database
from gateway.commands.docs import module_doc
from gateway.errors import InvalidFields
from gateway.protocols.query_limits import DEFAULT_DAYS, GROUPS

if TYPE_CHECKING:
    from gateway.protocols import reports
    from gateway.store.database import Database

EXIT_USAGE = 2


def cmd_compliance(args: argparse.Namespace) -> int:
    from gateway.protocols import reports  # here: `--help` need not load SQLAlchemy

    now = datetime.now(timezone.utc)
    query = {"group_by": args.group_by, **{k: v for k, v in (("from", args.first), ("to", args.last)) if v}}
    try:
        period = reports.parse_period(query, zone=args.settings.gateway.timezone, now=now)
    except InvalidFields as exc:
        for p in exc.problems:
            print(f"reports compliance: --{p.field.replace('_', '-')}: {p.message}", file=sys.stderr)
        return EXIT_USAGE

    async def work(db: Database) -> reports.Report:
        return await reports.compliance_report(db, period, at=now)

    report = asyncio.run(with_database(args.settings, work))
    if args.format == "csv":
        sys.stdout.write(reports.to_csv(report))
    elif args.format == "json":
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        _table(report)
    return 0


def _table(report: reports.Report) -> None:
    print(f"protocols opened {report.period.first} to {report.period.last} ({report.period.zone}), "
          f"by {report.period.group_by}")
    print(f"{report.period.group_by.upper():<24} {'OPENED':>7} {'RESOLVED':>8} {'IN TIME':>13} {'LATE OPEN':>9} "
          f"{'REQUESTS':>8} {'IN TIME':>13}")
    for row in [*report.groups, report.total]:
        label = "(total)" if row is report.total else (row.group or "(none)")
        d = row.as_dict()
        print(f"{label[:24]:<24} {row.opened:>7} {row.resolved:>8} "
              f"{_with_share(row.resolved_within_deadline, d['resolved_within_deadline_share']):>13} "
              f"{row.open_past_deadline:>9} {row.requests:>8} "
              f"{_with_share(row.requests_fulfilled_in_time, d['requests_fulfilled_in_time_share']):>13}")


def _with_share(count: int, share: float | None) -> str:
    return f"{count} ({share:.0%})" if share is not None else str(count)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("reports", parents=[common], help="compliance reports")
    actions = group.add_subparsers(dest="reports_command", required=True, metavar="REPORT")
    compliance = actions.add_parser(
        "compliance", parents=[common], help="per category, profile or channel: deadlines met, requests in time",
        description=module_doc("gateway.protocols.reports"), formatter_class=argparse.RawDescriptionHelpFormatter)
    compliance.add_argument("--from", dest="first", metavar="YYYY-MM-DD",
                            help=f"first day opened (default: {DEFAULT_DAYS} days before --to)")
    compliance.add_argument("--to", dest="last", metavar="YYYY-MM-DD", help="last day opened, included (default: today)")
    compliance.add_argument("--group-by", dest="group_by", choices=GROUPS, default="category")
    compliance.add_argument("--format", choices=("table", "json", "csv"), default="table")
    compliance.set_defaults(func=cmd_compliance)
