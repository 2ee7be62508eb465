"""Operations-owned message templates: sandboxed Jinja2, locale fallback, dates in the
consumer's locale and time zone (`dates`), and a hash that proves which files produced a message.

Layout: `<folder>/<name>/template.toml` and `<folder>/<name>/<locale>/` holding
`email.subject.j2`, `email.txt.j2`, `email.html.j2`, `sms.j2` and `whatsapp.j2`. Template names in
include/extends/import are relative to `<folder>`.

Files are reloaded when they change (an mtime and size check on each render, or once for all
the renders of a `one_look()` block: the messages of one event, or of the events sharing a
commit). An edit that breaks a template is not served: the last version that rendered well
for the same template, locale and channel keeps serving, with a `template_fallback` warning
naming the file and line, until the file is fixed. `protocol-gateway templates check` reports the error.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import re
import stat
import tomllib
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from jinja2 import (
    StrictUndefined,
    TemplateNotFound,
    TemplateRuntimeError,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
    select_autoescape,
)

from gateway.config.languages import reads_spanish
from gateway.rendering.dates import format_date, format_datetime, format_time, formatting_locale
from gateway.rendering.lists import or_list
from gateway.rendering.numbers import grouped, grouped_html
from gateway.rendering.sandbox import PINNED, BytesLoader, CompiledFile, SandboxEnvironment, rendering
from gateway.rendering.sms import SmsInfo, clean_spaces, sms_info, transliterate_gsm7
from gateway.rendering.whatsapp import WhatsAppSpec, WhatsAppSpecError, parse_spec

log = logging.getLogger(__name__)

Channel = Literal["email", "sms", "whatsapp"]
CHANNEL_FILES: dict[str, tuple[str, ...]] = {
    "email": ("email.subject.j2", "email.txt.j2", "email.html.j2"),
    "sms": ("sms.j2",),
    "whatsapp": ("whatsapp.j2",),
}
MANIFEST = "template.toml"
# The folder of pieces messages share (`{% extends "_partials/layout.html.j2" %}`): not a template.
PARTIALS = "_partials"
# The pages for people (the consumer's page), per locale, with their stylesheet: not a template.
PAGES = "_page"
_NAME = re.compile(r"[A-Za-z0-9_-]+")  # a template name is one directory, never a path
# Inside `Templates.one_look()`: which Templates looks, and what it has already looked at in the
# block: files and template folders by name, compiled templates by (name, locale, channel).
_Looked = dict[str | tuple[str, ...], Any]
_LOOK: contextvars.ContextVar[tuple[Templates, _Looked] | None] = contextvars.ContextVar("look", default=None)
_ONE_LINE = re.compile(r"[ \t\r\n]+")
T = TypeVar("T")


class TemplateError(Exception):
    """A template cannot be found, read or rendered. str() is one line: `file:line: what`."""

    def __init__(self, message: str, *, file: str, line: int | None = None, variable: str | None = None) -> None:
        self.message = " ".join(message.split())
        self.file = file  # relative to the templates folder
        self.line = line
        self.variable = variable
        super().__init__(f"{file}:{line}: {self.message}" if line else f"{file}: {self.message}")


class TemplateNotFoundError(TemplateError):
    """No such template, locale or channel file."""


@dataclass(frozen=True, slots=True)
class Rendered:
    template: str
    locale: str  # the locale directory actually used
    channel: Channel
    subject: str | None  # email: one line, fit for a header
    text: str  # the plain-text email body, or the SMS body
    html: str | None  # email
    sms: SmsInfo | None  # sms: how `text` goes over the air
    hash: str  # "sha256:<hex>", see content_hash()
    transliterated: bool = False  # sms: `text` was transliterated to GSM-7 (sms.transliterate)
    sms_written: SmsInfo | None = None  # sms: the counts of the text as the template wrote it
    sms_transliterated: SmsInfo | None = None  # sms: the counts had it been transliterated
    fallback: bool = False  # the files on disk are broken: this is the last good version


@dataclass(frozen=True, slots=True)
class Manifest:
    audience: Literal["consumer", "operations"]
    sample: Mapping[str, Any]  # a realistic context for previews and checks
    required_fields: Mapping[str, tuple[str, ...]]  # per channel, "path" or "path|filter"
    # Other samples (`[samples.<name>]`), each already merged over `sample`: the check renders
    # them all and counts SMS segments for the longest.
    samples: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Fields the audience would require that this template does not show, each with why.
    waived: Mapping[str, str] = field(default_factory=dict)
    # `[sms] split = true`: the gateway sends this SMS in parts (the history), each part at most
    # fallback.max_sms_segments segments, so its length is not held to sms.max_segments.
    sms_split: bool = False
    # `[whatsapp]`: the approved template a message goes as outside the 24-hour window.
    whatsapp: WhatsAppSpec = WhatsAppSpec()

    def all_samples(self) -> dict[str, Mapping[str, Any]]:
        return {"sample": self.sample, **self.samples}


def content_hash(files: Mapping[str, bytes]) -> str:
    """sha256 over each file's relative name, byte length and exact bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(b"%s\0%d\0%s" % (name.encode(), len(data), data))
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True, slots=True)
class _Version:
    """The compiled files one render uses (its roots and everything they include) and their hash."""

    roots: tuple[CompiledFile, ...]
    files: Mapping[str, CompiledFile]
    hash: str




class Templates:
    def __init__(self, folder: Path, default_locale: str, *, sms_transliterate: bool = False,
                 auto_reload: bool = True) -> None:
        self.folder = Path(folder).resolve()
        self.default_locale = default_locale
        self.sms_transliterate = sms_transliterate
        self._env = SandboxEnvironment(  # immutable: a template cannot alter the context it is given
            loader=BytesLoader(self.folder),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
            auto_reload=auto_reload,
            # A plain dict, not Jinja's locked LRU of 400: the keys are the files of the folder.
            cache_size=-1,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.template_class = CompiledFile
        self._last_good: dict[tuple[str, str, str], _Version] = {}
        # Every event renders: what does not change between renders is kept, keyed by what
        # would show a change (a folder's mtime, the identity of Jinja's compiled files).
        self._locales: dict[str, tuple[int, list[str]]] = {}
        self._folders: dict[str, tuple[Path, str]] = {}  # a template's folder, as a Path and as text
        self._versions: dict[tuple[str, ...], _Version] = {}
        self._broken: dict[tuple[str, str, str], str] = {}  # what was last logged, so it is logged once
        self._manifests: dict[str, tuple[int, Manifest]] = {}
        self._expressions: dict[str, Any] = {}  # a WhatsApp variable's expression, compiled once
        self._env.filters.update(datetime=format_datetime, date=format_date, time=format_time, gsm7=transliterate_gsm7,
                                 grouped=grouped, grouped_html=grouped_html, or_list=or_list)

    @property
    def filters(self) -> dict[str, Any]:
        """The filters a template can use, Jinja's and ours (datetime, gsm7, or_list...)."""
        return dict(self._env.filters)

    def names(self) -> list[str]:
        return sorted(p.parent.name for p in self.folder.glob(f"*/{MANIFEST}"))

    def locales(self, name: str) -> list[str]:
        folder, found = self._template_stat(name)
        stamp = found.st_mtime_ns  # a locale folder added or removed changes it
        cached = self._locales.get(name)
        if cached is None or cached[0] != stamp:
            cached = (stamp, sorted(p.name for p in folder.iterdir() if p.is_dir()))
            self._locales[name] = cached
        return list(cached[1])

    def manifest(self, name: str) -> Manifest:
        """`template.toml`, read again only when it changed (every WhatsApp message reads it)."""
        path = self._template_dir(name) / MANIFEST
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError as exc:
            raise TemplateNotFoundError("missing", file=f"{name}/{MANIFEST}") from exc
        cached = self._manifests.get(name)
        if cached is None or cached[0] != stamp:
            cached = (stamp, self._read_manifest(name, path))
            self._manifests[name] = cached
        return cached[1]

    def _read_manifest(self, name: str, path: Path) -> Manifest:
        file = f"{name}/{MANIFEST}"
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except FileNotFoundError as exc:
            raise TemplateNotFoundError("missing", file=file) from exc
        except tomllib.TOMLDecodeError as exc:
            line = re.search(r"at line (\d+)", str(exc))
            raise TemplateError(str(exc), file=file, line=int(line[1]) if line else None) from exc
        audience = data.get("audience")
        if audience not in ("consumer", "operations"):
            raise TemplateError(f"audience must be 'consumer' or 'operations', not {audience!r}", file=file)
        fields = {channel: tuple(paths) for channel, paths in data.get("required_fields", {}).items()}
        sample = data.get("sample", {})
        samples = data.get("samples", {})
        waived = data.get("waive", {})
        if not isinstance(samples, dict) or not all(isinstance(v, dict) for v in samples.values()):
            raise TemplateError("[samples.<name>] must be tables of sample data", file=file)
        if not isinstance(waived, dict) or not all(isinstance(v, str) and v.strip() for v in waived.values()):
            raise TemplateError('[waive] must map a field to the reason it is not shown: "path" = "why"', file=file)
        sms = data.get("sms", {})
        if not isinstance(sms, dict) or not isinstance(sms.get("split", False), bool):
            raise TemplateError("[sms] split must be true or false", file=file)
        merged = {name: _deep_merge(sample, extra) for name, extra in samples.items()}
        try:
            whatsapp = parse_spec(data.get("whatsapp", {}))
        except WhatsAppSpecError as exc:
            raise TemplateError(str(exc), file=file) from exc
        return Manifest(audience, sample, fields, merged, waived, sms_split=sms.get("split", False),
                        whatsapp=whatsapp)

    def whatsapp_content(self, rendered: Rendered, requested_locale: str, context: Mapping[str, Any]) -> dict[str, Any]:
        """What a WhatsApp message goes as outside the 24-hour window: the approved template's Content
        SID for the locale (None when the company registered none) and its variables."""
        spec = self.manifest(rendered.template).whatsapp
        values = self.whatsapp_values(rendered, requested_locale, context, spec)
        # WhatsApp refuses an empty variable, and "None" is no text for a consumer: without every
        # value (a link to the page a protocol has no token for yet) it cannot go as the template.
        whole = all(v and v != "None" for v in values.values())
        return {"content_sid": spec.sid_for(rendered.locale) if whole else None, "variables": values}

    def whatsapp_values(self, rendered: Rendered, requested_locale: str, context: Mapping[str, Any],
                        spec: WhatsAppSpec) -> dict[str, str]:
        """The approved template's variables for `context`, each shown as whatsapp.j2 shows it (the
        same filters, locale and zone), on one line: WhatsApp refuses a variable with a line break."""
        context = {**context, "locale": formatting_locale(requested_locale, rendered.locale)}
        file = f"{rendered.template}/{MANIFEST}"
        values = {}
        for key, field_ in spec.variables.items():
            source = "{{ " + spec.expression(key) + " }}"
            try:
                with self._reported(file):
                    compiled = self._expressions.get(source)
                    if compiled is None:
                        compiled = self._expressions[source] = self._env.from_string(source)
                    # Only line breaks, tabs and runs of spaces (WhatsApp refuses them in a variable):
                    # the narrow no-break space inside "11:43 AM" is part of how the date is written.
                    values[key] = _ONE_LINE.sub(" ", compiled.render(context)).strip(" ")
            except TemplateError as exc:
                why = "is not a field of the context" if exc.variable else exc.message
                raise TemplateError(f'[whatsapp] variables "{key}": {field_} {why}', file=file,
                                    variable=field_.partition("|")[0].strip()) from exc
        return values

    def page_locale(self, locale: str) -> str:
        """The locale of the pages for `locale`; Spain's co-official languages fall back to Spanish
        where the pages are not written in them, rather than to the default locale."""
        resolved = self.resolve_locale(PAGES, locale)
        if reads_spanish(locale) and not reads_spanish(resolved) and "es" in self.locales(PAGES):
            return "es"
        return resolved

    def render_page(self, file: str, locale: str, context: Mapping[str, Any]) -> str:
        """A page for people from `_page/<locale>/<file>` (the consumer's page), in the same
        sandbox and with the same filters as the messages; the locale resolved as theirs, and
        given to the page as `lang` (its `<html lang>`)."""
        resolved = self.page_locale(locale)
        path = f"{PAGES}/{resolved}/{file}"
        context = {**context, "locale": formatting_locale(locale, resolved), "lang": resolved}
        with rendering(context), self._reported(path):
            return self._get(path).render(context)

    def resolve_locale(self, name: str, locale: str) -> str:
        """The exact locale, else the same one in other case, else its language ("es-ES" ->
        "es"), else another country of that language ("pt-PT" -> "pt-BR"), else the default."""
        available = self.locales(name)
        wanted = locale.replace("_", "-")
        language = wanted.split("-")[0].lower()
        if wanted in available:
            return wanted
        by_lower = {loc.lower(): loc for loc in available}
        for key in (wanted.lower(), language):
            if key in by_lower:
                return by_lower[key]
        for loc in available:
            if loc.split("-")[0].lower() == language:
                return loc
        if self.default_locale in available:
            return self.default_locale
        raise TemplateNotFoundError(f"no locale {locale!r} nor the default {self.default_locale!r}", file=name)

    def render(self, name: str, channel: Channel, locale: str, context: Mapping[str, Any], *,
               fallback: bool = True) -> Rendered:
        """Render one channel. `context["locale"]` is replaced by the locale the dates are
        formatted in: the requested one when the text is in its language, else the text's.

        With `fallback`, a template whose files are broken now renders with the last
        version that rendered well (and says so in `Rendered.fallback`); previews and
        checks pass `fallback=False` to see the error.
        """
        if channel not in CHANNEL_FILES:
            raise ValueError(f"channel must be 'email', 'sms' or 'whatsapp', not {channel!r}")
        resolved = self.resolve_locale(name, locale)
        key = (name, resolved, channel)
        context = {**context, "locale": formatting_locale(locale, resolved)}
        try:
            version = self._compile(name, resolved, channel)
            out = self._run(version, context)
        except TemplateError as error:
            good = self._last_good.get(key) if fallback else None
            if good is None:
                raise
            out = self._run_or_none(good, context)
            if out is None:
                raise  # the data, not the edit, is at fault: say what the files on disk say
            self._report_broken(key, error)
            return self._rendered(name, resolved, channel, good, out, fallback=True)
        self._last_good[key] = version
        if self._broken.pop(key, None) is not None:
            log.info("template fixed", extra={"action": "template_recovered", "template": name, "locale": resolved,
                                              "channel": channel})
        return self._rendered(name, resolved, channel, version, out, fallback=False)

    def warm(self, names: list[str] | None = None) -> list[TemplateError]:
        """Render every template, locale and channel with its sample data, so that an edit
        made after start-up that breaks one falls back to what was on disk at start.
        Returns the errors found (the daemon logs them; `templates check` reports them)."""
        errors: list[TemplateError] = []
        for name in names if names is not None else self.names():
            try:
                sample = self.manifest(name).sample
                for locale in self.locales(name):
                    for channel in self.channels(name, locale):
                        try:
                            self.render(name, channel, locale, sample, fallback=False)  # type: ignore[arg-type]
                        except TemplateError as exc:
                            errors.append(exc)
            except TemplateError as exc:
                errors.append(exc)
        return errors

    def channels(self, name: str, locale: str) -> list[str]:
        """The channels a locale has at least one file of (a partial channel is an error to render)."""
        folder = self._template_dir(name) / locale
        return [c for c, files in CHANNEL_FILES.items() if any((folder / f).is_file() for f in files)]

    def _compile(self, name: str, resolved: str, channel: str) -> _Version:
        """Once a look, when it compiles: the files a look sees do not change within it. A failure
        is not kept: the files' looks keep a broken file broken, and each render raises its own."""
        return self._in_look((name, resolved, channel), lambda: self._version(name, resolved, channel),
                             keep_errors=False)  # a tuple: no file's name

    def _version(self, name: str, resolved: str, channel: str) -> _Version:
        files = [f"{name}/{resolved}/{file}" for file in CHANNEL_FILES[channel]]
        with self._reported(files[0]):
            roots = tuple(self._get(file) for file in files)
            used = self._closure(roots)
        # Jinja hands back the same object until a file changes on disk: same objects, same hash.
        identity = tuple(f"{n}:{id(t)}" for n, t in used.items())
        version = self._versions.get(identity)
        if version is None or version.roots != roots:
            version = _Version(roots, used, content_hash({n: t.data for n, t in used.items()}))
            if len(self._versions) > 1024:  # edits over a long life: never grow without bound
                self._versions.clear()
            self._versions[identity] = version
        return version

    def _run(self, version: _Version, context: Mapping[str, Any]) -> list[str]:
        token = PINNED.set(version.files)
        try:
            assert version.roots[0].name is not None
            with rendering(context), self._reported(version.roots[0].name):
                return [template.render(context) for template in version.roots]
        finally:
            PINNED.reset(token)

    def _run_or_none(self, version: _Version, context: Mapping[str, Any]) -> list[str] | None:
        try:
            return self._run(version, context)
        except TemplateError:
            return None

    def _rendered(self, name: str, resolved: str, channel: Channel, version: _Version, out: list[str], *,
                  fallback: bool) -> Rendered:
        if channel == "sms":
            written = clean_spaces(out[0]).strip()
            transliterated = transliterate_gsm7(written)
            as_written, as_transliterated = sms_info(written), sms_info(transliterated)
            text, info = (transliterated, as_transliterated) if self.sms_transliterate else (written, as_written)
            return Rendered(name, resolved, channel, None, text, None, info, version.hash,
                            transliterated=self.sms_transliterate, sms_written=as_written,
                            sms_transliterated=as_transliterated, fallback=fallback)
        if channel == "whatsapp":
            # WhatsApp shows line breaks as written: trailing spaces and runs of blank lines go.
            return Rendered(name, resolved, channel, None, _paragraphs(out[0]), None, None, version.hash,
                            fallback=fallback)
        subject, text, html = out
        subject = " ".join(subject.split())  # a header: CR/LF must never reach it
        return Rendered(name, resolved, channel, subject, text.strip() + "\n", html, None, version.hash,
                        fallback=fallback)

    def _report_broken(self, key: tuple[str, str, str], error: TemplateError) -> None:
        if self._broken.get(key) == str(error):
            return
        self._broken[key] = str(error)
        name, locale, channel = key
        log.warning("template broken: serving the last good version", extra={
            "action": "template_fallback", "template": name, "locale": locale, "channel": channel,
            "file": error.file, "line": error.line, "variable": error.variable, "error": error.message})

    @contextmanager
    def one_look(self) -> Iterator[None]:
        """Renders in the block see each file (and each template's folder) as it was at their
        first look: one event's messages come from one version of every file they share, and
        pay one `stat` a file, not one a render (an opening by email and SMS looked ten or
        more times, ~4 µs each). A block inside another is part of it: the events of one
        shared commit render in one (store/group_commit.py), a look for the whole batch."""
        if self._looked() is not None:
            yield
            return
        token = _LOOK.set((self, {}))
        try:
            yield
        finally:
            _LOOK.reset(token)

    def _looked(self) -> _Looked | None:
        look = _LOOK.get()
        return look[1] if look is not None and look[0] is self else None

    def _in_look(self, key: str | tuple[str, ...], look_at: Callable[[], T], *, keep_errors: bool = True) -> T:
        """`look_at()`, once a key inside a `one_look()` block: its answer, or its error, holds
        for the rest of the block (a file broken at the look is broken for every message).
        Without `keep_errors`, only an answer is kept, and a failure is asked again next time."""
        looked = self._looked()
        if looked is None:
            return look_at()
        if key not in looked:
            try:
                looked[key] = look_at()
            except Exception as exc:
                if not keep_errors:
                    raise
                looked[key] = exc
        found = looked[key]
        if isinstance(found, Exception):
            # Raised afresh each time: a traceback grows with every raise of one object, and a
            # shared commit's batch (64 events at most) would gather all of its members' frames.
            raise found.with_traceback(None)
        return found  # type: ignore[no-any-return]

    def _template_dir(self, name: str) -> Path:
        return self._template_stat(name)[0]

    def _template_stat(self, name: str) -> tuple[Path, os.stat_result]:
        """The template's folder and its stat, in one system call (every render asks)."""
        return self._in_look(name + "/", lambda: self._stat_folder(name))  # a folder: no file's name ends so

    def _stat_folder(self, name: str) -> tuple[Path, os.stat_result]:
        folder = self._folders.get(name)
        if folder is None:
            if not _NAME.fullmatch(name):
                raise TemplateNotFoundError("no such template", file=name)
            folder = (self.folder / name, os.path.join(self.folder, name))
            if len(self._folders) > 1024:  # names asked for that do not exist: never grow without bound
                self._folders.clear()
            self._folders[name] = folder
        try:
            found = os.stat(folder[1])  # the text, not the Path: pathlib's joins cost more than the stat
        except OSError:
            found = None
        if found is None or not stat.S_ISDIR(found.st_mode):
            raise TemplateNotFoundError("no such template", file=name)
        return folder[0], found

    def _get(self, name: str) -> CompiledFile:
        template = self._in_look(name, lambda: self._env.get_template(name))  # Jinja looks (templates.reload)
        assert isinstance(template, CompiledFile)
        return template

    def _closure(self, roots: tuple[CompiledFile, ...]) -> dict[str, CompiledFile]:
        """The roots and every file they pull in, by name: what the hash must cover."""
        files: dict[str, CompiledFile] = {}
        pending: list[CompiledFile | str] = list(roots)
        while pending:
            item = pending.pop()
            if isinstance(item, str) and item in files:
                continue  # a file pulled in by several: loaded (and its mtime read) once
            template = self._get(item) if isinstance(item, str) else item
            assert template.name is not None
            if template.name in files:
                continue
            files[template.name] = template
            for ref in template.references:
                if ref is None:  # the hash could not say which file it pulled in
                    raise TemplateError("include/extends/import must name a fixed template", file=template.name)
                pending.append(ref)
        return files

    def _reported(self, file: str) -> _Reported:
        """Turn whatever Jinja, the sandbox or a filter raises in the block into one TemplateError."""
        return _Reported(self, file)

    def _translated(self, exc: Exception, file: str) -> TemplateError:
        if isinstance(exc, TemplateSyntaxError):
            return TemplateError(exc.message or "syntax error", file=exc.name or file, line=exc.lineno)
        if isinstance(exc, TemplateNotFound):
            return TemplateNotFoundError("template file not found", file=str(exc.name))
        where, line = self._locate(exc, file)
        variable = self._undefined_path(exc, where, line) if isinstance(exc, UndefinedError) else None
        message = f"undefined variable {variable!r}" if variable else _describe(exc)
        return TemplateError(message, file=where, line=line, variable=variable)

    def _locate(self, exc: BaseException, default: str) -> tuple[str, int | None]:
        # Jinja rewrites tracebacks so that frames in a template carry its file and line.
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            path = Path(frame.filename)
            if path.is_relative_to(self.folder):
                return path.relative_to(self.folder).as_posix(), frame.lineno
        return default, None

    def _undefined_path(self, exc: UndefinedError, file: str, line: int | None) -> str | None:
        """The dotted expression that was undefined: Jinja's message names only the last
        attribute ("'dict object' has no attribute 'numbr'"), the template's AST the rest."""
        message = exc.message or ""
        if top := re.fullmatch(r"'(.+)' is undefined", message):
            return top[1]
        attr = re.search(r"has no (?:attribute|element) (.+)$", message)
        if not attr:
            return None
        key = attr[1].strip("'\"")
        try:
            tree = self._env.parse((self.folder / file).read_text("utf-8"))
        except Exception:
            return key
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            if node.lineno == line and (path := _dotted(node)) and path.rsplit(".", 1)[-1] == key:
                return path
        return key


def warm_templates(templates: Templates) -> None:
    """At start-up: render everything with its samples, so later broken edits have a version
    to fall back to; what does not render is logged (`templates check` says more)."""
    for error in templates.warm():
        log.warning("template does not render with its sample", extra={
            "action": "template_invalid", "file": error.file, "line": error.line, "variable": error.variable,
            "error": error.message})


def _paragraphs(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _dotted(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        base = _dotted(node.node)
        return base and f"{base}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = _dotted(node.node)
        return base and f"{base}.{node.arg.value}"
    return None


class _Reported:
    """`Templates._reported`: a class rather than a generator, since every render enters it twice
    and contextlib's machinery cost more than the block's own bookkeeping."""

    __slots__ = ("_templates", "_file")

    def __init__(self, templates: Templates, file: str) -> None:
        self._templates, self._file = templates, file

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or isinstance(exc, TemplateError) or not isinstance(exc, Exception):
            return False  # nothing, ours already, or not an error (a cancellation): as it is
        raise self._templates._translated(exc, self._file) from exc


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, TemplateRuntimeError) else f"{type(exc).__name__}: {exc}"
