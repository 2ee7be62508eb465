"""Console: the compliance report as a table and a chart, and its CSV (scope protocols:read)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.runtime_keys import CLOCK, DB, SETTINGS
from gateway.errors import InvalidFields
from gateway.protocols import reports
from gateway.web import i18n
from gateway.web.chart import bars
from gateway.web.console import page, render


async def _report(request: web.Request) -> reports.Report:
    query = {k: v for k, v in request.query.items() if v.strip() and k in ("from", "to", "group_by")}
    now = request.app[CLOCK]()
    period = reports.parse_period(query, zone=request.app[SETTINGS].gateway.timezone, now=now)
    return await reports.compliance_report(request.app[DB], period, at=now)


@page("protocols:read")
async def show_report(request: web.Request) -> web.StreamResponse:
    try:
        report = await _report(request)
    except InvalidFields as exc:
        return render(request, "reports.html", status=422, problems=exc.problems, report=None, chart=None,
                      groups=reports.GROUPS)
    _ = i18n.translator(i18n.choose(request, request.app[SETTINGS].gateway.default_locale))
    chart = bars(_("Opened and resolved in time, per period"),
                 [(g.group or _("(none)"), g.opened, g.resolved_within_deadline) for g in report.groups],
                 (_("opened"), _("resolved in time")))
    return render(request, "reports.html", problems=[], report=report, rows=[g.as_dict() for g in report.groups],
                  total=report.total.as_dict(), chart=chart, groups=reports.GROUPS)


@page("protocols:read")
async def download_csv(request: web.Request) -> web.StreamResponse:
    report = await _report(request)
    name = f"compliance-{report.period.group_by}-{report.period.first}-{report.period.last}.csv"
    return web.Response(text=reports.to_csv(report), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/console/reports", show_report)
    router.add_get("/console/reports.csv", download_csv)
