"""A protocol number in groups (text and HTML) and lists joined with the reader's "or": the
filters every message uses, exact whatever was asked before (the HTML writes digits without
escaping them, and joined lists are remembered per locale)."""

from __future__ import annotations

import re

from jinja2 import Environment
from markupsafe import Markup

from gateway.rendering.lists import or_list
from gateway.rendering.numbers import grouped, grouped_html, groups


def test_a_number_is_read_in_groups_of_three_or_four() -> None:
    assert groups("20261122000000017") == ["2026", "1122", "000", "000", "017"]
    assert grouped("20261122000000017") == "2026 1122 000 000 017"
    assert groups("123456") == ["123456"] and groups("A-2026-17") == ["A-2026-17"]


def test_the_html_copies_as_the_digits_alone_and_escapes_what_is_not_a_number() -> None:
    html = grouped_html("20261122000000017")
    assert isinstance(html, Markup) and re.sub(r"<[^>]+>", "", html) == "20261122000000017"
    assert html.count("<span") == 5
    assert grouped_html("<b>&17</b>") == Markup("<span>&lt;b&gt;&amp;17&lt;/b&gt;</span>")


def test_or_list_joins_in_the_readers_language_whatever_was_joined_before() -> None:
    env = Environment()
    env.filters["or_list"] = or_list
    template = env.from_string("{{ ways|or_list }}")
    ways = ["responda a este e-mail", "", "escreva para sac@example.com"]
    assert template.render(ways=ways, locale="pt-BR") == "responda a este e-mail ou escreva para sac@example.com"
    assert template.render(ways=ways, locale="en") == "responda a este e-mail or escreva para sac@example.com"
    assert template.render(ways=ways, locale="pt-BR") == "responda a este e-mail ou escreva para sac@example.com"
    assert template.render(ways=["", None], locale="en") == ""
