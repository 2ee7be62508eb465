"""A module's docstring for a command's help, read from its source without importing it.

The help of `protocols export` is `gateway.protocols.export`'s own docstring; importing the
module for it would load SQLAlchemy for every command, `--help` included.
"""

from __future__ import annotations

import ast
import importlib.util


def module_doc(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    with open(spec.origin, encoding="utf-8") as source:
        return ast.get_docstring(ast.parse(source.read()), clean=False)
