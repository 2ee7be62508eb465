"""Commands that do not touch the database do not load it: `import gateway.cli` and its parser stay
clear of SQLAlchemy, the drivers, Alembic and the settings' models, and `templates list` of the first
three (issue 20: `--help` took 0.44 s, most of it SQLAlchemy). A check of the modules loaded, not of time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = ("sqlalchemy", "asyncpg", "aiosqlite", "alembic")


def _loaded(code: str, cwd: Path) -> tuple[list[str], str]:
    """Run `code` in a fresh interpreter; the top-level modules it left loaded, and its stdout."""
    script = code + "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    *out, modules = done.stdout.strip().splitlines()
    return json.loads(modules), "\n".join(out)


def test_the_parser_loads_no_database_module_nor_the_settings_models(tmp_path):
    modules, _ = _loaded("import gateway.cli\ngateway.cli.build_parser()", tmp_path)
    assert not {*DATABASE, "pydantic", "jinja2", "babel"} & set(modules)


def test_help_and_version_load_no_database_module(tmp_path):
    for argv in (["--help"], ["--version"], ["templates", "--help"], ["outbox", "list", "--help"]):
        code = (f"import gateway.cli\ntry:\n    gateway.cli.main({argv!r})\nexcept SystemExit as exit:\n"
                "    assert exit.code == 0")
        modules, out = _loaded(code, tmp_path)
        assert not set(DATABASE) & set(modules), argv
        assert out.startswith("protocol-gateway 0.") if argv == ["--version"] else "usage:" in out


def test_templates_list_loads_no_database_module(tmp_path):
    (tmp_path / "settings.toml").write_text(f'[templates]\ndir = "{ROOT / "templates"}"\n', encoding="utf-8")
    modules, out = _loaded("import gateway.cli\nassert gateway.cli.main(['templates', 'list']) == 0", tmp_path)
    assert "protocol_opened" in out
    assert not set(DATABASE) & set(modules)
