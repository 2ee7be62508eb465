"""The console's scratch pad: a draft of a template's files rendered as the preview renders them, never saved.

The draft is written to a temporary folder that holds only it and the template's
`template.toml` (for the sample), and rendered there by a `Templates` of its own: the same
immutable sandbox, filters, undefined-is-an-error, autoescaping of `.html.j2` and error
locations (file, line, variable) as every message, without a second way to render. Nothing
reaches the templates folder, and the folder is gone when the render ends. A draft cannot
include other templates' files: only its own are there.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.rendering.preview import preview
from gateway.rendering.templates import CHANNEL_FILES, MANIFEST, PARTIALS, Templates

# Form field -> the file it drafts.
FIELDS = {"subject": "email.subject.j2", "text": "email.txt.j2", "html": "email.html.j2", "sms": "sms.j2"}


class DraftRefused(ValueError):
    """The draft cannot be rendered as given; the message says why."""


def current_files(templates: Templates, name: str, locale: str) -> dict[str, str]:
    """The template's files in `locale` as they are on disk, to start a draft from (field -> text)."""
    folder = templates.folder / name / templates.resolve_locale(name, locale)
    out = {}
    for field, file in FIELDS.items():
        try:
            out[field] = (folder / file).read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            out[field] = ""
    return out


def render_draft(templates: Templates, name: str, locale: str, drafted: Mapping[str, str], data: Mapping[str, Any],
                 *, max_segments: int) -> dict[str, Any]:
    """`preview()` of the drafted files; raises TemplateError (with the draft's file, line, variable)."""
    files = {FIELDS[f]: text for f, text in drafted.items() if f in FIELDS}
    email = any(files.get(f, "").strip() for f in CHANNEL_FILES["email"])
    sms = bool(files.get("sms.j2", "").strip())
    if not email and not sms:
        raise DraftRefused("type at least one part of the draft: a subject, a text, an HTML or an SMS")
    resolved = templates.resolve_locale(name, locale)
    with tempfile.TemporaryDirectory(prefix="pgw-draft-") as folder:
        root = Path(folder)
        (root / name / resolved).mkdir(parents=True)
        shutil.copyfile(templates.folder / name / MANIFEST, root / name / MANIFEST)
        # The pieces every message shares (the email frame, the ways to ask): a draft extends them
        # as the files do. Read-only here too: the draft folder is thrown away.
        if (templates.folder / PARTIALS).is_dir():
            shutil.copytree(templates.folder / PARTIALS, root / PARTIALS)
        # An email is its three files together: one typed alone renders with the others empty.
        wanted = [*(CHANNEL_FILES["email"] if email else ()), *(CHANNEL_FILES["sms"] if sms else ())]
        for file in wanted:
            (root / name / resolved / file).write_text(files.get(file, ""), encoding="utf-8")
        draft = Templates(root, templates.default_locale, sms_transliterate=templates.sms_transliterate,
                          auto_reload=False)
        return preview(draft, name, locale=resolved, data=data, max_segments=max_segments)
