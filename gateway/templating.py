"""Operations-owned message templates: sandboxed Jinja2, locale fallback, dates in the
consumer's locale and time zone, and a hash that proves which files produced a message.

Layout: `<folder>/<name>/template.toml` and `<folder>/<name>/<locale>/` holding
`email.subject.j2`, `email.txt.j2`, `email.html.j2` and `sms.j2`. Template names in
include/extends/import are relative to `<folder>`. Files are reloaded when they change.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
import traceback
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime as DateTime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError, dates
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateRuntimeError,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
    pass_context,
    select_autoescape,
)
from jinja2.loaders import split_template_path
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gateway.sms import SmsInfo, sms_info, transliterate_gsm7

Channel = Literal["email", "sms"]
CHANNEL_FILES: dict[str, tuple[str, ...]] = {
    "email": ("email.subject.j2", "email.txt.j2", "email.html.j2"),
    "sms": ("sms.j2",),
}
MANIFEST = "template.toml"
_NAME = re.compile(r"[A-Za-z0-9_-]+")  # a template name is one directory, never a path


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
    sms: SmsInfo | None  # sms
    hash: str  # "sha256:<hex>", see content_hash()


@dataclass(frozen=True, slots=True)
class Manifest:
    audience: Literal["consumer", "operations"]
    sample: Mapping[str, Any]  # a realistic context for previews and checks
    required_fields: Mapping[str, tuple[str, ...]]  # per channel, dotted context paths


def content_hash(files: Mapping[str, bytes]) -> str:
    """sha256 over each file's relative name, byte length and exact bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(b"%s\0%d\0%s" % (name.encode(), len(data), data))
    return "sha256:" + digest.hexdigest()


class Templates:
    def __init__(self, folder: Path, default_locale: str) -> None:
        self.folder = Path(folder).resolve()
        self.default_locale = default_locale
        self._env = ImmutableSandboxedEnvironment(  # immutable: a template cannot alter the context it is given
            loader=_Loader(self.folder),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
            auto_reload=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.template_class = _Template
        self._env.filters.update(datetime=format_datetime, date=format_date, time=format_time, gsm7=transliterate_gsm7)

    def names(self) -> list[str]:
        return sorted(p.parent.name for p in self.folder.glob(f"*/{MANIFEST}"))

    def locales(self, name: str) -> list[str]:
        return sorted(p.name for p in self._template_dir(name).iterdir() if p.is_dir())

    def manifest(self, name: str) -> Manifest:
        file = f"{name}/{MANIFEST}"
        try:
            data = tomllib.loads((self._template_dir(name) / MANIFEST).read_text("utf-8"))
        except FileNotFoundError as exc:
            raise TemplateNotFoundError("missing", file=file) from exc
        except tomllib.TOMLDecodeError as exc:
            line = re.search(r"at line (\d+)", str(exc))
            raise TemplateError(str(exc), file=file, line=int(line[1]) if line else None) from exc
        audience = data.get("audience")
        if audience not in ("consumer", "operations"):
            raise TemplateError(f"audience must be 'consumer' or 'operations', not {audience!r}", file=file)
        fields = {channel: tuple(paths) for channel, paths in data.get("required_fields", {}).items()}
        return Manifest(audience, data.get("sample", {}), fields)

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

    def render(self, name: str, channel: Channel, locale: str, context: Mapping[str, Any]) -> Rendered:
        """Render one channel. `context["locale"]` is replaced by the locale the dates are
        formatted in: the requested one when the text is in its language, else the text's."""
        if channel not in CHANNEL_FILES:
            raise ValueError(f"channel must be 'email' or 'sms', not {channel!r}")
        resolved = self.resolve_locale(name, locale)
        files = [f"{name}/{resolved}/{file}" for file in CHANNEL_FILES[channel]]
        context = {**context, "locale": _formatting_locale(locale, resolved)}
        with self._reported(files[0]):
            templates = [self._get(file) for file in files]
            digest = self._hash(templates)
            out = [template.render(context) for template in templates]
        if channel == "sms":
            text = out[0].strip()
            return Rendered(name, resolved, channel, None, text, None, sms_info(text), digest)
        subject, text, html = out
        subject = " ".join(subject.split())  # a header: CR/LF must never reach it
        return Rendered(name, resolved, channel, subject, text.strip() + "\n", html, None, digest)

    def _template_dir(self, name: str) -> Path:
        folder = self.folder / name
        if not _NAME.fullmatch(name) or not folder.is_dir():
            raise TemplateNotFoundError("no such template", file=name)
        return folder

    def _get(self, name: str) -> _Template:
        template = self._env.get_template(name)
        assert isinstance(template, _Template)
        return template

    def _hash(self, roots: list[_Template]) -> str:
        files: dict[str, bytes] = {}
        pending = list(roots)
        while pending:
            template = pending.pop()
            assert template.name is not None
            if template.name in files:
                continue
            files[template.name] = template.data
            for ref in template.references:
                if ref is None:  # the hash could not say which file it pulled in
                    raise TemplateError("include/extends/import must name a fixed template", file=template.name)
                pending.append(self._get(ref))
        return content_hash(files)

    @contextmanager
    def _reported(self, file: str) -> Iterator[None]:
        """Turn whatever Jinja, the sandbox or a filter raises into one TemplateError."""
        try:
            yield
        except TemplateError:
            raise
        except TemplateSyntaxError as exc:
            raise TemplateError(exc.message or "syntax error", file=exc.name or file, line=exc.lineno) from exc
        except TemplateNotFound as exc:
            raise TemplateNotFoundError("template file not found", file=str(exc.name)) from exc
        except Exception as exc:
            where, line = self._locate(exc, file)
            variable = self._undefined_path(exc, where, line) if isinstance(exc, UndefinedError) else None
            message = f"undefined variable {variable!r}" if variable else _describe(exc)
            raise TemplateError(message, file=where, line=line, variable=variable) from exc

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


class _Template(Template):
    """A compiled file with what the hash needs: its bytes and the files it pulls in."""

    data: bytes
    references: tuple[str | None, ...]


class _Loader(FileSystemLoader):
    """Reads files as bytes, so the hash covers exactly the bytes that were compiled
    (FileSystemLoader reads text and translates newlines)."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        path = os.path.join(self.searchpath[0], *split_template_path(template))
        stamp = _stamp(path)  # taken before reading: an edit during the read still reloads
        try:
            data = Path(path).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise TemplateNotFound(template) from exc
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise TemplateSyntaxError("the file is not UTF-8", line, template, path) from exc
        return source, path, lambda: _stamp(path) == stamp

    def load(
        self, environment: Environment, name: str, globals: MutableMapping[str, Any] | None = None
    ) -> Template:
        source, filename, uptodate = self.get_source(environment, name)
        tree = environment.parse(source, name, filename)
        references = tuple(meta.find_referenced_templates(tree))
        code = environment.compile(tree, name, filename)
        template = environment.template_class.from_code(environment, code, globals or {}, uptodate)
        assert isinstance(template, _Template)
        template.data = source.encode()  # strict UTF-8 round-trips: these are the file's bytes
        template.references = references
        return template


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


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


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, TemplateRuntimeError) else f"{type(exc).__name__}: {exc}"


def _formatting_locale(requested: str, resolved: str) -> str:
    tag = requested.replace("_", "-")
    if tag.split("-")[0].lower() != resolved.split("-")[0].lower():
        return resolved
    try:
        Locale.parse(tag, sep="-")
    except (ValueError, TypeError, UnknownLocaleError):
        return resolved
    return tag


# Filters: values are timezone-aware datetimes; the context says the locale and time zone.


@pass_context
def format_datetime(context: Context, value: DateTime) -> str:
    """pt-BR "22/11/2026 11:43 (BRT)", en "Nov 22, 2026, 11:43 AM (GMT-03:00)"."""
    zone, locale = _consumer(context, value)
    time = dates.format_time(value, "short", tzinfo=zone, locale=locale)
    both = str(locale.datetime_formats["short"]).replace("'", "").format(time, _date(value, zone, locale))
    return f"{both} ({_zone_label(value, zone, locale)})"


@pass_context
def format_date(context: Context, value: DateTime) -> str:
    """pt-BR "29/11/2026", en "Nov 29, 2026"."""
    zone, locale = _consumer(context, value)
    return _date(value, zone, locale)


@pass_context
def format_time(context: Context, value: DateTime) -> str:
    """pt-BR "11:43 (BRT)": a time without its zone is ambiguous."""
    zone, locale = _consumer(context, value)
    return f"{dates.format_time(value, 'short', tzinfo=zone, locale=locale)} ({_zone_label(value, zone, locale)})"


def _consumer(context: Context, value: object) -> tuple[ZoneInfo, Locale]:
    if not isinstance(value, DateTime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the service passes timezone-aware ones")
    return _zone(str(context.get("timezone"))), _locale(str(context.get("locale")))


def _date(value: DateTime, zone: ZoneInfo, locale: Locale) -> str:
    # Numeric where the day comes first ("29/11/2026"); elsewhere the month by name,
    # since "11/29/2026" reads as another day to most of the world ("Nov 29, 2026").
    day_first = str(locale.date_formats["short"].pattern).lstrip().startswith("d")
    return dates.format_skeleton("yMd" if day_first else "yMMMd", value, tzinfo=zone, locale=locale)


def _zone_label(value: DateTime, zone: ZoneInfo, locale: Locale) -> str:
    # CLDR has abbreviations only where they are in common use (BRT in pt-BR, EST in en);
    # elsewhere Babel gives "-0300" or a long name, so show the localized GMT offset.
    short = dates.format_datetime(value, "z", tzinfo=zone, locale=locale)
    return short if re.fullmatch(r"[A-Z]{2,5}", short) else dates.format_datetime(value, "ZZZZ", tzinfo=zone, locale=locale)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


@lru_cache(maxsize=64)
def _locale(tag: str) -> Locale:
    try:
        return Locale.parse(tag.replace("_", "-"), sep="-")
    except (ValueError, UnknownLocaleError) as exc:
        raise ValueError(f"unknown locale {tag!r}") from exc
