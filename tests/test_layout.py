"""The house stays as drawn: the rooms of DESIGN.md ("Rooms") and the arrows that must never be.

Reads every import of gateway/ with `ast` (top-level, inside functions, relative ones
resolved) and fails on each import that crosses a forbidden arrow, naming the file and the
import, so a shortcut taken in a hurry is seen in the next test run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gateway"
ROOMS = ("api", "web", "protocols", "rendering", "delivery", "sweeps", "store")
DOMAIN = ("protocols", "rendering", "delivery", "sweeps")
# (from room, to room, why). A room is the first package under gateway/, or delivery/channels
# and delivery/outbox, which have rules of their own.
NEVER = [
    *[(src, dst, "the domain knows no HTTP") for src in DOMAIN for dst in ("api", "web")],
    ("rendering", "store", "rendering is a pure function of data"),
    ("delivery/channels", "store", "a transport knows no database"),
    ("delivery/channels", "delivery/outbox", "a transport only sends"),
    *[("store", dst, "storage knows no business rule") for dst in (*DOMAIN, "api", "web")],
]
TOP_LEVEL = {"__init__.py", "app.py", "cli.py", "clock.py", "demo.py", "errors.py", "observability.py"}


def module_of(path: Path, package: Path) -> list[str]:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def room_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "gateway" or len(parts) < 2:
        return ""
    if parts[1] == "delivery" and len(parts) > 2 and parts[2] in ("channels", "outbox"):
        return f"delivery/{parts[2]}"
    return parts[1]


def imported(path: Path, package: Path) -> set[str]:
    """Every module (and module.name) the file imports, wherever the import statement stands."""
    me = module_of(path, package)
    parent = me if path.name == "__init__.py" else me[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            # `from gateway import api`, `from gateway.delivery import outbox`: the names are modules
            # in another room than the package they come from.
            found.update(f"{base}.{alias.name}" for alias in node.names
                         if room_of(f"{base}.{alias.name}") != room_of(base))
    return found


def crossings(package: Path) -> list[str]:
    broken = set()
    for path in sorted(package.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        src = room_of(".".join(module_of(path, package)))
        for target in imported(path, package):
            dst = room_of(target)
            if not src or not dst or dst == src:
                continue
            for a, b, why in NEVER:
                if (src == a or src.startswith(a + "/")) and (dst == b or dst.startswith(b + "/")):
                    broken.add(f"{path.relative_to(package.parent)} imports {target}: {why}")
    return sorted(broken)


def test_no_import_crosses_an_arrow_that_must_never_be() -> None:
    assert crossings(PACKAGE) == []


def test_every_room_is_a_package_that_says_what_it_holds() -> None:
    for room in ROOMS:
        init = PACKAGE / room / "__init__.py"
        assert init.is_file(), f"gateway/{room}/ is not a package"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and "import" in doc, f"gateway/{room}/__init__.py must say what the room holds and may import"


def test_only_a_handful_of_modules_stand_at_the_top() -> None:
    assert {p.name for p in PACKAGE.glob("*.py")} == TOP_LEVEL


@pytest.mark.parametrize(("where", "source", "expected"), [
    ("rendering/inner", "from gateway.api.auth import requires\n", "imports gateway.api.auth"),
    ("rendering/inner", "def later():\n    from gateway.web import console\n", "imports gateway.web"),
    ("rendering/inner", "from ...store import models\n", "imports gateway.store"),
    ("delivery/channels", "from gateway.delivery import outbox\n", "imports gateway.delivery.outbox"),
    ("store", "import gateway.protocols.service\n", "imports gateway.protocols.service"),
])
def test_the_check_sees_each_kind_of_import(tmp_path: Path, where: str, source: str, expected: str) -> None:
    # A module that reaches across an arrow, written each way Python allows.
    room = tmp_path / "gateway" / where
    room.mkdir(parents=True)
    (room / "bad.py").write_text(source, encoding="utf-8")
    (room / "fine.py").write_text("from gateway.config import Settings\nimport json\n", encoding="utf-8")
    found = crossings(tmp_path / "gateway")
    assert len(found) == 1 and expected in found[0] and found[0].startswith(f"gateway/{where}/bad.py")
