"""The consumer's page (issue 15, README "The consumer's page"): `/p/{token}` from the link in
every consumer email, the protocol and its whole history, and buttons that send it again."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

import gateway
from gateway.app import Runtime, build_runtime, prepare, web_app
from gateway.config import ConfigError
from gateway.protocols.anonymize import anonymize
from gateway.protocols.page_links import PageLinks, digest
from gateway.rendering.check import check_templates
from gateway.rendering.templates import Templates
from gateway.store.models import ConsumerRequest, Notification, Protocol
from tests.helpers import FixedClock, admin_key, make_settings, notifications_where, opened_event

T0 = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)
LINK = re.compile(r"http://127\.0\.0\.1:8080/p/([A-Za-z0-9_-]+)")
CE = "application/cloudevents+json"
SHIPPED = Path(gateway.__file__).parent / "templates"


class Gateway:
    def __init__(self, runtime: Runtime, client: TestClient, key: str, clock: FixedClock) -> None:
        self.runtime, self.client, self.key, self.clock = runtime, client, key, clock

    async def post(self, event: dict[str, Any]) -> dict[str, Any]:
        r = await self.client.post("/v1/events", data=json.dumps(event),
                                   headers={"Authorization": f"Bearer {self.key}", "Content-Type": CE})
        assert r.status == 202, await r.text()
        return await r.json()

    async def open(self, event_id: str = "o1", **data: Any) -> str:
        return (await self.post(opened_event(event_id, **data)))["protocol"]["number"]

    async def event(self, event_id: str, event_type: str, **data: Any) -> None:
        await self.post({"specversion": "1.0", "id": event_id, "source": "urn:test:crm", "type": event_type,
                         "data": data})

    async def notifications(self, **where: Any) -> list[Notification]:
        return await notifications_where(self.runtime, **where)

    async def token(self, number: str) -> str:
        async with self.runtime.db.read() as session:
            protocol_id = await session.scalar(select(Protocol.id).where(Protocol.number == number))
        (email, *_) = await self.notifications(channel="email", protocol_id=protocol_id)
        match = LINK.search(email.body_text)
        assert match, email.body_text
        return match.group(1)


async def start(tmp_path: Path, db_url: str, **sections: Any) -> tuple[Gateway, TestClient]:
    clock = FixedClock(T0)
    runtime = build_runtime(make_settings(tmp_path, db_url, sweeps={"enabled": False}, **sections), clock=clock)
    await prepare(runtime)
    client = TestClient(TestServer(web_app(runtime, run_dispatcher=False)))
    await client.start_server()
    return Gateway(runtime, client, await admin_key(runtime), clock), client


@pytest.fixture
async def gw(tmp_path: Path, db_url: str) -> AsyncIterator[Gateway]:
    gateway, client = await start(tmp_path, db_url)
    yield gateway
    await client.close()


async def test_every_consumer_email_carries_the_link_and_the_database_keeps_only_its_hash(gw: Gateway) -> None:
    number = await gw.open()
    await gw.event("u1", "protocol.updated", number=number, message="Encaminhamos ao financeiro.")
    emails = await gw.notifications(channel="email")
    tokens = {LINK.search(e.body_text).group(1) for e in emails}  # type: ignore[union-attr]
    assert len(emails) == 2 and len(tokens) == 1  # one link per protocol
    (token,) = tokens
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", token)  # 128 bits
    assert number not in token and "maria" not in token.lower()
    for email in emails:
        assert f'href="http://127.0.0.1:8080/p/{token}"' in email.body_html
    async with gw.runtime.db.read() as session:
        stored = await session.scalar(select(Protocol.page_token_hash).where(Protocol.number == number))
    assert stored == hashlib.sha256(token.encode()).hexdigest()


async def test_the_page_shows_the_protocol_its_history_and_the_answer_with_contacts_masked(gw: Gateway) -> None:
    number = await gw.open()
    await gw.event("r1", "protocol.resolved", number=number, resolution="Estornamos R$ 49,90 na próxima fatura.")
    token = await gw.token(number)
    r = await gw.client.get(f"/p/{token}")
    html = await r.text()
    assert r.status == 200 and r.content_type == "text/html"
    number_shown = "".join(re.findall(r"<span>(\d+)</span>", html[html.index('class="number"'):]))
    assert number_shown == number  # in groups, copied whole
    for shown in ('lang="pt-BR"', "respondido", "Cobrança indevida na fatura de outubro",
                  "22/11/2026 11:43 (horário de Brasília)", "Abertura", "Resposta",
                  "Estornamos R$ 49,90 na próxima fatura.", "m***@example.com", "+55119****4321"):
        assert shown in html, shown
    assert "maria@example.com" not in html and "987654321" not in html and "Maria Silva" not in html
    # Headers of a page whose address is the credential.
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'; style-src 'self'")
    assert "<script" not in html and " style=" not in html and "src=" not in html  # nothing from elsewhere
    assert re.findall(r'href="([^"]+)"', html) == ["page.css"]
    css = await gw.client.get("/p/page.css")
    assert css.status == 200 and css.content_type == "text/css" and ".number" in await css.text()


async def test_the_page_speaks_the_consumers_language(gw: Gateway) -> None:
    number = await gw.open(consumer={"name": "Ana", "email": "ana@example.com", "locale": "es-ES",
                                     "timezone": "Europe/Madrid"})
    html = await (await gw.client.get(f"/p/{await gw.token(number)}")).text()
    assert 'lang="es"' in html and "Número de atención" in html and "Recibir por correo electrónico" in html
    assert "22/11/2026, 15:43 (CET)" in html


def test_each_number_has_its_own_token_whatever_was_asked_before(tmp_path: Path) -> None:
    # PageLinks keeps the last number's token (an opening asks twice): never another number's.
    links = PageLinks("https://sac.example/", secret="s" * 32, secret_file=tmp_path / "unused")
    alone = {n: PageLinks("https://sac.example/", secret="s" * 32, secret_file=tmp_path / "unused").token(n)
             for n in ("2026112200000001", "2026112200000002")}
    assert alone["2026112200000001"] != alone["2026112200000002"]
    for n in ("2026112200000001", "2026112200000001", "2026112200000002", "2026112200000001"):
        assert links.token(n) == alone[n]
        assert links.link(n) == ("https://sac.example/p/" + alone[n], digest(alone[n])) == (
            links.link(n)[0], links.digest_for(n))


async def test_wrong_expired_and_revoked_links_get_the_same_404_page(gw: Gateway) -> None:
    number = await gw.open()
    token = await gw.token(number)
    assert (await gw.client.get(f"/p/{token}")).status == 200
    wrong = [token[:-1] + ("A" if token[-1] != "A" else "B"), "short", token + "x", "a" * 200]
    pages = []
    for path in [f"/p/{t}" for t in wrong]:
        r = await gw.client.get(path)
        assert r.status == 404 and r.content_type == "text/html", path
        assert r.headers["Cache-Control"] == "no-store"
        pages.append(await r.text())
    assert len(set(pages)) == 1 and "não é válido ou expirou" in pages[0]
    # Expired: link_ttl (90 days) after the last event.
    async with gw.runtime.db.read() as session:
        last = await session.scalar(select(Protocol.last_event_at).where(Protocol.number == number))
    gw.clock.now = last.replace(tzinfo=timezone.utc) + timedelta(days=90)
    assert (await gw.client.get(f"/p/{token}")).status == 200
    gw.clock.now += timedelta(seconds=1)
    r = await gw.client.get(f"/p/{token}")
    assert r.status == 404 and await r.text() == pages[0]
    # A new event gives the link another 90 days.
    await gw.event("u1", "protocol.updated", number=number, message="Seguimos analisando.")
    assert (await gw.client.get(f"/p/{token}")).status == 200
    # Revoked at anonymization.
    async with gw.runtime.db.write() as session:
        protocol_id = await session.scalar(select(Protocol.id).where(Protocol.number == number))
        await anonymize(session, [protocol_id], at=gw.clock(), actor="test", rules={},
                        sqlite=gw.runtime.db.is_sqlite)
    r = await gw.client.get(f"/p/{token}")
    assert r.status == 404 and await r.text() == pages[0]
    async with gw.runtime.db.read() as session:
        assert await session.scalar(select(Protocol.page_token_hash).where(Protocol.number == number)) is None


async def test_a_button_asks_for_the_history_with_its_legal_clock_and_the_resend_limits(gw: Gateway) -> None:
    number = await gw.open()
    token = await gw.token(number)
    r = await gw.client.post(f"/p/{token}", data={"channel": "email"})
    html = await r.text()
    assert r.status == 200
    assert ("Pedido registrado. Enviaremos o histórico completo por e-mail para m***@example.com em instantes; "
            "o prazo para o envio é 27/11/2026 23:59 (horário de Brasília).") in html
    async with gw.runtime.db.read() as session:
        (request,) = (await session.scalars(select(ConsumerRequest))).all()
    assert (request.channel, request.kind, request.address) == ("email", "history", None)
    (history,) = await gw.notifications(template="protocol_history")
    assert history.recipient == "maria@example.com"
    r = await gw.client.post(f"/p/{token}", data={"channel": "sms"})
    assert r.status == 200 and "por SMS para +55119****4321" in await r.text()
    assert {n.channel for n in await gw.notifications(template="protocol_history")} == {"email", "sms"}
    # Only the contacts on record, as the buttons offer; then the same limits as any resend.
    r = await gw.client.post(f"/p/{token}", data={"channel": "mail"})
    assert r.status == 422
    statuses = [(await gw.client.post(f"/p/{token}", data={"channel": "email"})).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    r = await gw.client.post(f"/p/{token}", data={"channel": "email"})
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0 and r.content_type == "text/html"
    assert "Você já pediu o histórico várias vezes" in await r.text()
    metrics = await (await gw.client.get("/metrics")).text()
    assert 'gateway_consumer_page_requests_total{channel="email",outcome="queued"} 4.0' in metrics
    assert 'gateway_consumer_page_requests_total{channel="email",outcome="limited"} 2.0' in metrics
    assert 'gateway_consumer_pages_total{outcome="shown"}' in metrics


async def test_an_sms_carries_the_link_only_where_it_costs_no_segment_more(gw: Gateway) -> None:
    number = await gw.open()
    (opening,) = await gw.notifications(channel="sms")
    assert "/p/" not in opening.body_text and opening.segments == 1  # 2 with the link: left out
    # A message long enough to take two segments has room for it.
    await gw.event("u1", "protocol.updated", number=number,
                   message="Encaminhamos a sua contestacao ao setor financeiro, que responde em ate 3 dias.")
    (update_sms,) = await gw.notifications(channel="sms", template="protocol_updated")
    assert update_sms.segments == 2 and LINK.search(update_sms.body_text)


async def test_the_secret_is_made_once_private_or_taken_from_the_settings(tmp_path: Path, db_url: str) -> None:
    gateway, client = await start(tmp_path, db_url)
    try:
        number = await gateway.open()
        token = await gateway.token(number)
    finally:
        await client.close()
    key_file = tmp_path / "consumer-page.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text().strip()) == 64
    other, client = await start(tmp_path / "other", db_url.replace("gateway", "other") if "sqlite" in db_url else db_url,
                                consumer_page={"secret": "s" * 40})
    try:
        number2 = await other.open("o2")
        assert await other.token(number2) != token
    finally:
        await client.close()
    with pytest.raises(ConfigError, match="consumer_page.secret"):
        make_settings(tmp_path, db_url, consumer_page={"secret": "short"})


async def test_with_the_page_disabled_no_message_names_it_and_no_link_works(tmp_path: Path, db_url: str) -> None:
    gateway, client = await start(tmp_path, db_url, consumer_page={"enabled": False})
    try:
        await gateway.open()
        assert all("/p/" not in n.body_text for n in await gateway.notifications())
        assert (await gateway.client.get("/p/" + "A" * 22)).status == 404
    finally:
        await client.close()


def test_templates_check_renders_the_pages_and_names_the_file_line_and_variable(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(SHIPPED, folder)
    assert [f for f in check_templates(Templates(folder, "pt-BR"), max_segments=3).findings if f.level == "error"] == []
    page = folder / "_page" / "es" / "protocol.html.j2"
    page.write_text(page.read_text("utf-8").replace("{{ protocol.subject }}", "{{ protocol.asunto }}"), "utf-8")
    errors = [f.text() for f in check_templates(Templates(folder, "pt-BR"), max_segments=3).findings
              if f.level == "error"]
    assert errors == ["_page/es/protocol.html.j2:17: error: undefined variable 'protocol.asunto' (as shown)"]


def test_spains_co_official_languages_read_the_page_in_spanish_until_it_is_written_in_theirs() -> None:
    templates = Templates(SHIPPED, "pt-BR")
    assert [templates.page_locale(x) for x in ("ca-ES", "eu", "gl-ES", "es-MX", "pt-PT", "fr")] == \
        ["es", "es", "es", "es", "pt-BR", "pt-BR"]


async def test_a_templates_folder_without_pages_serves_the_packaged_ones(tmp_path: Path, db_url: str) -> None:
    folder = tmp_path / "mine"
    shutil.copytree(SHIPPED, folder, ignore=shutil.ignore_patterns("_page"))
    gateway, client = await start(tmp_path, db_url, templates={"dir": str(folder)})
    try:
        number = await gateway.open()
        r = await gateway.client.get(f"/p/{await gateway.token(number)}")
        assert r.status == 200 and "Receber por e-mail" in await r.text()
        assert (await gateway.client.get("/p/page.css")).status == 200
    finally:
        await client.close()
