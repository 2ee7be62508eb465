"""Spain's co-official languages (Ley 10/2025: Catalan, Basque, Galician). Where a text has no
version in one of them (a page, a company's name), its reader gets Spanish, which every one of
them reads, rather than the gateway's default locale."""

from __future__ import annotations

SPAIN_COOFFICIAL = frozenset({"ca", "eu", "gl"})


def reads_spanish(locale: str | None) -> bool:
    """Whether a reader of `locale` ("ca", "eu-ES", "gl_ES"...) gets Spanish in place of a missing version."""
    return (locale or "").replace("_", "-").split("-")[0].lower() in SPAIN_COOFFICIAL
