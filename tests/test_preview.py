"""Previews: `templates preview` and `POST /v1/templates/{name}/preview`, `GET /v1/templates`."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

import gateway
from gateway.api.runtime_keys import TEMPLATES
from gateway.api.templates import PREVIEW_LIMITS, PreviewLimits
from gateway.app import build_runtime, prepare, web_app
from gateway.cli import main
from gateway.rendering.templates import Templates
from tests.helpers import admin_key, make_settings

SHIPPED = Path(gateway.__file__).parent / "templates"
NAME = "protocol_opened"
NUMBER = "2026112200000017"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(SHIPPED / NAME, target / NAME)
    shutil.copytree(SHIPPED / NAME, target / "broken")
    shutil.copytree(SHIPPED / "_partials", target / "_partials")  # the pieces the emails share
    (target / "broken" / "pt-BR" / "sms.j2").write_text("Protocolo {{ protocol.number }}\n{{ protocol.numbr }}\n")
    return target


@pytest.fixture
async def client(tmp_path: Path, sqlite_url: str, folder: Path) -> AsyncIterator[TestClient]:
    (tmp_path / "no_schedules").mkdir()  # the shipped sweeps name templates this folder does not have
    settings = make_settings(tmp_path, sqlite_url, templates={"dir": str(folder)}, sms={"transliterate": True},
                             schedules={"dir": str(tmp_path / "no_schedules")})
    runtime = build_runtime(settings)
    await prepare(runtime)
    async with TestClient(TestServer(web_app(runtime))) as c:
        c.keys = {"test_key": await admin_key(runtime, ["templates:read"]),  # type: ignore[attr-defined]
                  "other_key": await admin_key(runtime, ["protocols:read"])}
        yield c


def auth(client: TestClient, which: str = "test_key") -> dict[str, str]:
    return {"Authorization": f"Bearer {client.keys[which]}", "Content-Type": "application/json"}


async def preview(client: TestClient, name: str, body: object | None = None, **headers: str):
    return await client.post(f"/v1/templates/{name}/preview", headers={**auth(client), **headers},
                             data=json.dumps(body) if body is not None else None)


async def test_list_templates(client: TestClient) -> None:
    response = await client.get("/v1/templates", headers=auth(client))
    assert response.status == 200
    listed = {t["name"]: t for t in (await response.json())["templates"]}
    assert listed[NAME] == {"name": NAME, "audience": "consumer", "locales": ["ca", "en", "es", "eu", "gl", "pt-BR"],
                            "channels": ["email", "sms", "whatsapp"]}


async def test_preview_every_channel_with_the_sample(client: TestClient) -> None:
    response = await preview(client, NAME)
    assert response.status == 200
    body = await response.json()
    assert (body["template"], body["locale"], body["requested_locale"]) == (NAME, "pt-BR", "pt-BR")
    assert NUMBER in body["email"]["subject"] and NUMBER in body["email"]["text"] and "<html" in body["email"]["html"]
    assert body["email"]["hash"].startswith("sha256:")
    sms = body["sms"]
    assert NUMBER in sms["text"] and "Cobranca" in sms["text"]  # sms.transliterate is on in this gateway
    assert (sms["encoding"], sms["segments"], sms["transliterate"]) == ("GSM-7", 1, True)
    assert sms["as_written"] == {"encoding": "UCS-2", "units": sms["units"], "segments": 2}
    assert body["warnings"] == []


async def test_preview_one_channel_locale_and_data(client: TestClient) -> None:
    response = await preview(client, NAME, {"locale": "es-MX", "channel": "sms", "data": {
        "protocol": {"number": "999888777666", "opened_at": "2026-12-01T12:00:00Z"}}})
    body = await response.json()
    assert response.status == 200, body
    assert body["email"] is None and body["locale"] == "es" and body["requested_locale"] == "es-MX"
    assert "999888777666" in body["sms"]["text"] and "1/12/2026, 9:00" in body["sms"]["text"]
    assert "Cobranca indevida" in body["sms"]["text"]  # the rest of the sample stays


async def test_preview_of_a_broken_template_is_422_naming_the_variable(client: TestClient) -> None:
    response = await preview(client, "broken", {"channel": "sms"})
    assert response.status == 422 and response.content_type == "application/problem+json"
    body = await response.json()
    assert body["errors"] == [{"field": "data.protocol.numbr",
                               "message": "broken/pt-BR/sms.j2:2: undefined variable 'protocol.numbr'"}]
    assert (body["file"], body["line"], body["variable"]) == ("broken/pt-BR/sms.j2", 2, "protocol.numbr")


@pytest.mark.parametrize(("body", "field"), [({"channel": "fax"}, "channel"), ({"colour": 1}, "colour"),
                                             ({"data": []}, "data")])
async def test_preview_refuses_invalid_fields(client: TestClient, body: dict, field: str) -> None:
    response = await preview(client, NAME, body)
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == [field]


async def test_preview_errors_unknown_template_wrong_type_and_scope(client: TestClient) -> None:
    assert (await preview(client, "no_such_template")).status == 404
    assert (await preview(client, NAME, {}, **{"Content-Type": "text/plain"})).status == 415
    bad = await client.post(f"/v1/templates/{NAME}/preview", headers=auth(client), data="{nope")
    assert bad.status == 400
    denied = await client.post(f"/v1/templates/{NAME}/preview", headers=auth(client, "other_key"))
    assert denied.status == 403
    assert (await client.get("/v1/templates")).status == 401


async def test_openapi_lists_the_operations_endpoints(client: TestClient) -> None:
    spec = await (await client.get("/openapi.json")).json()
    for path in ("/v1/templates", "/v1/templates/{name}/preview", "/v1/protocols/{number}/export", "/v1/outbox",
                 "/v1/outbox/{id}/retry", "/v1/outbox/requeue"):
        assert path in spec["paths"], path
    assert "TemplatePreview" in spec["components"]["schemas"]


def test_cli_preview(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["templates", "preview", NAME, "--dir", str(folder), "--locale", "pt-BR", "--channel", "sms"]) == 0
    out = capsys.readouterr().out
    # sms.transliterate is on by default: what is sent first, then what the template wrote
    assert out.splitlines()[1].startswith("=== sms sha256:") and "GSM-7, 1 segment (129 units) (transliterated)" in out
    assert "as written: UCS-2, 2 segments" in out and NUMBER in out

    data = tmp_path / "data.json"
    data.write_text(json.dumps({"protocol": {"subject": "Internet lenta"}, "company": {"name": "Loja X"}}))
    assert main(["templates", "preview", NAME, "--dir", str(folder), "--data", str(data), "--format", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["email"]["subject"].startswith("Loja X") and body["sms"]["encoding"] == "GSM-7"

    assert main(["templates", "preview", "broken", "--dir", str(folder), "--channel", "sms"]) == 1
    assert capsys.readouterr().err.strip().endswith(
        "broken/pt-BR/sms.j2:2: error: undefined variable 'protocol.numbr'")
    assert main(["templates", "preview", "nope", "--dir", str(folder)]) == 2
    data.write_text("[1, 2]")
    assert main(["templates", "preview", NAME, "--dir", str(folder), "--data", str(data)]) == 2


def test_cli_list(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["templates", "list", "--dir", str(folder), "--format", "json"]) == 0
    names = [t["name"] for t in json.loads(capsys.readouterr().out)]
    assert names == ["broken", NAME]


async def test_a_broken_template_toml_is_listed_with_its_error(client: TestClient, folder: Path) -> None:
    (folder / "broken" / "template.toml").write_text('audience = "consumer"\n[sample\n')
    listed = {t["name"]: t for t in (await (await client.get("/v1/templates", headers=auth(client))).json())["templates"]}
    assert listed["broken"]["audience"] is None and listed["broken"]["error"].startswith("broken/template.toml:2: ")
    assert "error" not in listed[NAME]
    response = await preview(client, "broken")
    assert response.status == 422 and (await response.json())["file"] == "broken/template.toml"


# Off the event loop, with a size cap and a time cap (issue 14)


class HeldTemplates(Templates):
    """The real templates, whose render waits until the test lets it go: while it waits, the
    gateway must still answer other requests (a render on the event loop would stall them all)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.entered, self.release = threading.Event(), threading.Event()

    def render(self, *args, **kwargs):
        self.entered.set()
        if not self.release.wait(10):
            raise AssertionError("nothing else was answered while the preview rendered")
        return super().render(*args, **kwargs)


@pytest.fixture
async def served(tmp_path: Path, sqlite_url: str, folder: Path):
    """The app with its parts reachable, so a test can give the preview other templates or limits."""
    (tmp_path / "no_schedules").mkdir(exist_ok=True)
    settings = make_settings(tmp_path, sqlite_url, templates={"dir": str(folder)},
                             schedules={"dir": str(tmp_path / "no_schedules")})
    runtime = build_runtime(settings)
    await prepare(runtime)
    key = await admin_key(runtime, ["templates:read"])
    app = web_app(runtime, run_dispatcher=False)
    yield app, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, folder


async def test_a_preview_renders_off_the_event_loop(served) -> None:
    app, headers, folder = served
    held = app[TEMPLATES] = HeldTemplates(folder, "pt-BR")
    async with TestClient(TestServer(app)) as client:
        pending = asyncio.create_task(client.post(f"/v1/templates/{NAME}/preview", headers=headers,
                                                  data=json.dumps({"channel": "sms"})))
        assert await asyncio.to_thread(held.entered.wait, 10)
        assert (await client.get("/healthz")).status == 200  # answered while the render holds its thread
        held.release.set()
        response = await pending
        assert response.status == 200 and NUMBER in (await response.json())["sms"]["text"]


async def test_a_preview_body_over_the_cap_is_413_naming_data(served) -> None:
    app, headers, _ = served
    async with TestClient(TestServer(app)) as client:
        big = {"data": {"protocol": {"subject": "x" * (PreviewLimits().max_body + 1)}}}
        response = await client.post(f"/v1/templates/{NAME}/preview", headers=headers, data=json.dumps(big))
        assert response.status == 413 and response.content_type == "application/problem+json"
        assert [e["field"] for e in (await response.json())["errors"]] == ["data"]
        deep: dict = {}
        for _ in range(40):
            deep = {"x": deep}
        response = await client.post(f"/v1/templates/{NAME}/preview", headers=headers,
                                     data=json.dumps({"data": deep}))
        assert response.status == 422 and (await response.json())["errors"][0]["field"] == "data"


async def test_a_preview_past_the_time_cap_is_422(served) -> None:
    app, headers, _ = served
    app[PREVIEW_LIMITS] = PreviewLimits(seconds=0.0)  # every render is past it: no waiting in the test
    async with TestClient(TestServer(app)) as client:
        response = await client.post(f"/v1/templates/{NAME}/preview", headers=headers, data=json.dumps({}))
        body = await response.json()
        assert response.status == 422 and body["errors"][0]["field"] == "template", body
        assert "longer than 0 s" in body["errors"][0]["message"]
