"""The sqlite driver path (store/sqlite_driver.py) writes a datetime as the same text SQLAlchemy's
UTCDateTime writes for it: rows of both paths sort and compare as one column."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from gateway.store.sqlite_driver import datetime_text, stored_datetime
from gateway.store.types import UTCDateTime

VALUES = [
    datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc),  # no microseconds: still written
    datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-3))),  # another zone: stored in UTC
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=45))),
    datetime(999, 3, 4, 5, 6, 7, tzinfo=timezone.utc),  # a year of three digits: zero-padded
]


def _one_column_table(path: Path) -> tuple[sa.Engine, sa.Table]:
    """A SQLite file with one UTCDateTime column `at`, through SQLAlchemy's own (sync) driver."""
    table = sa.Table("t", sa.MetaData(), sa.Column("at", UTCDateTime()))
    engine = sa.create_engine(f"sqlite:///{path}")
    table.metadata.create_all(engine)
    return engine, table


@pytest.mark.parametrize("value", VALUES, ids=str)
def test_a_datetime_is_the_text_sqlalchemy_writes(tmp_path: Path, value: datetime) -> None:
    path = tmp_path / "t.db"
    engine, table = _one_column_table(path)
    with engine.begin() as conn:
        conn.execute(table.insert(), {"at": value})
    engine.dispose()
    (stored,) = sqlite3.connect(path).execute("SELECT at FROM t").fetchone()
    assert datetime_text(value) == stored


def test_a_naive_datetime_is_refused() -> None:
    for _ in range(2):  # the texts are remembered; a refusal is not
        with pytest.raises(ValueError, match="naive"):
            datetime_text(datetime(2026, 11, 22, 14, 43))


def test_the_two_times_of_the_hour_the_clocks_go_back_are_two_texts() -> None:
    # They compare and hash equal in their zone though an hour apart: never one for the other.
    zone = ZoneInfo("America/New_York")
    first, second = datetime(2025, 11, 2, 1, 30, tzinfo=zone), datetime(2025, 11, 2, 1, 30, tzinfo=zone, fold=1)
    for _ in range(2):
        assert (datetime_text(first), datetime_text(second)) == ("2025-11-02 05:30:00.000000",
                                                                 "2025-11-02 06:30:00.000000")
        assert (datetime_text(second), datetime_text(first)) == ("2025-11-02 06:30:00.000000",
                                                                 "2025-11-02 05:30:00.000000")


def test_the_same_instant_in_another_zone_is_the_same_text() -> None:
    at = datetime(2026, 11, 22, 14, 43, 1, 5, tzinfo=timezone.utc)
    in_brasilia = at.astimezone(timezone(timedelta(hours=-3)))
    assert datetime_text(at) == datetime_text(in_brasilia) == "2026-11-22 14:43:01.000005"
    assert datetime_text(in_brasilia + timedelta(microseconds=1)) == "2026-11-22 14:43:01.000006"


# Read back: UTCDateTime's own way from SQLite's text (store/types.py) gives what SQLAlchemy's
# longer way gave, for every shape of text a store may hold.
READ_BACK = [
    ("2026-11-22 14:43:00.000000", datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)),
    ("2026-11-22 14:43:01.000005", datetime(2026, 11, 22, 14, 43, 1, 5, tzinfo=timezone.utc)),
    ("0999-03-04 05:06:07.000000", datetime(999, 3, 4, 5, 6, 7, tzinfo=timezone.utc)),
    ("2026-11-22 14:43:01", datetime(2026, 11, 22, 14, 43, 1, tzinfo=timezone.utc)),  # written by hand
    ("2026-11-22T14:43:01", datetime(2026, 11, 22, 14, 43, 1, tzinfo=timezone.utc)),
    # A date alone: Python would read "2026-11-22+00:00" as midnight with no zone.
    ("2026-11-22", datetime(2026, 11, 22, tzinfo=timezone.utc)),
    ("2026-11-22 14:43:01+02:00", datetime(2026, 11, 22, 12, 43, 1, tzinfo=timezone.utc)),  # an offset kept
    ("2026-11-22 14:43:01Z", datetime(2026, 11, 22, 14, 43, 1, tzinfo=timezone.utc)),
    ("2026-11-22 14:43:01.123", datetime(2026, 11, 22, 14, 43, 1, 123000, tzinfo=timezone.utc)),
    (None, None),
]


@pytest.mark.parametrize(("stored", "expected"), READ_BACK, ids=str)
def test_the_text_reads_back_as_the_aware_utc_datetime(tmp_path: Path, stored: str | None,
                                                        expected: datetime | None) -> None:
    path = tmp_path / "t.db"
    engine, table = _one_column_table(path)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t (at) VALUES (:at)"), {"at": stored})
        read = conn.execute(sa.select(table.c.at)).scalar_one()
    engine.dispose()
    assert read == expected
    assert read is None or read.tzinfo is timezone.utc
    assert stored_datetime(stored) == expected  # the driver's path (the outbox's claim) reads it the same


@pytest.mark.parametrize("stored", ["2026-11-22 14:43:071", "2026-11-22 14:431", "2026-11-22 14:43:01.12345x"])
def test_a_malformed_text_is_refused_as_it_always_was(tmp_path: Path, stored: str) -> None:
    # Python 3.11 reads some of these without a word once an offset is appended ("14:43:071" as
    # 14:43:07): only the shapes written by us take that path.
    path = tmp_path / "t.db"
    engine, table = _one_column_table(path)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t (at) VALUES (:at)"), {"at": stored})
        with pytest.raises(ValueError):
            conn.execute(sa.select(table.c.at)).scalar_one()
    engine.dispose()
    with pytest.raises(ValueError):
        stored_datetime(stored)
