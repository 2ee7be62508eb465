"""A template rendered as the consumer would get it, for the CLI and `POST /v1/templates/{name}/preview`.

The data is the template's `[sample]` with the caller's data merged over it, so a preview
needs only what differs. Strings written as RFC 3339 date-times with an offset
(`2026-11-22T14:43:00Z`) become date-times, as the service passes them; JSON has no other
way to say one. Previews never fall back to a last good version: they show the error.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.rendering.page_link import render_consumer
from gateway.rendering.sms import SmsInfo
from gateway.rendering.templates import CHANNEL_FILES, Rendered, TemplateError, TemplateNotFoundError, Templates
from gateway.rendering.whatsapp import approval_text

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$")


class PreviewDataError(ValueError):
    """The data given cannot be used (not JSON/TOML, not an object)."""


def load_data(path: Path) -> dict[str, Any]:
    """A data file for `templates preview --data`: JSON, or TOML (native date-times) by suffix."""
    try:
        raw = path.read_text("utf-8")
    except OSError as exc:
        raise PreviewDataError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw) if path.suffix.lower() == ".toml" else json.loads(raw)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PreviewDataError(f"{path}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise PreviewDataError(f"{path}: expected an object (a table) of template data")
    return data


def with_datetimes(value: Any) -> Any:
    """RFC 3339 strings with an offset become aware datetimes, anywhere in the data."""
    if isinstance(value, str) and _RFC3339.match(value):
        try:
            return datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
        except ValueError:
            return value
    if isinstance(value, Mapping):
        return {k: with_datetimes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [with_datetimes(v) for v in value]
    return value


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def preview(templates: Templates, name: str, *, locale: str | None = None, channel: str | None = None,
            data: Mapping[str, Any] | None = None, max_segments: int) -> dict[str, Any]:
    """Render `name` in every channel the locale has (or just `channel`); raises TemplateError."""
    if name not in templates.names():
        raise TemplateNotFoundError("no such template", file=name)
    manifest = templates.manifest(name)
    context = merge(manifest.sample, with_datetimes(dict(data or {})))
    asked = locale or str(context.get("locale") or templates.default_locale)
    resolved = templates.resolve_locale(name, asked)
    channels = [channel] if channel else templates.channels(name, resolved)
    if channel and channel not in CHANNEL_FILES:
        raise ValueError(f"channel must be one of {', '.join(CHANNEL_FILES)}")
    out: dict[str, Any] = {"template": name, "audience": manifest.audience, "locale": resolved,
                           "requested_locale": asked, "email": None, "sms": None, "whatsapp": None, "warnings": []}
    for ch in channels:
        rendered = render_consumer(templates, name, ch, asked, context, fallback=False)  # type: ignore[arg-type]
        if ch == "email":
            out["email"] = {"subject": rendered.subject, "text": rendered.text, "html": rendered.html,
                            "hash": rendered.hash}
        elif ch == "whatsapp":
            out["whatsapp"] = whatsapp_document(templates, rendered, asked, context)
            if len(rendered.text) > out["whatsapp"]["limit"]:
                out["warnings"].append(f"whatsapp: {len(rendered.text)} characters, above WhatsApp's "
                                       f"{out['whatsapp']['limit']:,}")
        else:
            out["sms"] = sms_document(rendered)
            if rendered.sms and rendered.sms.segments > max_segments:
                out["warnings"].append(f"sms: {rendered.sms.segments} segments, above sms.max_segments ({max_segments})")
    return out


def whatsapp_document(templates: Templates, rendered: Rendered, locale: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """The text, its length against WhatsApp's limit, and how it goes outside the 24-hour window
    (what the gateway would send: `Templates.whatsapp_content`), and the body to submit for approval."""
    spec = templates.manifest(rendered.template).whatsapp
    content = templates.whatsapp_content(rendered, locale, context)
    values = content["variables"]
    return {"text": rendered.text, "hash": rendered.hash, "characters": len(rendered.text),
            "limit": spec.limit, "kind": spec.kind, "content_sid": content["content_sid"], "variables": values,
            "approval_text": spec.approved.get(rendered.locale) or (approval_text(rendered.text, values)
                                                                    if spec.variables else None)}


def sms_document(rendered: Rendered) -> dict[str, Any]:
    assert rendered.sms and rendered.sms_written and rendered.sms_transliterated

    def info(i: SmsInfo) -> dict[str, Any]:
        return {"encoding": i.encoding, "units": i.units, "segments": i.segments}

    return {"text": rendered.text, "hash": rendered.hash, **info(rendered.sms), "transliterate": rendered.transliterated,
            "as_written": info(rendered.sms_written), "transliterated": info(rendered.sms_transliterated)}


def describe(templates: Templates, name: str) -> dict[str, Any]:
    """One entry of the template list: its audience, locales and the channels they have; a
    template.toml that cannot be read gives no audience and says why in `error`."""
    locales = templates.locales(name)
    entry: dict[str, Any] = {"name": name, "audience": None, "locales": locales,
                             "channels": sorted({c for loc in locales for c in templates.channels(name, loc)})}
    try:
        entry["audience"] = templates.manifest(name).audience
    except TemplateError as exc:
        entry["error"] = str(exc)
    return entry
