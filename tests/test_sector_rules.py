"""Issue 19's general mechanisms, through real HTTP on real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gateway.protocols.numbering import NumberFormat, damm_valid
from tests.helpers import make_settings
from tests.sector_helpers import consumer, served

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
