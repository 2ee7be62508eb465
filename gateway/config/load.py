"""Reading the settings: the file, then `GATEWAY_*` environment overrides, then validation,
with any error turned into one line that names the key and where it came from."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config.delivery import MANY, ONE
from gateway.config.settings import Settings
from gateway.config.units import ConfigError

ENV_PREFIX = "GATEWAY_"
PROVIDER_FORMS = (ONE, MANY)


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """GATEWAY_A__B__C=v -> {"a": {"b": {"c": "v"}}}, and where each key came from."""
    tree: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = tuple(p.lower() for p in name[len(ENV_PREFIX):].split("__"))
        if not all(parts):
            raise ConfigError(f"settings: {name}: expected GATEWAY_<SECTION>__<KEY>")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"settings: {'.'.join(parts)}: conflicts with another GATEWAY_* variable")
        node[parts[-1]] = value
        origins[parts] = name
    return tree, origins


def _merge(base: dict[str, Any], over: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value, (*path, key))
        elif isinstance(value, dict) and _named_list(merged.get(key)):
            merged[key] = _merge_by_name(merged[key], value, (*path, key))
        else:
            merged[key] = value
    return merged


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _merge_by_name(items: list[dict[str, Any]], over: dict[str, Any], path: tuple[str, ...]) -> list[dict[str, Any]]:
    """A list of providers takes overrides per provider name: GATEWAY_EMAIL__SMTP__BACKUP__PASSWORD
    sets the password of the relay named "backup" (secrets stay out of the file)."""
    merged = [dict(item) for item in items]
    for name, values in over.items():
        target = next((item for item in merged if str(item.get("name", "")).lower() == name), None)
        if target is None or not isinstance(values, dict):
            known = ", ".join(str(item.get("name")) for item in merged)
            raise ConfigError(f"settings: {'.'.join((*path, name))}: no provider named {name!r} (known: {known})")
        target.update(_merge(target, values, (*path, name)))
    return merged


def mask_url(url: str) -> str:
    """postgresql+asyncpg://user:PASSWORD@host/db -> postgresql+asyncpg://user:***@host/db."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def _describe(error: dict[str, Any], origins: dict[tuple[str, ...], str], source: str) -> str:
    loc = tuple(str(p) for p in error["loc"] if p not in PROVIDER_FORMS)
    message = error["msg"].removeprefix("Value error, ")
    # A section's own check names its key first ("from: required ..."): fold it into the path.
    inner = re.match(r"^([a-z_][a-z0-9_.-]*): (.*)$", message)
    if inner:
        loc, message = loc + tuple(inner.group(1).split(".")), inner.group(2)
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        message = "not a known setting"
    elif error["type"] == "missing":
        message = "required"
    elif "input" in error and not isinstance(error["input"], dict) and "got " not in message:
        shown = "***" if any(s in key for s in ("password", "token", "secret")) else error["input"]
        if isinstance(shown, str):  # a URL may carry a password: postgresql+asyncpg://user:PASSWORD@host/db
            shown = mask_url(shown)
        message = f"{message} (got {shown!r})"
    where = next((name for parts, name in origins.items() if parts[: len(loc)] == loc), source)
    return f"settings: {key}: {message} [{where}]"


def load_settings(
    path: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    discover: bool = True,
) -> Settings:
    """Read the settings file (if any), apply environment and explicit overrides, validate.

    With `discover`, a `settings.toml` in the working directory is read when no file is named.
    """
    environ = os.environ if environ is None else environ
    if path is None and environ.get("GATEWAY_CONFIG"):
        path = environ["GATEWAY_CONFIG"]
    data: dict[str, Any] = {}
    source = "defaults"
    base_dir = Path.cwd()
    if path is None and discover and Path("settings.toml").is_file():
        path = "settings.toml"
    if path is not None:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"settings: cannot read {file}: no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"settings: {file}: not valid TOML: {exc}") from None
        source = str(file)
        base_dir = file.resolve().parent
    env_tree, origins = _env_overrides(environ)
    data = _merge(data, env_tree)
    if overrides:
        data = _merge(data, dict(overrides))
    try:
        return Settings.model_validate({**data, "base_dir": base_dir,
                                        "source": str(Path(source).resolve()) if path is not None else source,
                                        "origins": {".".join(parts): name for parts, name in origins.items()}})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ConfigError(_describe(first, origins, source)) from None
