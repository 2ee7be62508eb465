"""Generated bad (and good) input: schemathesis drives every operation of /openapi.json.

The daemon's web app serves on loopback in a thread of its own (on SQLite, dispatcher and all),
and schemathesis generates requests from the published spec, with a valid admin key: data
that fits the schema (positive) and data that does not (negative). Every answer must be no
500, and must match the spec: a status it lists, its content type, its body's schema.
Bounded examples keep the fast suite fast; `make test-all` runs many more.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.api.openapi import build_spec
from gateway.api.routes import _version, build_web_app
from gateway.app import build_runtime, prepare, web_app
from gateway.protocols.schemas import OpenedData
from gateway.protocols.service import IncomingEvent
from tests.conftest import _clone_pg, _drop_pg, run_isolated
from tests.helpers import admin_key, make_settings, opened_event

SPEC = build_spec(_version())
SCHEMA = schemathesis.openapi.from_dict(SPEC)
# Every request carries our key, so the generator must not leave the bearer scheme's header out as a
# negative mutation: the key added back undoes it, and a case whose other mutation vanished on the way
# (a query parameter of None is not sent) reached the app valid, was answered 200, and was reported as
# invalid data accepted. Requests without a key: tests/test_security.py.
SCHEMA.config.generation.update(with_security_parameters=False)
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance,
          # The spec and the validators agree: what the spec refuses is refused, what it allows is accepted...
          negative_data_rejection, positive_data_acceptance]
# ...but where acceptance depends on the world, which JSON Schema cannot say: a phone number that exists
# in its country's numbering plan, an address email_validator accepts, a locale CLDR knows, a contact
# for each channel to notify. There a schema-valid request may still be 422 (the spec says so).
# Search's phone and email are the same kind, and so is a day that fits YYYY-MM-DD but is none (2026-02-30),
# or a `from` after `to`.
WORLDLY = {"POST /v1/events", "POST /v1/protocols/{number}/resend", "GET /v1/protocols",
           "GET /v1/reports/compliance"}
FAST_EXAMPLES = 12
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")  # schemathesis's own
SLOW_EXAMPLES = 300
TIMEOUT = 10  # seconds for one request; the app answers in milliseconds


@dataclass
class Served:
    url: str
    key: str
    number: str  # a protocol that exists, so operations on one reach past the 404
    requests: collections.Counter[str] = field(default_factory=collections.Counter)


def _serve(folder: Path, db_url: str, ready: dict, stop: threading.Event) -> None:
    async def main() -> None:
        settings = make_settings(folder, db_url, sweeps={"enabled": False},
                                 limits={"resend_per_protocol": "1000/1h", "resend_per_contact": "1000/1h"})
        runtime = build_runtime(settings)
        await prepare(runtime)
        key = await admin_key(runtime)
        event = opened_event("fuzz-seed")
        outcome = await runtime.service.handle(
            IncomingEvent(source=event["source"], id=event["id"], type=event["type"], time=None,
                          data=OpenedData.model_validate(event["data"])),
            received_at=datetime.now(timezone.utc))
        runner = web.AppRunner(web_app(runtime), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.update(url=f"http://127.0.0.1:{port}", key=key, number=outcome.body["protocol"]["number"])
        ready["event"].set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    try:
        asyncio.run(main())
    except BaseException as exc:  # the test thread waits on `event`: tell it what went wrong
        ready["error"] = exc
        ready["event"].set()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app on SQLite, then on PostgreSQL (stricter: no NUL in text, bounded integers)."""
    folder = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), folder / "gateway.db")
        db_url, drop = f"sqlite+aiosqlite:///{folder / 'gateway.db'}", None
    else:
        request.getfixturevalue("pg_template")
        drop = f"gw_fuzz_{os.getpid()}"
        db_url = run_isolated(_clone_pg(drop))
    ready: dict = {"event": threading.Event()}
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(folder, db_url, ready, stop), daemon=True)
    thread.start()
    assert ready["event"].wait(60), "the app did not start"
    if "error" in ready:
        raise ready["error"]
    s = Served(ready["url"], ready["key"], ready["number"])
    yield s
    stop.set()
    thread.join(30)
    if drop:
        run_isolated(_drop_pg(drop))
    print(f"\nschemathesis requests ({request.param}): {sum(s.requests.values())} "
          + json.dumps(dict(sorted(s.requests.items())), ensure_ascii=False))


def exercise(served: Served, label: str, mode: GenerationMode, examples: int, *, existing: bool) -> None:
    operation = OPERATIONS[label]
    overrides = {}
    if existing and "{number}" in operation.path:
        overrides["path_parameters"] = {"number": served.number}
    session = requests.Session()
    auth = {"Authorization": f"Bearer {served.key}"}
    checks = [c for c in CHECKS if not (label in WORLDLY and c is positive_data_acceptance)]

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, **overrides))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=served.url, session=session, headers=auth, timeout=TIMEOUT)
        served.requests[f"{label} {mode.value}"] += 1
        case.validate_response(response, checks=checks, headers=auth)

    try:
        run()
    finally:
        session.close()


def _has_input(label: str, existing: bool) -> bool:
    """Negative data needs something to break: parameters or a body (not the protocol's number when
    the case fixes it to one that exists)."""
    operation = OPERATIONS[label]
    definition = SPEC["paths"][operation.path][operation.method.lower()]
    parameters = [p for p in definition.get("parameters", []) if not (existing and p["in"] == "path")]
    return bool(parameters or definition.get("requestBody"))


CASES = [(label, mode, existing) for label in sorted(OPERATIONS)
         for existing in ((False, True) if "{number}" in OPERATIONS[label].path else (False,))
         for mode in (GenerationMode if _has_input(label, existing) else (GenerationMode.POSITIVE,))]


def _id(case: tuple[str, GenerationMode, bool]) -> str:
    label, mode, existing = case
    return f"{label}-{mode.value}{'-existing' if existing else ''}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_generated_requests_get_no_500_and_answers_that_match_the_spec(served: Served, case) -> None:
    label, mode, existing = case
    exercise(served, label, mode, FAST_EXAMPLES, existing=existing)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_many_generated_requests_get_no_500_and_answers_that_match_the_spec(served: Served, case) -> None:
    label, mode, existing = case
    exercise(served, label, mode, SLOW_EXAMPLES, existing=existing)


def test_the_spec_lists_every_route_the_app_serves() -> None:
    """'Every endpoint': what the router serves is what /openapi.json describes (HEAD aside)."""
    app = build_web_app(1 << 20)
    served_routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD":
            served_routes.add((route.method.lower(), path))
    described = {(method, path) for path, item in SPEC["paths"].items() for method in item
                 if method in ("get", "post", "put", "patch", "delete")}
    assert served_routes - described == set(), "routes missing from /openapi.json"
    assert described - served_routes == set(), "/openapi.json describes routes nobody serves"


# Events shaped right, with any text a consumer or an upstream may put in them: schemathesis's
# events are mostly refused (its `data` is any object); these reach the service and the templates.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
CONTACT = st.fixed_dictionaries({}, optional={
    "name": TEXT, "email": st.emails() | TEXT, "phone": st.sampled_from(["+5511987654321", "11987654321", "+551133334444",
                                                                         "+14155550100", "123"]) | TEXT,
    "region": st.sampled_from(["BR", "US", "br", "XX"]), "locale": st.sampled_from(["pt-BR", "es", "en", "es-ES", "zz"]),
    "timezone": st.sampled_from(["America/Sao_Paulo", "Europe/Madrid", "Mars/Olympus", "UTC"])})
OPENED = st.fixed_dictionaries({"subject": TEXT, "consumer": CONTACT}, optional={
    "category": TEXT, "channel": st.sampled_from(["phone", "web", "fax"]), "profile": st.sampled_from(
        ["br-sac", "br-sac-2008", "es", "co", "cl-sello-sernac", "cl", "mars"]),
    "notify": st.lists(st.sampled_from(["email", "sms"]), max_size=2, unique=True),
    "number": st.from_regex(r"\A[0-9]{6,30}\Z") | TEXT,
    "opened_at": st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: d.isoformat()) | TEXT,
    "metadata": st.dictionaries(TEXT, TEXT | st.integers() | st.none(), max_size=3)})


def post_opened(served: Served, examples: int) -> None:
    operation = OPERATIONS["POST /v1/events"]
    auth = {"Authorization": f"Bearer {served.key}"}
    counter = iter(range(10**9))
    run_id = uuid.uuid4().hex[:8]  # the served app outlives one test: ids must not repeat across tests
    with requests.Session() as session:
        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(data=OPENED)
        def run(data: dict) -> None:
            body = {"specversion": "1.0", "id": f"shaped-{run_id}-{next(counter)}", "source": "urn:fuzz:shaped",
                    "type": "protocol.opened", "data": data}
            case = operation.Case(body=body, media_type="application/cloudevents+json")
            response = case.call(base_url=served.url, session=session, headers=auth, timeout=TIMEOUT)
            served.requests["POST /v1/events shaped"] += 1
            refusals = {409, 422} | ({400} if "\\u0000" in json.dumps(body) else set())  # NUL: see decode_json
            assert response.status_code in {202} | refusals, response.text
            case.validate_response(response, checks=[c for c in CHECKS if c is not positive_data_acceptance],
                                   headers=auth)

        run()


def test_shaped_events_with_any_text_are_accepted_or_refused_never_500(served: Served) -> None:
    post_opened(served, 60)


@pytest.mark.slow
def test_many_shaped_events_with_any_text_are_accepted_or_refused_never_500(served: Served) -> None:
    post_opened(served, 2000)
