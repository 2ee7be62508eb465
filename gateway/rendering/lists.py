"""Lists in the reader's language: "a, b ou c" in pt-BR, "a, b o c" in es, "a, b, or c" in en."""

from __future__ import annotations

from collections.abc import Iterable

from babel.lists import format_list
from jinja2 import pass_context
from jinja2.runtime import Context

from gateway.rendering.dates import locale_of


@pass_context
def or_list(context: Context, items: Iterable[object]) -> str:
    """The items that are not empty, joined with the locale's "or"; "" when none is."""
    kept = [str(item) for item in items if item]
    return format_list(kept, style="or", locale=locale_of(context)) if kept else ""
