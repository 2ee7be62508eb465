"""Issue 19's general mechanisms, through real HTTP on real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gateway.protocols.numbering import NumberFormat, damm_valid
from tests.helpers import make_settings
from tests.sector_helpers import consumer, served
from tests.test_consumer_asks import gw  # noqa: F401  (a fixture: a gateway with inbound SMS)

# Sunday 2026-11-22 11:43 in São Paulo.
OPENED = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)


# Deadlines per category


async def test_a_category_has_its_own_deadline_inside_the_profile(tmp_path, db_url):
    settings = make_settings(tmp_path, db_url, profiles={"br-sac": {"categories": {
        "cancelamento": {"answer_days": 3},
        "reclamacao": {"answer_days": 5, "business_days": True}}}})
    async with served(settings, OPENED) as gw:
        answers = {}
        for i, category in enumerate(["cancelamento", "reclamacao", "outra", None]):
            data = {"subject": "Cobrança", "consumer": consumer(), "category": category}
            response = await gw.post("protocol.opened", f"e{i}", {k: v for k, v in data.items() if v is not None})
            assert response.status == 202, await response.text()
            answers[category] = (await response.json())["protocol"]["deadline_at"]
    # Sun 22 + 3 calendar days: Wed 25, 23:59:59 -03.
    assert answers["cancelamento"] == "2026-11-26T02:59:59Z"
    # 5 business days after Sun 22: Mon 23 .. Fri 27.
    assert answers["reclamacao"] == "2026-11-28T02:59:59Z"
    # Any other category, and none, keep the profile's 7 calendar days: Sun 29.
    assert answers["outra"] == answers[None] == "2026-11-30T02:59:59Z"


async def test_reopening_restarts_the_categorys_clock(tmp_path, db_url):
    settings = make_settings(tmp_path, db_url, profiles={"br-sac": {"categories": {"cancelamento": {"answer_days": 3}}}})
    async with served(settings, OPENED) as gw:
        opened = await (await gw.post("protocol.opened", "o", {"subject": "s", "consumer": consumer(),
                                                             "category": "cancelamento"})).json()
        number = opened["protocol"]["number"]
        await gw.post("protocol.resolved", "r", {"number": number, "resolution": "feito"})
        gw.clock.advance(timedelta(days=1))  # reopened on Mon 23: + 3 calendar days is Thu 26
        response = await gw.post("protocol.reopened", "ro", {"number": number, "reason": "não foi feito"})
        assert response.status == 202, await response.text()
        assert (await response.json())["protocol"]["deadline_at"] == "2026-11-27T02:59:59Z"


def test_a_bad_category_rule_stops_start_up_naming_the_key(tmp_path):
    import pytest

    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match=r"profiles\.br-sac\.categories\.cancelamento\.answer_days"):
        make_settings(tmp_path, "sqlite+aiosqlite:///x.db",
                      profiles={"br-sac": {"categories": {"cancelamento": {"answer_days": 0}}}})


# Numbers without a check digit, with literal digits


def test_a_format_with_literal_digits_and_no_check_digit():
    fmt = NumberFormat("0045{date:%Y}{seq:08d}", "America/Sao_Paulo", "none")
    assert fmt.number(17, OPENED) == "0045202600000017"
    with_digit = NumberFormat("0045{date:%Y}{seq:08d}", "America/Sao_Paulo", "damm").number(17, OPENED)
    assert with_digit[:-1] == "0045202600000017" and damm_valid(with_digit)


async def test_the_gateway_issues_numbers_in_a_regulators_layout(tmp_path, db_url):
    settings = make_settings(tmp_path, db_url, gateway={"number_format": "0045{date:%Y}{seq:08d}", "check_digit": "none"})
    async with served(settings, OPENED) as gw:
        numbers = []
        for i in range(2):
            response = await gw.post("protocol.opened", f"n{i}", {"subject": "s", "consumer": consumer()})
            assert response.status == 202, await response.text()
            numbers.append((await response.json())["protocol"]["number"])
    assert numbers == ["0045202600000001", "0045202600000002"]


def test_number_layouts_that_cannot_give_6_to_30_digits_stop_start_up(tmp_path):
    import pytest

    from gateway.config import ConfigError

    for gateway, message in [
        ({"check_digit": "none", "number_format": "{seq:05d}"}, "gives 6 to 30 digits"),
        ({"number_format": "{date:%Y%m%d}{seq:022d}"}, "gives 5 to 29 digits"),
        ({"number_format": "AB{seq:08d}"}, "digits only"),
    ]:
        with pytest.raises(ConfigError, match=rf"^settings: gateway\.number_format: .*{message}"):
            make_settings(tmp_path, "sqlite+aiosqlite:///x.db", gateway=gateway)
    make_settings(tmp_path, "sqlite+aiosqlite:///x.db", gateway={"check_digit": "none", "number_format": "{seq:06d}"})


# Deadline extensions


async def _open(gw, event_id: str = "o", **data):
    response = await gw.post("protocol.opened", event_id, {"subject": "Cobrança", "consumer": consumer(), **data})
    assert response.status == 202, await response.text()
    return (await response.json())["protocol"]["number"]


async def test_a_deadline_extension_is_refused_where_the_profile_allows_none(tmp_path, db_url):
    async with served(make_settings(tmp_path, db_url), OPENED) as gw:
        number = await _open(gw)
        response = await gw.post("protocol.deadline_extended", "x", {"number": number, "reason": "laudo", "days": 5})
        assert response.status == 422
        problem = await response.json()
        assert problem["errors"] == [{"field": "data.days", "message": "profile br-sac allows no extension "
                                                                       "(profiles.br-sac.max_extensions)"}]
        assert (await gw.document(number))["deadline_at"] == "2026-11-30T02:59:59Z"  # unchanged


async def test_a_deadline_extension_moves_the_deadline_tells_the_consumer_and_shows_in_the_history(tmp_path, db_url):
    settings = make_settings(tmp_path, db_url, profiles={"br-sac-2008": {"max_extensions": 2}})
    async with served(settings, OPENED) as gw:
        number = await _open(gw, profile="br-sac-2008")
        # Sun 22: 5 business days is Fri 27 (20 November is before). + 5 business days: Mon 30 .. Fri 4 Dec.
        response = await gw.post("protocol.deadline_extended", "x1",
                                 {"number": number, "reason": "Aguardamos o laudo técnico.", "days": 5})
        assert response.status == 202, await response.text()
        body = await response.json()
        assert body["protocol"]["deadline_at"] == "2026-12-05T02:59:59Z"
        assert [n["channel"] for n in body["notifications"]] == ["email"]
        # A date instead of days; then the third is one too many.
        response = await gw.post("protocol.deadline_extended", "x2",
                                 {"number": number, "reason": "Perícia.", "deadline_at": "2026-12-11T20:00:00-03:00"})
        assert (await response.json())["protocol"]["deadline_at"] == "2026-12-11T23:00:00Z"
        response = await gw.post("protocol.deadline_extended", "x3", {"number": number, "reason": "r", "days": 1})
        assert response.status == 422
        assert (await response.json())["errors"][0]["field"] == "data.days"
        assert "at most 2 extension(s)" in (await response.json())["errors"][0]["message"]
        document = await gw.document(number)
        assert document["deadline_at"] == "2026-12-11T23:00:00Z"
        assert [e["type"] for e in document["events"]].count("protocol.deadline_extended") == 2
        assert [n["template"] for n in document["notifications"]].count("protocol_deadline_extended") == 2
        async with gw.runtime.db.read() as session:
            from sqlalchemy import select

            from gateway.store.models import Notification
            bodies = (await session.scalars(select(Notification.body_text).where(
                Notification.template == "protocol_deadline_extended").order_by(Notification.id))).all()
        assert "Novo prazo de resposta: 04/12/2026 23:59" in bodies[0]
        assert "Prazo anterior: 27/11/2026 23:59" in bodies[0] and "Aguardamos o laudo técnico." in bodies[0]
        # The history the consumer asks for lists the extension with its reason.
        response = await gw.client.post(f"/v1/protocols/{number}/resend", data='{"channel": "email", "history": true}',
                                        headers={**gw.headers, "Content-Type": "application/json"})
        assert response.status == 202, await response.text()
        async with gw.runtime.db.read() as session:
            history = (await session.scalars(select(Notification.body_text).where(
                Notification.template == "protocol_history"))).one()
        assert "Prazo prorrogado" in history and "Perícia." in history


async def test_a_deadline_extension_that_is_not_later_or_gives_both_or_neither_is_refused(tmp_path, db_url):
    settings = make_settings(tmp_path, db_url, profiles={"br-sac": {"max_extensions": 3}})
    async with served(settings, OPENED) as gw:
        number = await _open(gw)
        cases = [
            ({"deadline_at": "2026-11-29T12:00:00-03:00"}, "data.deadline_at", "later than the current deadline"),
            ({"days": 2, "deadline_at": "2026-12-29T12:00:00-03:00"}, "data.days", "one of them"),
            ({}, "data.days", "one of them"),
            ({"days": 0}, "data.days", "greater than or equal to 1"),
        ]
        for i, (extra, field, message) in enumerate(cases):
            response = await gw.post("protocol.deadline_extended", f"bad{i}", {"number": number, "reason": "r", **extra})
            assert response.status == 422, extra
            (error,) = (await response.json())["errors"]
            assert error["field"] == field and message in error["message"], (extra, error)
        await gw.post("protocol.resolved", "r", {"number": number, "resolution": "feito"})
        response = await gw.post("protocol.deadline_extended", "late", {"number": number, "reason": "r", "days": 1})
        assert response.status == 422
        assert (await response.json())["errors"][0]["field"] == "data.number"
        assert (await gw.document(number))["deadline_at"] == "2026-11-30T02:59:59Z"


# Retention extensions


async def test_a_retention_extension_lengthens_the_record_before_and_after_resolution(tmp_path, db_url):
    async with served(make_settings(tmp_path, db_url), OPENED) as gw:
        before = await _open(gw, "o1")
        after = await _open(gw, "o2")
        response = await gw.post("protocol.retention_extended", "r1",
                                 {"number": before, "reason": "reclamação no Procon", "years": 3})
        assert response.status == 202, await response.text()
        assert (await response.json())["notifications"] == []  # an operations matter: nothing to the consumer
        for i, number in enumerate((before, after)):
            await gw.post("protocol.resolved", f"s{i}", {"number": number, "resolution": "feito"})
        response = await gw.post("protocol.retention_extended", "r2",
                                 {"number": after, "reason": "reclamação na Anatel", "years": 1})
        assert response.status == 202, await response.text()
        # Resolved (and heard of) at 2026-11-22 14:43 UTC: 2 years (art. 12 §5), then the extension.
        assert (await gw.document(before))["retention_until"] == "2031-11-22T14:43:00Z"
        assert (await gw.document(after))["retention_until"] == "2029-11-22T14:43:00Z"
        response = await gw.post("protocol.retention_extended", "r3", {"number": after, "reason": "r", "years": 0})
        assert response.status == 422
        assert (await response.json())["errors"][0]["field"] == "data.years"


async def test_the_retention_sweep_respects_an_extension(tmp_path, db_url):
    from gateway.protocols.profiles import Profiles
    from gateway.protocols.retention import CANDIDATE_COLUMNS, effective_end
    from gateway.store.models import Protocol

    settings = make_settings(tmp_path, db_url)
    async with served(settings, OPENED) as gw:
        number = await _open(gw)
        await gw.post("protocol.retention_extended", "r1", {"number": number, "reason": "Procon", "years": 2})
        async with gw.runtime.db.read() as session:
            from sqlalchemy import select
            row = (await session.execute(select(*CANDIDATE_COLUMNS).where(Protocol.number == number))).one()
    # Never resolved: abandoned a year after its last event, then 2 years, then the 2 added.
    end = effective_end(row, Profiles.from_settings(settings), timedelta(days=365))
    assert end == datetime(2031, 11, 22, 14, 43, tzinfo=timezone.utc)


# Linked protocols


async def test_an_escalated_protocol_links_both_ways_and_its_history_includes_the_parents(tmp_path, db_url):
    async with served(make_settings(tmp_path, db_url), OPENED) as gw:
        sac = await _open(gw, "sac", subject="Cobrança indevida")
        await gw.post("protocol.resolved", "sac-r", {"number": sac, "resolution": "Mantivemos a cobrança."})
        gw.clock.advance(timedelta(days=3))
        ombudsman = await _open(gw, "ouv", subject="Recurso à ouvidoria", parent=sac)
        child, parent = await gw.document(ombudsman), await gw.document(sac)
        assert (child["parent"], child["children"]) == (sac, [])
        assert (parent["parent"], parent["children"]) == (None, [ombudsman])
        assert [e["type"] for e in child["events"]] == ["protocol.opened"]  # the record keeps its own events
        response = await gw.client.post(f"/v1/protocols/{ombudsman}/resend",
                                        data='{"channel": "email", "history": true}',
                                        headers={**gw.headers, "Content-Type": "application/json"})
        assert response.status == 202, await response.text()
        async with gw.runtime.db.read() as session:
            from sqlalchemy import select

            from gateway.store.models import Notification
            history = (await session.scalars(select(Notification.body_text).where(
                Notification.template == "protocol_history"))).one()
        # In order: the SAC's opening and answer, then the ombudsman's opening.
        entries = history.split("Histórico:")[1]
        positions = [entries.index(text) for text in ("Cobrança indevida", "Mantivemos a cobrança.",
                                                      "Recurso à ouvidoria")]
        assert positions == sorted(positions)


async def test_an_unknown_parent_is_refused_naming_the_field(tmp_path, db_url):
    async with served(make_settings(tmp_path, db_url), OPENED) as gw:
        response = await gw.post("protocol.opened", "o", {"subject": "s", "consumer": consumer(), "parent": "99999999"})
        assert response.status == 422
        assert (await response.json())["errors"] == [{"field": "data.parent",
                                                      "message": "no protocol 99999999 to escalate"}]


async def test_sector_profiles_open_with_their_own_clocks(tmp_path, db_url):
    async with served(make_settings(tmp_path, db_url), OPENED) as gw:
        deadlines = {}
        for profile in ("br-ans", "br-anatel", "br-aneel", "br-bacen-ouvidoria"):
            response = await gw.post("protocol.opened", profile, {"subject": "s", "consumer": consumer(),
                                                                  "profile": profile})
            assert response.status == 202, await response.text()
            deadlines[profile] = (await response.json())["protocol"]["deadline_at"]
        number = (await (await gw.post("protocol.opened", "x", {"subject": "s", "consumer": consumer(),
                                                                "profile": "br-aneel"})).json())["protocol"]["number"]
        first = await (await gw.post("protocol.deadline_extended", "e1",
                                     {"number": number, "reason": "perícia", "days": 5})).json()
        second = await gw.post("protocol.deadline_extended", "e2", {"number": number, "reason": "de novo", "days": 5})
    # Sun 22 Nov: 5 business days are Mon 23..Fri 27; 10 are Mon 23..Fri 4 Dec.
    assert deadlines == {"br-ans": "2026-11-28T02:59:59Z", "br-anatel": "2026-11-28T02:59:59Z",
                         "br-aneel": "2026-11-28T02:59:59Z", "br-bacen-ouvidoria": "2026-12-05T02:59:59Z"}
    # br-aneel allows one exceptional extension (REN 1000/2021 art. 421 §2): Mon 30..Fri 4 Dec.
    assert first["protocol"]["deadline_at"] == "2026-12-05T02:59:59Z"
    assert second.status == 422


def test_the_anonymization_audit_names_a_retention_extension(tmp_path):
    from types import SimpleNamespace

    from gateway.protocols.profiles import Profiles
    from gateway.sweeps.retention import _rules

    profiles = Profiles.from_settings(make_settings(tmp_path, "sqlite+aiosqlite:///x.db"))
    end = datetime(2031, 11, 22, 14, 43, tzinfo=timezone.utc)
    later = datetime(2031, 11, 23, 9, 0, tzinfo=timezone.utc)

    def row(id_: int, years: int, status: str = "resolved", profile: str = "br-sac") -> SimpleNamespace:
        return SimpleNamespace(id=id_, profile=profile, status=status, retention_extension_years=years)

    # One batch: the words shared by records alike are written once, each record keeps its own.
    rules = _rules(profiles, [(row(1, 3), end), (row(2, 0), end), (row(3, 3), later), (row(4, 0, "open"), end),
                              (row(5, 0, profile="br-sac-2008"), end)], 30 * 86400.0, "retention-expiry")
    assert rules[5].startswith("br-sac-2008: ") and rules[2].startswith("br-sac: ")
    assert "extended by 3 years (protocol.retention_extended)" in rules[1] and "Decreto 11.034/2022 art. 12 §5" in rules[1]
    assert "extended" not in rules[2] and "; resolved;" in rules[2]
    assert "extended by 3 years" in rules[3] and "retention ended 2031-11-23T09:00:00+00:00" in rules[3]
    assert "retention ended 2031-11-22T14:43:00+00:00" in rules[1]
    assert "abandoned (no event since last_event_at)" in rules[4] and "extended" not in rules[4]
    assert all(r.endswith("grace 30d; retention.action=anonymize; schedule retention-expiry") for r in rules.values())


async def test_the_history_asked_for_by_sms_of_an_escalated_protocol_includes_the_parents(gw):  # noqa: F811
    sac = await gw.open("sac")
    status, _ = await gw.event({"specversion": "1.0", "id": "sac-r", "source": "urn:test:crm",
                                "type": "protocol.resolved", "data": {"number": sac, "resolution": "Mantivemos."}})
    assert status == 202
    ombudsman = await gw.open("ouv", subject="Recurso à ouvidoria", parent=sac)
    await gw.sms_in("+5511987654321", f"Histórico {ombudsman}", "SM-escalated")
    # Too long for one SMS: a short SMS and the whole history by email (either way, the parent's is in it).
    replies = " ".join(n.body_text for n in await gw.notifications(template="protocol_history"))
    assert ombudsman in replies and "Mantivemos." in replies and "Recurso à ouvidoria" in replies
