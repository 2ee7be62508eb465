"""Schedules: one TOML file per sweep in `schedules/`, loaded and checked at start.

A file says what the sweep does (`kind`), when (`cron` or `interval`, in `timezone`), with
which template, to whom (`audience`), at which `offsets` before the moment it is about, and
its `options`. Anything wrong stops start-up with one line naming the file and the key.

When a sweep next runs is a pure function of `at` (arq's cron habit): `next_runs(at)` and
`previous_run(at)` use APScheduler's triggers without a scheduler, so the CLI and the
tests can ask without a clock.
"""

from __future__ import annotations

import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from gateway.config import ConfigError, parse_duration
from gateway.rendering.templates import CHANNEL_FILES, TemplateError, Templates

KINDS = ("deadline_reminder", "overdue_alert", "operations_digest", "retention_notice", "anonymize",
         "confirmation_overdue")
AUDIENCES = ("consumer", "operations")
# Interval schedules are anchored here, so their runs fall on round times (:00, :15...).
INTERVAL_ANCHOR = datetime(2000, 1, 3)  # a Monday
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
_KEYS = {"name", "kind", "description", "enabled", "cron", "interval", "timezone", "template", "audience",
         "channels", "offsets", "options"}
_OPTION_DEFAULTS: dict[str, dict[str, Any]] = {
    # max_lateness: a moment passed longer ago than this is skipped and recorded, not sent late.
    # lookback: how far back a run looks for moments not yet handled (the catch-up horizon).
    "deadline_reminder": {"max_lateness": 6 * 3600.0, "lookback": 30 * 86400.0},
    "overdue_alert": {"max_lateness": None, "lookback": 30 * 86400.0},
    "confirmation_overdue": {"max_lateness": None, "lookback": 30 * 86400.0},
    "operations_digest": {"max_lateness": 12 * 3600.0, "list_limit": 50},
    "retention_notice": {"list_limit": 500},
    "anonymize": {"lookback": 30 * 86400.0, "list_limit": 500},
}
_COMMON_OPTIONS = {"batch_size": 500}
_NEEDS_OFFSETS = ("deadline_reminder", "retention_notice")


class ScheduleError(ConfigError):
    """A schedule file is wrong: one line naming the file and the key."""

    def __init__(self, file: Path | str, key: str | None, message: str) -> None:
        where = f"{Path(file).name}: {key}" if key else Path(file).name
        super().__init__(f"schedules: {where}: {message}")


@dataclass(frozen=True)
class Offset:
    label: str      # as written: "48h"
    seconds: float

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Options:
    batch_size: int = 500
    max_lateness: float | None = None   # seconds; None: never too late
    lookback: float | None = None       # seconds; None: no bound
    list_limit: int = 50                # numbers listed in a report

    def get(self, name: str) -> Any:
        return getattr(self, name)


@dataclass(frozen=True)
class Schedule:
    name: str
    kind: str
    file: Path
    timezone: str
    template: str | None
    audience: str
    channels: tuple[str, ...]
    cron: str | None = None
    interval: float | None = None       # seconds
    offsets: tuple[Offset, ...] = ()
    options: Options = field(default_factory=Options)
    enabled: bool = True
    description: str = ""

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def when(self) -> str:
        what = f"cron '{self.cron}'" if self.cron else f"every {_seconds_label(self.interval or 0)}"
        return f"{what} {self.timezone}"

    def trigger(self) -> BaseTrigger:
        if self.cron:
            return cron_trigger(self.cron, self.zone)
        return IntervalTrigger(seconds=int(self.interval or 0), start_date=INTERVAL_ANCHOR.replace(tzinfo=self.zone),
                               timezone=self.zone)

    def next_runs(self, at: datetime, count: int = 3) -> list[datetime]:
        """The next `count` runs strictly after `at`, in the schedule's time zone."""
        trigger = self.trigger()
        runs: list[datetime] = []
        previous = None
        now = at + timedelta(microseconds=1)
        while len(runs) < count:
            fire = trigger.get_next_fire_time(previous, now)
            if fire is None:
                break
            runs.append(fire)
            previous, now = fire, fire
        return runs

    def previous_run(self, at: datetime, within: float) -> datetime | None:
        """The last run at or before `at`, looking back `within` seconds; None if there was none."""
        trigger = self.trigger()
        start = at - timedelta(seconds=within)
        fire = trigger.get_next_fire_time(None, start)
        last = None
        while fire is not None and fire <= at:
            last = fire
            fire = trigger.get_next_fire_time(fire, fire)
        return last


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(expression: str, zone: zoneinfo.ZoneInfo) -> CronTrigger:
    """A crontab line as cron means it. APScheduler 3 reads a numeric day of week with 0 as
    Monday (cron: 0 and 7 are Sunday), so that field is given to it as day names."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"Wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, weekday = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_weekday_names(weekday),
                       timezone=zone)


def _weekday_names(field: str) -> str:
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        spec, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"day of week: bad step in {part!r}")
        if spec == "*":
            start, end = 0, 6
        else:
            first, _, last = spec.partition("-")
            start = _weekday_number(first)
            end = _weekday_number(last) if last else (6 if step_text else start)
            if end < start:
                raise ValueError(f"day of week: {part!r} runs backwards")
        days.update(d % 7 for d in range(start, end + 1, step))
    return ",".join(_DAYS[d] for d in sorted(days))


def _weekday_number(token: str) -> int:
    if token in _DAYS:
        return _DAYS.index(token)
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    raise ValueError(f"day of week: expected 0-7 (0 and 7 are Sunday) or sun-sat, got {token!r}")


def _seconds_label(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def load_schedules(folder: Path, *, templates: Templates | None, default_timezone: str,
                   default_locale: str = "pt-BR") -> list[Schedule]:
    """Every `*.toml` in `folder`, checked; a ScheduleError names the first thing wrong."""
    schedules: list[Schedule] = []
    seen: dict[str, Path] = {}
    for file in sorted(Path(folder).glob("*.toml")):
        schedule = load_schedule(file, templates=templates, default_timezone=default_timezone,
                                 default_locale=default_locale)
        if schedule.name in seen:
            raise ScheduleError(file, "name", f"{schedule.name!r} is already the name of {seen[schedule.name].name}")
        seen[schedule.name] = file
        schedules.append(schedule)
    return schedules


def load_schedule(file: Path, *, templates: Templates | None, default_timezone: str,
                  default_locale: str = "pt-BR") -> Schedule:
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScheduleError(file, None, f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScheduleError(file, None, f"cannot read: {exc}") from None
    return _parse(file, data, templates, default_timezone, default_locale)


def _parse(file: Path, data: dict[str, Any], templates: Templates | None, default_timezone: str,
           default_locale: str) -> Schedule:
    def fail(key: str | None, message: str) -> ScheduleError:
        return ScheduleError(file, key, message)

    for key in data:
        if key not in _KEYS:
            raise fail(key, f"not a known key; expected one of {', '.join(sorted(_KEYS))}")
    name = data.get("name", file.stem)
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("name", f"expected lower-case letters, digits, '-' or '_' (at most 60), got {name!r}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise fail("kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("enabled", f"expected true or false, got {enabled!r}")

    timezone = data.get("timezone", default_timezone)
    try:
        zone = zoneinfo.ZoneInfo(str(timezone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise fail("timezone", f"expected an IANA time zone such as 'America/Sao_Paulo', got {timezone!r}") from None

    cron, interval = data.get("cron"), data.get("interval")
    if (cron is None) == (interval is None):
        raise fail("cron", "give either 'cron' (e.g. '*/15 * * * *') or 'interval' (e.g. '15m'), not both nor neither")
    if cron is not None:
        if not isinstance(cron, str):
            raise fail("cron", f"expected a crontab expression such as '0 8 * * *', got {cron!r}")
        try:
            cron_trigger(cron, zone)
        except ValueError as exc:
            raise fail("cron", f"{exc} (got {cron!r})") from None
    else:
        try:
            interval = parse_duration(interval)
        except ValueError as exc:
            raise fail("interval", str(exc)) from None
        if interval < 60 or interval % 1:
            raise fail("interval", "expected whole seconds, at least '1m'")
    if kind == "operations_digest" and cron is None:
        raise fail("interval", "an operations_digest runs once per period: give a 'cron' such as '0 8 * * *'")

    audience = data.get("audience", "operations")
    if audience not in AUDIENCES:
        raise fail("audience", f"expected 'consumer' or 'operations', got {audience!r}")
    if audience == "consumer" and kind != "deadline_reminder":
        raise fail("audience", f"a {kind} goes to operations only")
    channels = data.get("channels", ["email", "sms"] if audience == "consumer" else ["email"])
    if not isinstance(channels, list) or not channels or any(c not in CHANNEL_FILES for c in channels):
        raise fail("channels", f"expected a list of 'email', 'sms' and 'whatsapp', got {channels!r}")
    if audience == "operations" and channels != ["email"]:
        raise fail("channels", "operations are written to by email only")
    if len(set(channels)) != len(channels):
        raise fail("channels", f"{channels!r} names a channel twice")

    offsets = _offsets(data.get("offsets"), kind, fail)
    options = _options(data.get("options", {}), kind, fail)
    template = data.get("template")
    if template is None and kind != "anonymize":
        raise fail("template", "required: the template the sweep renders")
    if template is not None:
        _check_template(template, audience, channels, templates, default_locale, fail)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "expected text")
    return Schedule(name=name, kind=kind, file=file, timezone=str(timezone), template=template, audience=audience,
                    channels=tuple(channels), cron=cron, interval=interval, offsets=offsets, options=options,
                    enabled=enabled, description=description)


def _offsets(raw: Any, kind: str, fail: Any) -> tuple[Offset, ...]:
    if raw is None:
        if kind in _NEEDS_OFFSETS:
            raise fail("offsets", "required: how long before the moment, e.g. [\"48h\", \"24h\"]")
        return ()
    if kind not in _NEEDS_OFFSETS:
        raise fail("offsets", f"not used by a {kind}")
    if not isinstance(raw, list) or not raw:
        raise fail("offsets", f"expected a list of durations such as [\"48h\", \"24h\"], got {raw!r}")
    offsets: list[Offset] = []
    for i, value in enumerate(raw):
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise fail(f"offsets[{i}]", str(exc)) from None
        if seconds <= 0:
            raise fail(f"offsets[{i}]", "expected a duration longer than zero")
        label = str(value).strip() if isinstance(value, str) else _seconds_label(seconds)
        if not re.fullmatch(r"[0-9a-z.]{1,16}", label):
            raise fail(f"offsets[{i}]", f"expected a duration such as '48h', got {value!r}")
        offsets.append(Offset(label, seconds))
    if len({o.seconds for o in offsets}) != len(offsets):
        raise fail("offsets", f"{raw!r} gives the same offset twice")
    return tuple(sorted(offsets, key=lambda o: -o.seconds))


def _options(raw: Any, kind: str, fail: Any) -> Options:
    if not isinstance(raw, dict):
        raise fail("options", "expected a table, e.g. [options]")
    values: dict[str, Any] = {**_COMMON_OPTIONS, **_OPTION_DEFAULTS[kind]}
    for key, value in raw.items():
        if key not in values:
            raise fail(f"options.{key}", f"not an option of a {kind}; expected one of {', '.join(sorted(values))}")
        if key in ("max_lateness", "lookback"):
            if value is False or value == "none":
                values[key] = None
                continue
            try:
                values[key] = parse_duration(value)
            except ValueError as exc:
                raise fail(f"options.{key}", f"{exc}, or \"none\"") from None
        else:
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
                raise fail(f"options.{key}", f"expected a whole number from 1 to 10000, got {value!r}")
            values[key] = value
    lateness, lookback = values.get("max_lateness"), values.get("lookback")
    if lateness is not None and lookback is not None and lateness > lookback:
        raise fail("options.max_lateness", "must not be longer than options.lookback")
    return Options(**values)


def _check_template(template: Any, audience: str, channels: list[str], templates: Templates | None,
                    default_locale: str, fail: Any) -> None:
    if not isinstance(template, str):
        raise fail("template", f"expected a template name, got {template!r}")
    if templates is None:
        return
    try:
        manifest = templates.manifest(template)
        locale = templates.resolve_locale(template, default_locale)
    except TemplateError as exc:
        raise fail("template", f"{template!r}: {exc}") from None
    if manifest.audience != audience:
        raise fail("template", f"{template!r} is written for {manifest.audience}, not for {audience}")
    for channel in channels:
        for name in CHANNEL_FILES[channel]:
            if not (templates.folder / template / locale / name).is_file():
                raise fail("template", f"{template!r} has no {channel} ({template}/{locale}/{name} is missing)")
