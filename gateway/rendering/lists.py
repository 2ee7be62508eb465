"""Lists in the reader's language: "a, b ou c" in pt-BR, "a, b o c" in es, "a, b, or c" in en."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from babel import Locale
from babel.lists import format_list
from jinja2 import pass_context
from jinja2.runtime import Context

from gateway.rendering.dates import locale_of


@pass_context
def or_list(context: Context, items: Iterable[object]) -> str:
    """The items that are not empty, joined with the locale's "or"; "" when none is."""
    kept = tuple(str(item) for item in items if item)
    return _joined(kept, locale_of(context)) if kept else ""


@lru_cache(maxsize=256)
def _joined(items: tuple[str, ...], locale: Locale) -> str:
    # The ways to reach us are the same in every message of a locale: Babel's list patterns are
    # looked up once for them, not at every render.
    return format_list(list(items), style="or", locale=locale)
