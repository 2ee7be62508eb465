"""Jinja2 as the templates use it: the immutable sandbox, files read as bytes (so a content
hash covers exactly what was compiled), reloaded when their mtime or size changes, and
includes pinned to the version a render's hash names.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    meta,
)
from jinja2.environment import TemplateModule
from jinja2.loaders import split_template_path
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

# The files a render is pinned to: includes resolve to the same compiled version the hash covers.
PINNED: contextvars.ContextVar[Mapping[str, CompiledFile] | None] = contextvars.ContextVar("pinned", default=None)
# The variables of the render under way (set by Templates around every render). A file imported
# without context (`{% import "…" as say %}`) is built once and shared by every render, where
# `with context` builds it again each time; its macros still read the calling render's variables
# (and their filters its locale and zone) through RenderContext.
RENDERING: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("rendering", default=None)


class rendering:  # noqa: N801 - used as a function: `with rendering(variables):`
    """`variables` are the render under way for the block (None: no render, as while a shared
    module is built). A class rather than a generator: every render enters a few of these, and
    contextlib's machinery cost more than the contextvar it sets."""

    __slots__ = ("_variables", "_token")

    def __init__(self, variables: Mapping[str, Any] | None) -> None:
        self._variables = variables

    def __enter__(self) -> None:
        self._token = RENDERING.set(self._variables)

    def __exit__(self, *exc: object) -> None:
        RENDERING.reset(self._token)


class RenderContext(Context):
    """Jinja's context, where a name the context lacks is looked up in the render under way."""

    def resolve_or_missing(self, key: str) -> Any:
        # Jinja's own two lookups first (the documented place to add one), then the render's.
        if key in self.vars:
            return self.vars[key]
        if key in self.parent:
            return self.parent[key]
        under_way = RENDERING.get()
        if under_way is not None and key in under_way:
            return under_way[key]
        return missing


# What a plain dict answers as an attribute: nothing else can shadow one of its keys.
_DICT_ATTRIBUTES = frozenset(dir(dict))


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    """Resolves include/extends/import to the files a render is pinned to, when it is."""

    context_class = RenderContext

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        # Jinja gives each template a ChainMap over the environment's globals, so that globals added
        # later show through; every render then copies it to a dict and a set, a Python step per
        # name (~20 µs an opening). Nothing adds globals here after start-up: a dict of its own.
        return {**self.globals, **(d or {})}

    def getattr(self, obj: Any, attribute: str) -> Any:
        # The context is plain dicts: `protocol.number` reads the key straight away. Jinja would try
        # the attribute first, raising and catching an AttributeError for every field of every render.
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        # `say.history`: a macro of an imported file, which the sandbox's checks would pass anyway.
        elif type(obj) is TemplateModule and not attribute.startswith("_"):
            value = obj.__dict__.get(attribute)
            if type(value) is Macro:
                return value
        return super().getattr(obj, attribute)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's names
        # A macro is Jinja's own and always safe to call: the sandbox's check and Context.call's
        # search for what the callable takes decide nothing (a dozen macro calls an opening).
        # What Context.call does for it is kept: it is given the caller's evaluation context
        # (whose autoescaping decides whether its output is already safe HTML), the frame's
        # variables it is handed are dropped, and a StopIteration is an undefined value.
        if type(__obj) is Macro:
            kwargs.pop("_block_vars", None)
            kwargs.pop("_loop_vars", None)
            try:
                return __obj(__context.eval_ctx, *args, **kwargs)
            except StopIteration:
                return __context.environment.undefined(
                    "value was undefined because a callable raised a StopIteration exception")
        return super().call(__context, __obj, *args, **kwargs)

    def get_template(self, name: str | Template, parent: str | None = None,
                     globals: MutableMapping[str, Any] | None = None) -> Template:
        pinned = PINNED.get()
        if pinned is not None and isinstance(name, str):
            path = self.join_path(name, parent) if parent is not None else name
            if path in pinned:
                return pinned[path]
        return super().get_template(name, parent, globals)


class CompiledFile(Template):
    """A compiled file with what the hash needs: its bytes and the files it pulls in."""

    data: bytes
    references: tuple[str | None, ...]
    _global_names: frozenset[str] | None = None

    def _get_default_module(self, ctx: Context | None = None) -> TemplateModule:
        # Jinja builds a module apart for an importer whose globals this file lacks, and finds out
        # on every import by a set difference over the ChainMap of this file's globals (a twentieth
        # of rendering an opening). Nothing adds globals to the environment after start-up, so the
        # names are taken once.
        if self._global_names is None:
            self._global_names = frozenset(self.globals)
        # Built without the render under way: this module is shared by every render (Jinja keeps
        # it), and a name its top level read from one render's variables (`{% set hello =
        # consumer.name %}`) would be kept for the next consumer's. Its top level sees what any
        # import without context sees; its macros, called later, read the render that calls them.
        with rendering(None):
            if ctx is not None and ctx.globals_keys - self._global_names:
                return super()._get_default_module(ctx)
            return super()._get_default_module()


class BytesLoader(FileSystemLoader):
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
        assert isinstance(template, CompiledFile)
        template.data = source.encode()  # strict UTF-8 round-trips: these are the file's bytes
        template.references = references
        return template


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
