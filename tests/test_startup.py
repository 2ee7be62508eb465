"""A newcomer's first hour: start-up and the command line say what is wrong in one line.

The daemon and the commands run as a user runs them (subprocesses), against a closed port, a
role the test PostgreSQL does not know, a port another process holds, a folder without
settings, a schema left behind, and TLS to PostgreSQL through a front that speaks its upgrade.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from alembic import command

from gateway.config import ConfigError
from gateway.store.database import Database
from gateway.store.listen import OutboxListener
from gateway.store.migrate import alembic_config, current_revision, head_revision
from gateway.store.outage import DatabaseNotReady
from gateway.store.pg_tls import postgres_target
from gateway.store.preflight import require_reachable
from tests.conftest import PG_URL
from tests.helpers import free_port
from tests.tls_helpers import PostgresTLSFront, make_certificate

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "gateway.cli"]
PASSWORD = "s3cret-Pa55"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(extra)
    return env


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout)


def not_json(stderr: str) -> list[str]:
    """The lines of stderr that are not JSON log lines: what a person is told."""
    told = []
    for line in stderr.splitlines():
        try:
            json.loads(line)
        except ValueError:
            told.append(line)
    return told


def pg_url_as(role: str) -> str:
    assert PG_URL
    parts = urlsplit(PG_URL)
    return parts._replace(netloc=f"{role}:{PASSWORD}@{parts.hostname}:{parts.port}").geturl()


def unreachable_urls() -> list:
    closed = pytest.param(f"postgresql+asyncpg://gateway:{PASSWORD}@127.0.0.1:{free_port()}/gateway",
                          "connection refused", id="closed-port")
    role = pytest.param("wrong-role", 'role "nosuchrole" does not exist', id="unknown-role",
                        marks=pytest.mark.postgres)
    return [closed, role]


def _resolve(url: str) -> str:
    if url != "wrong-role":
        return url
    if not PG_URL:
        pytest.fail("GATEWAY_TEST_DATABASE_URL is not set: run the suite with `make test`")
    return pg_url_as("nosuchrole")


# 1. The database unreachable, or an unknown role


@pytest.mark.parametrize(("url", "reason"), unreachable_urls())
@pytest.mark.parametrize("args", [["run"], ["migrate"], ["keys", "list"], ["outbox", "list"],
                                  ["protocols", "export", "20261122000000011"]], ids=" ".join)
def test_an_unreachable_database_is_one_line_naming_database_url(tmp_path: Path, url: str, reason: str,
                                                                 args: list[str]) -> None:
    url = _resolve(url)
    result = cli(tmp_path, *args, env=clean_env(GATEWAY_DATABASE__URL=url, GATEWAY_HTTP__PORT=str(free_port())))
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    told = [line for line in not_json(result.stderr) if not line.startswith("protocol-gateway: ")]
    assert len(told) == 1, result.stderr
    (line,) = told
    assert line.startswith("database.url: postgresql+asyncpg://") and reason in line, line
    assert PASSWORD not in result.stderr and ":***@" in line
    assert line.endswith("[GATEWAY_DATABASE__URL]")


def test_the_systemd_unit_backs_off_and_keeps_files_private() -> None:
    unit = (ROOT / "deploy" / "protocol-gateway.service").read_text()
    assert "UMask=0077" in unit
    assert "RestartSteps=" in unit and "RestartMaxDelaySec=" in unit  # not a restart every 2 s forever


# 2. The port in use


def test_a_port_in_use_stops_start_up_before_anything_touches_the_database(tmp_path: Path) -> None:
    shutil.copy(ROOT / "settings.toml", tmp_path / "settings.toml")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = cli(tmp_path, "run", env=clean_env(GATEWAY_HTTP__PORT=str(port)))
    assert result.returncode == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"http.port: 127.0.0.1:{port} is already in use by another process; stop it or choose another port "
        "[GATEWAY_HTTP__PORT]"]
    assert not (tmp_path / "var").exists()  # bound first: no database made, no migration, no sweep


# 3. TLS to PostgreSQL: libpq's sslmode as well as asyncpg's ssl


@pytest.mark.parametrize(("query", "expected"), [
    ("sslmode=require", "require"), ("ssl=require", "require"), ("sslmode=disable", "disable"),
    ("sslmode=prefer&application_name=gw", "prefer")])
def test_sslmode_and_ssl_become_asyncpgs_ssl_argument(query: str, expected: str) -> None:
    target = postgres_target(f"postgresql+asyncpg://gw:{PASSWORD}@db.example/gw?{query}", connect_timeout=5)
    assert target.connect_args == {"ssl": expected, "timeout": 5}
    assert "ssl" not in target.url.split("?", 1)[-1].replace("application_name", "")
    assert target.url.startswith(f"postgresql+asyncpg://gw:{PASSWORD}@db.example/gw")


@pytest.mark.parametrize("query", ["sslmode=sometimes", "ssl=require&sslmode=disable",
                                   "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"])
def test_a_tls_option_that_cannot_work_is_one_line_naming_database_url(query: str) -> None:
    with pytest.raises(ConfigError, match=r"^database\.url: ") as caught:
        Database(f"postgresql+asyncpg://gw:{PASSWORD}@db.example/gw?{query}")
    assert "\n" not in str(caught.value) and PASSWORD not in str(caught.value)


@pytest.fixture
def pg_address() -> tuple[str, int]:
    if not PG_URL:
        pytest.fail("GATEWAY_TEST_DATABASE_URL is not set: run the suite with `make test`")
    parts = urlsplit(PG_URL)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def through(front: PostgresTLSFront, query: str) -> str:
    assert PG_URL
    parts = urlsplit(PG_URL)
    user = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{user}@127.0.0.1:{front.port}", query=query).geturl()


async def select_one(url: str) -> None:
    db = Database(url, connect_timeout=10)
    try:
        await require_reachable(db, "test")  # SELECT 1 over the connection
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_postgres_over_tls_with_libpq_options(tmp_path: Path, pg_address: tuple[str, int]) -> None:
    server = make_certificate(tmp_path / "server", "server")
    other = make_certificate(tmp_path / "other", "other")
    async with PostgresTLSFront(*pg_address, server) as front:
        await select_one(through(front, "sslmode=require"))  # encrypted, certificate not checked (libpq's require)
        assert front.tls_sessions == 1 and front.plain_sessions == 0
        await select_one(through(front, f"sslmode=verify-full&sslrootcert={server.cert}"))
        await select_one(through(front, f"ssl=verify-ca&sslrootcert={server.cert}"))
        assert front.tls_sessions == 3
        with pytest.raises(DatabaseNotReady, match="certificate is not trusted"):
            await select_one(through(front, f"sslmode=verify-full&sslrootcert={other.cert}"))

        # The LISTEN connection reads the same options (it used to hand ?ssl= to the server as a setting).
        listener = OutboxListener(postgres_target(through(front, "sslmode=require")), lambda: None)
        stop = asyncio.Event()
        task = asyncio.create_task(listener.run(stop))
        try:
            await asyncio.wait_for(listener.listening.wait(), timeout=15)
        finally:
            stop.set()
            await task
    # Straight to the server, which has no TLS: one line, not a traceback.
    with pytest.raises(DatabaseNotReady, match=r"^database\.url: .*cannot connect: .*SSL"):
        await select_one(f"{PG_URL}?sslmode=require")


# 5. The command line: settings said, no database made, no migration, quiet on a closed pipe


DATABASE_COMMANDS = [["keys", "list"], ["keys", "create", "crm", "--scopes", "admin"], ["keys", "revoke", "crm"],
                     ["outbox", "list"], ["outbox", "retry", "1"], ["protocols", "export", "20261122000000011"],
                     ["protocols", "hold", "20261122000000011"], ["schedules", "run", "overdue-alert"]]


@pytest.mark.parametrize("args", DATABASE_COMMANDS, ids=" ".join)
def test_no_command_but_run_and_migrate_creates_a_database(tmp_path: Path, args: list[str]) -> None:
    result = cli(tmp_path, *args)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    first, line = result.stderr.strip().splitlines()
    assert first == "protocol-gateway: no settings file: defaults"
    assert line == (f"database.url: sqlite+aiosqlite:///{tmp_path}/var/gateway.db: the database does not exist; "
                    "create it with `protocol-gateway migrate` (or start the daemon: `protocol-gateway run`) "
                    "[defaults]")
    assert not (tmp_path / "var").exists()


def test_every_command_says_which_settings_file_it_reads(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "gw.toml").write_text('[gateway]\ndefault_locale = "es"\n')
    for args in (["templates", "list"], ["schedules", "list"]):
        named = cli(tmp_path, "--config", "conf/gw.toml", *args)
        assert named.returncode == 0, named.stderr
        assert named.stderr.splitlines()[0] == f"protocol-gateway: settings from {tmp_path / 'conf' / 'gw.toml'}"
        found = cli(tmp_path / "conf", *args, env=clean_env(GATEWAY_CONFIG="gw.toml", GATEWAY_HTTP__PORT="9"))
        assert found.stderr.splitlines()[0] == (f"protocol-gateway: settings from {tmp_path / 'conf' / 'gw.toml'}, "
                                                "and 1 GATEWAY_* variable")
        none = cli(tmp_path, *args)
        assert none.stderr.splitlines()[0] == "protocol-gateway: no settings file: defaults"


def _at_revision(url: str, revision: str) -> None:
    async def go() -> None:
        db = Database(url)
        try:
            async with db.writer.begin() as conn:
                await conn.run_sync(lambda c: command.upgrade(alembic_config(c), revision))
        finally:
            await db.dispose()

    asyncio.run(go())


def _revision(url: str) -> str | None:
    async def go() -> str | None:
        db = Database(url)
        try:
            return await current_revision(db)
        finally:
            await db.dispose()

    return asyncio.run(go())


def test_commands_never_migrate_and_refuse_a_schema_behind(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/gw.db"
    env = clean_env(GATEWAY_DATABASE__URL=url)
    (tmp_path / "gw.db").touch()  # there, but empty
    empty = cli(tmp_path, "keys", "list", env=env)
    assert empty.returncode == 2
    assert empty.stderr.splitlines()[-1].endswith("the database has no schema yet; create it with "
                                                  "`protocol-gateway migrate` (or start the daemon: "
                                                  "`protocol-gateway run`) [GATEWAY_DATABASE__URL]")
    _at_revision(url, "0001")
    head = head_revision()
    for args in (["keys", "list"], ["outbox", "list"], ["protocols", "export", "1234567"],
                 ["keys", "create", "crm", "--scopes", "admin"], ["outbox", "requeue", "--status", "dead"]):
        behind = cli(tmp_path, *args, env=env)
        assert behind.returncode == 2, (args, behind.stderr)
        assert behind.stderr.splitlines()[-1] == (f"database.url: {url}: the schema is at revision 0001, this version "
                                                  f"needs {head}: run `protocol-gateway migrate` first "
                                                  "[GATEWAY_DATABASE__URL]")
        assert _revision(url) == "0001"  # not migrated behind the operator's back
    migrated = cli(tmp_path, "migrate", env=env)
    assert migrated.returncode == 0 and migrated.stdout == f"database at revision {head} (was 0001)\n"
    listed = cli(tmp_path, "keys", "list", env=env)
    assert listed.returncode == 0 and listed.stdout.startswith("NAME")


def test_version() -> None:
    from importlib.metadata import version

    result = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=60, env=clean_env())
    assert result.returncode == 0 and result.stdout == f"protocol-gateway {version('protocol-gateway')}\n"


@pytest.mark.parametrize("args", [["templates", "list"], ["templates", "preview", "protocol_opened"],
                                  ["schedules", "list"], ["keys", "list"], ["outbox", "list"]], ids=" ".join)
def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path, args: list[str]) -> None:
    env = clean_env(GATEWAY_DATABASE__URL=f"sqlite+aiosqlite:///{tmp_path}/gw.db")
    assert cli(tmp_path, "migrate", env=env).returncode == 0
    # `protocol-gateway ... | head`: the reader has closed its end before the command writes.
    process = subprocess.Popen([*CLI, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, stderr  # as a tool ended by SIGPIPE
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr and "Exception ignored" not in stderr
