"""The units settings are written in: durations, sizes and rates, and the one error type."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator


class ConfigError(Exception):
    """A setting is wrong; the message is one line naming the key."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2, "GB": 1000**3, "GiB": 1024**3}


def parse_duration(value: Any) -> float:
    """'60s', '5m', '24h', '250ms', '2d' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30s', '5m' or '24h'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as '30s', '5m' or '24h', got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("expected a duration that is not negative")
    return seconds


def parse_size(value: Any) -> int:
    """'1MiB', '512KiB', '2MB' or a number of bytes -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '1MiB'")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"expected a size such as '1MiB' or '512KiB', got {value!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


def parse_rate(value: Any) -> tuple[int, float]:
    """'5/1h' -> (5, 3600.0): at most 5 in each window of an hour."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), parse_duration(value[1])
    count, sep, window = str(value).partition("/")
    if not sep or not count.strip().isdigit():
        raise ValueError(f"expected a rate such as '5/1h' (5 per hour), got {value!r}")
    seconds = parse_duration(window)
    if seconds <= 0:
        raise ValueError("expected a window longer than zero")
    return int(count), seconds


Rate = Annotated[tuple[int, float], BeforeValidator(parse_rate)]


def parse_optional_rate(value: Any) -> tuple[int, float] | None:
    """'6000/1m' -> (6000, 60.0); 0, '0', '0/1m' or 'off' -> None (no limit)."""
    if value is None or (not isinstance(value, bool) and str(value).strip().lower() in ("0", "off")):
        return None
    rate = parse_rate(value)
    return rate if rate[0] > 0 else None  # '0/1m' allows nothing: read it as off, as '0' is


OptionalRate = Annotated[tuple[int, float] | None, BeforeValidator(parse_optional_rate)]
