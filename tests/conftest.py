"""Shared fixtures: real SQLite and real PostgreSQL, real servers on loopback.

PostgreSQL comes from `make test` (scripts/with-postgres.sh sets GATEWAY_TEST_DATABASE_URL).
The schema is migrated once per session into a template, and each test gets a fresh copy:
a file copy on SQLite, `CREATE DATABASE ... TEMPLATE` on PostgreSQL (procrastinate's way).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.app import Runtime, build_runtime
from gateway.config import Settings
from gateway.store.database import Database
from gateway.store.migrate import migrate
from tests.fakes.smtp_sink import SMTPSink
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import make_settings

PG_URL = os.environ.get("GATEWAY_TEST_DATABASE_URL")
# One template per test process: two suites on one server (developers, CI) must not collide.
PG_TEMPLATE = f"gateway_template_{os.getpid()}"
_counter = itertools.count()


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def run_isolated(coro: Any) -> Any:
    """Run a coroutine to completion on a loop of its own, even when called from inside a test's loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _migrate_url(url: str) -> None:
    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    run_isolated(_migrate_url(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("GATEWAY_TEST_DATABASE_URL is not set: run the suite with `make test`")
        pytest.skip("PostgreSQL tests need GATEWAY_TEST_DATABASE_URL (make test sets it)")

    async def build() -> None:
        conn = await asyncpg.connect(_plain(PG_URL))
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {PG_TEMPLATE}")
            await conn.execute(f"CREATE DATABASE {PG_TEMPLATE}")
        finally:
            await conn.close()
        await _migrate_url(_with_database(PG_URL, PG_TEMPLATE))

    run_isolated(build())
    yield _with_database(PG_URL, PG_TEMPLATE)
    run_isolated(_drop_pg(PG_TEMPLATE))


async def _clone_pg(name: str) -> str:
    assert PG_URL
    conn = await asyncpg.connect(_plain(PG_URL))
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {PG_TEMPLATE}")
    finally:
        await conn.close()
    return _with_database(PG_URL, name)


async def _drop_pg(name: str) -> None:
    assert PG_URL
    conn = await asyncpg.connect(_plain(PG_URL))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def db_url(engine_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A freshly migrated, empty database of each kind."""
    if engine_name == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "gateway.db"
        shutil.copy(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    request.getfixturevalue("pg_template")
    name = f"gw_test_{os.getpid()}_{next(_counter)}"
    url = await _clone_pg(name)
    yield url
    await _drop_pg(name)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "gateway.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    db = Database(db_url)
    yield db
    await db.dispose()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = build_runtime(settings)
    yield rt
    await rt.aclose()


@pytest.fixture
def project_root() -> Iterator[Path]:
    yield Path(__file__).resolve().parent.parent


@pytest.fixture
async def sink() -> AsyncIterator[SMTPSink]:
    """The real aiosmtpd server on loopback, recording what it receives."""
    async with SMTPSink() as s:
        yield s


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    """A local fake of Twilio's HTTP API, for the real Twilio SDK."""
    async with FakeTwilio() as fake:
        yield fake
