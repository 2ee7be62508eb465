"""The compliance report (issue 18): hand-counted protocols, on SQLite and PostgreSQL, through the
library, GET /v1/reports/compliance (JSON and CSV) and `reports compliance`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.cli import main
from gateway.config import Settings
from gateway.protocols import reports
from gateway.store.models import ConsumerRequest, Notification, Protocol
from tests.helpers import FixedClock, admin_key, handle_event

RECEIVED = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
NOW = RECEIVED + timedelta(hours=2)

# label: (opened_at, category, channel). Deadlines are br-sac's 7 calendar days, São Paulo's.
OPENED = {
    "p1": ("2026-11-02T12:00:00Z", "billing", "phone"),     # resolved on the 5th: within (deadline the 9th)
    "p2": ("2026-11-03T12:00:00Z", "billing", "chat"),      # resolved on the 20th: late (deadline the 10th)
    "p3": ("2026-11-20T12:00:00Z", "billing", "phone"),     # open, deadline the 27th: past it now
    "p4": ("2026-11-28T12:00:00Z", "delivery", "phone"),    # open, deadline 5 December: not yet
    "p5": ("2026-11-01T02:30:00Z", None, "email"),          # 31 October in São Paulo: outside the period
    "p6": ("2026-12-01T02:00:00Z", "delivery", "web"),      # 30 November, 23:00 in São Paulo: inside
}
RESOLVED = {"p1": "2026-11-05T12:00:00Z", "p2": "2026-11-20T12:00:00Z"}
# Each protocol's notifications get these statuses, in order of creation (each event's own emails).
STATUSES = {"p1": ["delivered", "sent"], "p2": ["failed", "delivered"], "p3": ["dead"], "p4": ["queued"],
            "p5": ["delivered"], "p6": ["delivered"]}


async def post(runtime: Runtime, event_id: str, event_type: str, **data) -> dict:
    return await handle_event(runtime, event_id, event_type, received_at=RECEIVED, **data)


async def build_cases(runtime: Runtime) -> dict[str, str]:
    numbers = {}
    for label, (opened_at, category, channel) in OPENED.items():
        data = {"subject": f"Caso {label}", "opened_at": opened_at, "channel": channel,
                "consumer": {"email": f"{label}@example.com"}}
        if category:
            data["category"] = category
        numbers[label] = (await post(runtime, label, "protocol.opened", **data))["protocol"]["number"]
    for label, resolved_at in RESOLVED.items():
        await post(runtime, f"r-{label}", "protocol.resolved", number=numbers[label], resolution="Feito",
                   resolved_at=resolved_at)
    # Requests for the history: p1's two (one answered within its clock, one after), p3's one unanswered.
    for i, label in enumerate(["p1", "p1", "p3"]):
        await post(runtime, f"ask-{i}", "protocol.resend_requested", number=numbers[label], channel="email",
                   history=True)
    async with runtime.db.write() as session:
        requests = (await session.scalars(select(ConsumerRequest).order_by(ConsumerRequest.id))).all()
        assert len(requests) == 3
        for request, late in zip(requests[:2], (timedelta(days=-1), timedelta(days=1))):
            await session.execute(update(ConsumerRequest).where(ConsumerRequest.id == request.id).values(
                fulfilled_at=request.due_at + late))
        for label, statuses in STATUSES.items():
            protocol_id = await session.scalar(select(Protocol.id).where(Protocol.number == numbers[label]))
            ids = (await session.scalars(select(Notification.id).where(
                Notification.protocol_id == protocol_id, Notification.template != "protocol_history")
                .order_by(Notification.id))).all()
            assert len(ids) == len(statuses), (label, len(ids))
            for notification_id, status in zip(ids, statuses):
                await session.execute(update(Notification).where(Notification.id == notification_id).values(
                    status=status))
            # The histories asked for were sent: they count too.
            await session.execute(update(Notification).where(
                Notification.protocol_id == protocol_id, Notification.template == "protocol_history").values(
                status="sent"))
    return numbers


@pytest.fixture
async def cases(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings, clock=FixedClock(NOW))
    await prepare(runtime)
    await build_cases(runtime)
    yield runtime
    await runtime.aclose()


NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}


async def report(runtime: Runtime, **query: str) -> dict:
    period = reports.parse_period({**NOVEMBER, **query}, zone="America/Sao_Paulo", now=NOW)
    async with runtime.db.read() as session:
        return (await reports.compliance(session, period, at=NOW)).as_dict()


async def test_per_category_counts_what_was_done_in_time(cases) -> None:
    body = await report(cases)
    assert (body["from"], body["to"], body["group_by"], body["at"]) == (
        "2026-11-01", "2026-11-30", "category", "2026-12-01T12:00:00Z")
    billing, delivery = body["groups"]
    assert billing == {
        "group": "billing", "opened": 3, "resolved": 2, "resolved_within_deadline": 1,
        "resolved_within_deadline_share": 0.5, "open_past_deadline": 1, "requests": 3,
        "requests_fulfilled_in_time": 1, "requests_fulfilled_in_time_share": 0.3333,
        "notifications": {"email": {"delivered": 2, "sent": 4, "failed": 1, "dead": 1}}}
    assert delivery == {
        "group": "delivery", "opened": 2, "resolved": 0, "resolved_within_deadline": 0,
        "resolved_within_deadline_share": None, "open_past_deadline": 0, "requests": 0,
        "requests_fulfilled_in_time": 0, "requests_fulfilled_in_time_share": None,
        "notifications": {"email": {"queued": 1, "delivered": 1}}}
    assert body["total"] == {**{k: v for k, v in billing.items() if k != "group"}, "opened": 5,
                             "notifications": {"email": {"delivered": 3, "sent": 4, "failed": 1, "dead": 1, "queued": 1}}}


async def test_per_channel_and_profile_and_a_narrower_period(cases) -> None:
    by_channel = {g["group"]: (g["opened"], g["resolved_within_deadline"]) for g in
                  (await report(cases, group_by="channel"))["groups"]}
    assert by_channel == {"phone": (3, 1), "chat": (1, 0), "web": (1, 0)}
    assert [(g["group"], g["opened"]) for g in (await report(cases, group_by="profile"))["groups"]] == [("br-sac", 5)]
    # 31 October, São Paulo's, holds p5 alone (opened 02:30 UTC on 1 November).
    october = await report(cases, **{"from": "2026-10-31", "to": "2026-10-31"})
    assert [(g["group"], g["opened"]) for g in october["groups"]] == [(None, 1)]


@pytest.mark.parametrize(("query", "field"), [
    ({"from": "2026-11-31"}, "from"), ({"to": "yesterday"}, "to"), ({"group_by": "subject"}, "group_by"),
    ({"from": "2026-11-30", "to": "2026-11-01"}, "to"), ({"from": "2000-01-01"}, "from"), ({"by": "x"}, "by"),
    ({"from": "2000-01-07", "to": "0001-01-07"}, "to"),  # was a 500: the default `from` computed anyway
])
async def test_a_bad_parameter_is_a_problem_naming_it(cases, query, field) -> None:
    key = await admin_key(cases, ["protocols:read"])
    async with TestClient(TestServer(web_app(cases, run_dispatcher=False))) as client:
        r = await client.get("/v1/reports/compliance", params={**NOVEMBER, **query},
                             headers={"Authorization": f"Bearer {key}"})
        assert r.status == 422 and r.content_type == "application/problem+json"
        assert [e["field"] for e in (await r.json())["errors"]] == [field]


async def test_the_api_answers_json_or_csv(cases) -> None:
    key = await admin_key(cases, ["protocols:read"])
    auth = {"Authorization": f"Bearer {key}"}
    async with TestClient(TestServer(web_app(cases, run_dispatcher=False))) as client:
        r = await client.get("/v1/reports/compliance", params=NOVEMBER, headers={**auth, "Accept": "*/*"})
        assert r.status == 200 and r.content_type == "application/json"
        assert (await r.json())["total"]["opened"] == 5
        r = await client.get("/v1/reports/compliance", params=NOVEMBER, headers={**auth, "Accept": "text/csv"})
        assert r.status == 200 and r.content_type == "text/csv"
        assert r.headers["Content-Disposition"] == 'attachment; filename="compliance-category-2026-11-01-2026-11-30.csv"'
        rows = list(csv.DictReader(io.StringIO(await r.text())))
        same = await client.get("/v1/reports/compliance", params={**NOVEMBER, "format": "csv"}, headers=auth)
        assert await same.text() == await r.text()
    assert [(row["category"], row["opened"], row["resolved_within_deadline_share"], row["notifications.email.sent"])
            for row in rows] == [("billing", "3", "0.5000", "4"), ("delivery", "2", "", "0"), ("(total)", "5", "0.5000", "4")]


async def test_a_period_at_the_start_of_the_calendar_is_a_report_not_a_500(cases) -> None:
    """`to` alone, within the default 30 days of the first day a date may be: the period starts at
    that first day (schemathesis found the OverflowError this was)."""
    key = await admin_key(cases, ["protocols:read"])
    async with TestClient(TestServer(web_app(cases, run_dispatcher=False))) as client:
        r = await client.get("/v1/reports/compliance", params={"to": "0001-01-07", "format": "csv"},
                             headers={"Authorization": f"Bearer {key}"})
        assert r.status == 200, await r.text()
        assert "compliance-category-0001-01-02-0001-01-07.csv" in r.headers["Content-Disposition"]
        assert [row["opened"] for row in csv.DictReader(io.StringIO(await r.text()))] == ["0"]


def test_a_category_that_looks_like_a_formula_is_written_as_text() -> None:
    period = reports.Period(datetime(2026, 11, 1).date(), datetime(2026, 11, 30).date(), "category", "UTC")
    report_ = reports.Report(period, NOW, [reports.Row("=HYPERLINK(\"http://x\")", opened=1)],
                             reports.Row(None, opened=1))
    first = list(csv.reader(io.StringIO(reports.to_csv(report_))))[1]
    assert first[0] == "'=HYPERLINK(\"http://x\")"


async def test_the_cli_prints_a_table_csv_or_json(cases, settings: Settings, tmp_path: Path, capsys) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(f'[database]\nurl = "{settings.database_url}"\n')

    def cli(*args: str) -> int:
        return main(["reports", "compliance", "--config", str(config), "--from", "2026-11-01", "--to", "2026-11-30",
                     *args])

    assert await asyncio.to_thread(cli) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split() == ["billing", "3", "2", "1", "(50%)", "1", "3", "1", "(33%)"]
    assert lines[-1].split()[:2] == ["(total)", "5"]
    assert await asyncio.to_thread(cli, "--format", "csv", "--group-by", "channel") == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("channel,opened,resolved,")
    assert await asyncio.to_thread(cli, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["total"]["requests"] == 3
    assert await asyncio.to_thread(main, ["reports", "compliance", "--config", str(config), "--from", "11/2026"]) == 2
    assert "--from: expected a date" in capsys.readouterr().err


@pytest.mark.parametrize("group_by", ["category", "profile", "channel"])
@pytest.mark.parametrize("slices", [1, 2, 3, 7])
async def test_a_report_read_in_slices_at_once_counts_the_same(cases, group_by: str, slices: int) -> None:
    """The API, the console and the CLI read a long period in slices on several connections; the
    cuts fall between the cases' openings (7 slices of November: one every 4 days and a bit)."""
    period = reports.parse_period({**NOVEMBER, "group_by": group_by}, zone="America/Sao_Paulo", now=NOW)
    async with cases.db.read() as session:
        whole = (await reports.compliance(session, period, at=NOW)).as_dict()
    sliced = (await reports.compliance_report(cases.db, period, at=NOW, slices=slices)).as_dict()
    assert sliced == whole and whole["total"]["opened"] == 5


def test_a_long_period_is_cut_into_one_slice_per_core_and_a_short_one_is_not() -> None:
    start = datetime(2025, 11, 23, 3, tzinfo=timezone.utc)
    year = reports._slices(start, start + timedelta(days=365), None)
    assert len(year) == max(1, min(reports.MAX_SLICES, os.cpu_count() or 1))
    assert year[0][0] == start and year[-1][1] == start + timedelta(days=365)
    assert all(a[1] == b[0] for a, b in zip(year, year[1:]))  # no gap, no overlap
    assert reports._slices(start, start + timedelta(days=31), None) == [(start, start + timedelta(days=31))]
