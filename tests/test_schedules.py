"""Schedule files: the shipped defaults load; a bad file stops start-up naming file and key; next
runs are a pure function of `at`; the scheduler runs every sweep once at start; the CLI."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway import cli
from gateway.app import build_runtime
from gateway.config import PACKAGE_DIR, ConfigError
from gateway.rendering.templates import Templates
from gateway.sweeps.context import SweepResult
from gateway.sweeps.scheduler import SweepScheduler
from gateway.sweeps.schedules import ScheduleError, load_schedule, load_schedules
from tests.helpers import make_settings
from tests.sweep_helpers import write_schedule

SP = ZoneInfo("America/Sao_Paulo")
UTC = timezone.utc
TEMPLATES = Templates(PACKAGE_DIR / "templates", "pt-BR")
GOOD = """
kind = "deadline_reminder"
interval = "15m"
template = "deadline_reminder"
audience = "consumer"
offsets = ["48h", "24h"]
"""


@pytest.fixture(autouse=True)
def restore_logging():
    """cli.main() points the root logger at the captured stderr; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def load(tmp_path: Path, body: str, name: str = "sweep"):
    return load_schedule(write_schedule(tmp_path, name, body), templates=TEMPLATES,
                         default_timezone="America/Sao_Paulo")


def test_the_shipped_schedules_load_against_the_shipped_templates():
    schedules = load_schedules(PACKAGE_DIR / "schedules", templates=TEMPLATES, default_timezone="America/Sao_Paulo")
    kinds = {s.name: s.kind for s in schedules}
    assert kinds == {"deadline-reminder": "deadline_reminder", "deadline-warning": "deadline_reminder",
                     "operations-digest": "operations_digest", "overdue-alert": "overdue_alert",
                     "retention-expiry": "anonymize", "retention-notice": "retention_notice",
                     "confirmation-overdue": "confirmation_overdue"}
    for name in ("deadline_reminder", "deadline_warning", "overdue_alert", "operations_digest", "retention_notice",
                 "confirmation_overdue"):
        consumer = name == "deadline_reminder"  # consumer templates also speak Spain's co-official languages
        assert TEMPLATES.locales(name) == (["ca", "en", "es", "eu", "gl", "pt-BR"] if consumer else ["en", "es", "pt-BR"]), name


def test_a_good_file_and_its_defaults(tmp_path):
    s = load(tmp_path, GOOD, "consumer-reminder")
    assert (s.name, s.audience, s.channels, s.timezone) == ("consumer-reminder", "consumer", ("email", "sms"),
                                                            "America/Sao_Paulo")
    assert [o.label for o in s.offsets] == ["48h", "24h"] and s.offsets[0].seconds == 172800
    assert (s.options.max_lateness, s.options.lookback, s.options.batch_size) == (21600, 30 * 86400, 500)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("kind = 'reminders'\ncron = '* * * * *'", r"sweep\.toml: kind: expected one of deadline_reminder"),
        (GOOD.replace('interval = "15m"', 'cron = "61 * * * *"'), r"sweep\.toml: cron: .*61"),
        (GOOD.replace('interval = "15m"', 'interval = "15m"\ncron = "* * * * *"'), r"sweep\.toml: cron: give either"),
        (GOOD.replace('interval = "15m"', ''), r"sweep\.toml: cron: give either"),
        (GOOD.replace('"24h"', '"soon"'), r"sweep\.toml: offsets\[1\]: expected a duration"),
        (GOOD.replace('offsets = ["48h", "24h"]', ''), r"sweep\.toml: offsets: required"),
        (GOOD + "[options]\nspeed = 3\n", r"sweep\.toml: options\.speed: not an option"),
        (GOOD + "[options]\nbatch_size = 0\n", r"sweep\.toml: options\.batch_size: expected a whole number"),
        (GOOD + "[options]\nmax_lateness = '40d'\n", r"options\.max_lateness: must not be longer than options\.lookback"),
        (GOOD.replace('"deadline_reminder"\ninterval', '"deadline_reminder"\ninterval').replace(
            'template = "deadline_reminder"', 'template = "overdue_alert"'),
         r"sweep\.toml: template: 'overdue_alert' is written for operations, not for consumer"),
        (GOOD.replace('template = "deadline_reminder"', 'template = "nope"'), r"sweep\.toml: template: 'nope'"),
        (GOOD + "colour = 'blue'\n", r"sweep\.toml: colour: not a known key"),
        (GOOD + "timezone = 'Mars/Olympus'\n", r"sweep\.toml: timezone: expected an IANA time zone"),
        (GOOD.replace('audience = "consumer"', 'audience = "everyone"'), r"sweep\.toml: audience: expected"),
        (GOOD.replace('"deadline_reminder"\ninterval', '"overdue_alert"\ninterval'), r"sweep\.toml: audience: a overdue_alert goes to operations only"),
        ("kind = 'operations_digest'\ninterval = '1h'\ntemplate = 'operations_digest'",
         r"sweep\.toml: interval: an operations_digest runs once per period"),
        ("kind = [", r"sweep\.toml: not valid TOML"),
    ],
)
def test_a_bad_file_names_file_and_key_in_one_line(tmp_path, body, message):
    with pytest.raises(ScheduleError, match=message) as caught:
        load(tmp_path, body)
    assert str(caught.value).startswith("schedules: sweep.toml: ") and "\n" not in str(caught.value)
    assert isinstance(caught.value, ConfigError)


def test_two_files_may_not_share_a_name(tmp_path):
    write_schedule(tmp_path, "a", GOOD + 'name = "same"\n')
    write_schedule(tmp_path, "b", GOOD + 'name = "same"\n')
    with pytest.raises(ScheduleError, match=r"^schedules: b\.toml: name: 'same' is already the name of a\.toml$"):
        load_schedules(tmp_path, templates=TEMPLATES, default_timezone="UTC")


def test_next_runs_are_a_function_of_at(tmp_path):
    daily = load(tmp_path, "kind = 'operations_digest'\ncron = '0 8 * * 1-5'\ntemplate = 'operations_digest'", "d")
    friday_evening = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)  # 18:00 in São Paulo
    assert [r.isoformat() for r in daily.next_runs(friday_evening, 3)] == [
        "2026-11-23T08:00:00-03:00", "2026-11-24T08:00:00-03:00", "2026-11-25T08:00:00-03:00"]
    assert daily.previous_run(datetime(2026, 11, 23, 14, tzinfo=UTC), 86400).isoformat() == "2026-11-23T08:00:00-03:00"
    assert daily.previous_run(datetime(2026, 11, 23, 10, tzinfo=UTC), 86400) is None  # 07:00 there: none in a day
    quarter = load(tmp_path, GOOD, "q")
    runs = quarter.next_runs(datetime(2026, 11, 22, 14, 50, 30, tzinfo=UTC), 2)
    assert [r.astimezone(UTC).strftime("%H:%M") for r in runs] == ["15:00", "15:15"]  # round quarters
    weekdays = load(tmp_path, "kind='operations_digest'\ncron='0 8 * * 0,6'\ntemplate='operations_digest'", "w")
    assert [r.strftime("%a") for r in weekdays.next_runs(friday_evening, 3)] == ["Sat", "Sun", "Sat"]
    madrid = load(tmp_path, "kind='operations_digest'\ncron='0 9 * * *'\ntimezone='Europe/Madrid'\n"
                            "template='operations_digest'", "m")
    assert madrid.next_runs(datetime(2027, 3, 27, 12, tzinfo=UTC), 2)[1].astimezone(UTC).hour == 7  # CEST from 28 March


def test_a_bad_schedule_stops_the_runtime_and_the_cli_with_one_line(tmp_path, capsys):
    folder = tmp_path / "schedules"
    write_schedule(folder, "broken", GOOD.replace('"24h"', '"tomorrow"'))
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/g.db", schedules={"dir": str(folder)})
    with pytest.raises(ConfigError, match=r"^schedules: broken\.toml: offsets\[1\]: "):
        build_runtime(settings)
    config = tmp_path / "settings.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/g.db"\n[schedules]\ndir = "{folder}"\n')
    assert cli.main(["--config", str(config), "schedules", "list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("schedules: broken.toml: offsets[1]: expected a duration")


def test_cli_list_and_run(tmp_path, capsys):
    config = tmp_path / "settings.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/g.db"\n'
                      '[operations]\nemails = ["ops@example.com"]\n')
    assert cli.main(["--config", str(config), "schedules", "list", "--at", "2026-11-22T12:00", "--count", "2"]) == 0
    out = capsys.readouterr().out
    assert "operations-digest\n  operations_digest -> operations (email)" in out
    assert "next: 2026-11-23 08:00 -03, 2026-11-24 08:00 -03" in out

    assert cli.main(["--config", str(config), "migrate"]) == 0  # only run and migrate create a database
    capsys.readouterr()
    assert cli.main(["--config", str(config), "schedules", "run", "operations-digest", "--at", "2026-11-23T08:30",
                     "--dry-run"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert (result["schedule"], result["dry_run"], result["enqueued"]) == ("operations-digest", True, 1)
    assert "operations-digest: digest for 2026-11-23T08:00" in captured.err

    assert cli.main(["--config", str(config), "schedules", "run", "nope"]) == 2
    assert "no schedule 'nope'; known: confirmation-overdue, deadline-reminder" in capsys.readouterr().err


class FakeRunner:
    def __init__(self, settings):
        self.settings = settings
        self.runs: list[tuple[str, datetime]] = []

    async def run(self, schedule, *, at):
        self.runs.append((schedule.name, at))
        return SweepResult(schedule.name, schedule.kind, at)


async def test_the_scheduler_registers_every_enabled_sweep_and_runs_each_once_at_start(tmp_path, caplog):
    write_schedule(tmp_path, "a", GOOD)
    write_schedule(tmp_path, "b", "kind='operations_digest'\ncron='0 8 * * *'\ntemplate='operations_digest'")
    write_schedule(tmp_path, "c", GOOD + "enabled = false\n")
    schedules = load_schedules(tmp_path, templates=TEMPLATES, default_timezone="America/Sao_Paulo")
    runner = FakeRunner(make_settings(tmp_path, "sqlite+aiosqlite:///x.db"))
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    scheduler = SweepScheduler(runner, schedules, clock=lambda: now)  # type: ignore[arg-type]
    await scheduler.start()
    try:
        await scheduler.startup_done()
        assert runner.runs == [("a", now), ("b", now)]
        jobs = {job.id: job for job in scheduler._scheduler.get_jobs()}
        assert set(jobs) == {"a", "b"}
        assert jobs["a"].misfire_grace_time == 3600 and jobs["a"].coalesce is True and jobs["a"].max_instances == 1
        assert scheduler.not_ready() is None
    finally:
        await scheduler.stop()
    assert not scheduler.running and scheduler.not_ready() == "not running"
    warning = next(r for r in caplog.records if getattr(r, "action", None) == "retention_unset")
    assert warning.profiles == ["es", "co", "cl-sello-sernac", "br-bacen-ouvidoria"] and warning.levelname == "WARNING"


async def test_a_run_already_going_is_not_doubled(tmp_path):
    write_schedule(tmp_path, "a", GOOD)
    (schedule,) = load_schedules(tmp_path, templates=TEMPLATES, default_timezone="UTC")
    runner = FakeRunner(make_settings(tmp_path, "sqlite+aiosqlite:///x.db"))
    scheduler = SweepScheduler(runner, [schedule], run_at_start=False)  # type: ignore[arg-type]
    async with scheduler._locks["a"]:
        await scheduler.run(schedule)
    assert runner.runs == []
    await scheduler.run(schedule)
    assert len(runner.runs) == 1


async def test_readiness_names_the_scheduler(tmp_path, sqlite_url):
    from aiohttp.test_utils import TestClient, TestServer

    from gateway.app import prepare, web_app

    settings = make_settings(tmp_path, sqlite_url, sweeps={"run_at_start": False})
    runtime = build_runtime(settings)
    await prepare(runtime)
    async with TestClient(TestServer(web_app(runtime))) as client:
        r = await client.get("/readyz")
        assert r.status == 200, await r.text()
        assert runtime.scheduler is not None and runtime.scheduler.running
    assert not runtime.scheduler.running
