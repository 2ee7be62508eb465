"""GET /v1/reports/compliance (scope protocols:read): JSON, or CSV for `Accept: text/csv` or `?format=csv`."""

from __future__ import annotations

from aiohttp import web

from gateway.api.auth import requires
from gateway.api.runtime_keys import CLOCK, DB, SETTINGS
from gateway.protocols import reports

CSV = "text/csv"


@requires("protocols:read")
async def get_compliance(request: web.Request) -> web.Response:
    now = request.app[CLOCK]()
    period = reports.parse_period(request.query, zone=request.app[SETTINGS].gateway.timezone, now=now)
    report = await reports.compliance_report(request.app[DB], period, at=now)
    if wants_csv(request):
        name = f"compliance-{period.group_by}-{period.first}-{period.last}.csv"
        return web.Response(text=reports.to_csv(report), content_type=CSV, charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return web.json_response(report.as_dict())


def wants_csv(request: web.Request) -> bool:
    if "format" in request.query:
        return request.query["format"] == "csv"
    # Only an Accept that names CSV and not JSON before it: `*/*` (curl, browsers) gets JSON.
    accepted = [part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")]
    return CSV in accepted and ("application/json" not in accepted
                                or accepted.index(CSV) < accepted.index("application/json"))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/reports/compliance", get_compliance)
