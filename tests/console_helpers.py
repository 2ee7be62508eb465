"""Signing in to the console from a test client, and reading its forms."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form token"
    return found.group(1)


async def sign_in(client: TestClient, key: str, next_path: str = "") -> str:
    """Sign in and return the session's form token (read from the first page after)."""
    page = await (await client.get("/console/sign-in")).text()
    r = await client.post("/console/sign-in", data={"csrf": csrf_of(page), "key": key, "next": next_path})
    assert r.status == 200, await r.text()
    return csrf_of(await r.text())
