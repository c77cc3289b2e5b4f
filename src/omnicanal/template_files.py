"""Template files → compiled fields, with every mistake of every file reported at once, by file and line.

The brief asks for "consistent information on every channel": a journey names a template (`cart_discount`) and
a list of channels, and whichever channel wins gets its own variant of the same message, in the customer's
language. A file `templates/<name>.yaml` holds all of them, locales at the top, channels under each locale,
fields under each channel (the fields each channel has are in the catalogue, `channels.CHANNELS`):

    fr:
      push: {title: "{{ customer.first_name | default('Psst', true) }}, votre panier vous attend"}
    en:
      push: {title: "...", body: "..."}

Everything that can be checked before a message is sent is checked here, so `omnicanal validate` shows every
mistake in one run. Each field is compiled once, here; rendering (render.py), which is on the hot path of every
send, only runs compiled templates.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeAlias

import jinja2
from jinja2 import nodes
from jinja2.nodes import EvalContext
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from omnicanal.channels import CHANNELS
from omnicanal.errors import ConfigError, Problem, TemplateError
from omnicanal.expressions import UNCOMPILABLE, LightContext, make_sandbox, uncompilable
from omnicanal.suggest import did_you_mean
from omnicanal.text_checks import NotDataConstant
from omnicanal.yaml_lines import YamlSyntaxError, compose, line_of_node, project_files, read_source, unreadable

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_LOCALE = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")
_YAML_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class CompiledField:
    """One compiled template string, with what an error needs to point a person at it."""

    path: str
    where: str  # "template cart_discount (fr, push.title)"
    line: int  # line of the field's key in the file
    first_line: int | None  # file line of the template's line 1, when the source maps line for line
    template: jinja2.Template
    may_be_empty: bool  # values inside push data / webhook payload may; a message text may not
    constant: str | None = field(default=None, compare=False)
    """The text, for a field without any Jinja tag (a URL in push data): nothing to run."""

    def render(self, scope: Mapping[str, Any]) -> str:
        """The field's text (not stripped), as `template.render(scope)` gives it — the same errors, their
        tracebacks rewritten to template lines — without copying the scope and the globals first: a message
        renders several fields, and each of those copies was a fifth of the render."""
        if self.constant is not None:
            return self.constant
        template = self.template
        environment = template.environment
        context = LightContext(environment, EvalContext(environment, template.name), scope, template.blocks)
        try:
            return environment.concat(template.root_render_func(context))
        except Exception:
            environment.handle_exception()


Variant: TypeAlias = dict[str, CompiledField | dict[str, CompiledField]]  # field -> compiled, or key -> compiled
Template: TypeAlias = dict[str, dict[str, Variant]]  # channel -> locale -> variant
Templates: TypeAlias = dict[str, Template]  # name -> template


def _template_sandbox(*, autoescape: bool) -> jinja2.Environment:
    """The shared sandbox, plus block trimming: bodies are YAML block scalars with one `{% tag %}` per line,
    and such a line must not leave a blank line in the message. Expressions have no block tags, so this
    changes nothing they rely on."""
    env = make_sandbox(autoescape=autoescape)
    env.trim_blocks = env.lstrip_blocks = True
    return env


_TEXT_ENV = _template_sandbox(autoescape=False)
_HTML_ENV = _template_sandbox(autoescape=True)


def read_templates(directory: Path, default_locale: str) -> Templates:
    """Read and check every `<name>.yaml` of `directory`; TemplateError lists every problem of every file."""
    if not directory.is_dir():
        raise ConfigError(f"OMNICANAL_TEMPLATES_DIR: {str(directory)!r} is not a directory; set "
                          "OMNICANAL_TEMPLATES_DIR to the folder of <name>.yaml message templates")
    if not _LOCALE.match(default_locale):
        raise ConfigError(f"default locale {default_locale!r} is not a locale (en, fr, fr-CA)")
    problems: list[Problem] = []
    templates: Templates = {}
    for path in project_files(directory):
        if path.suffix == ".yml" or not _NAME.match(path.stem):
            problems.append(Problem(str(path), 1, "template files are named <name>.yaml, the name in "
                                    "lowercase letters, digits, '_' and '-' (e.g. cart_discount.yaml)"))
            continue
        reader = _FileReader(path, default_locale)
        try:
            templates[path.stem] = reader.read(read_source(path))
        except (OSError, UnicodeDecodeError) as exc:
            reader.problems.append(unreadable(path, exc))
        problems += reader.problems
    if problems:
        raise TemplateError(problems)
    return templates


def _kind(node: Node) -> str:
    if isinstance(node, ScalarNode):
        return f"{node.tag.rsplit(':', 1)[-1]} {node.value!r}"
    return "a mapping" if isinstance(node, MappingNode) else "a list"


class _FileReader:
    """Reads one template file into compiled variants, collecting every problem instead of stopping at one."""

    def __init__(self, path: Path, default_locale: str) -> None:
        self.path = str(path)
        self.name = path.stem
        self.default_locale = default_locale
        self.problems: list[Problem] = []

    def _add(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def read(self, text: str) -> Template:
        """channel -> locale -> variant, for every variant without problems."""
        try:
            root = compose(text)
        except YamlSyntaxError as exc:
            self._add(exc.line, exc.message)
            return {}
        if not isinstance(root, MappingNode):
            self._add(line_of_node(root) if root else 1, "a template file is a mapping of locales (en, fr, "
                      "fr-CA) to channels to fields")
            return {}
        variants: Template = {}
        present: dict[str, dict[str, int]] = {}  # channel -> locale -> line, broken variants included
        for locale_key, channels in self._entries(root):
            locale = locale_key.value
            if not _LOCALE.match(locale):
                self._add(line_of_node(locale_key), f"{locale!r} is not a locale: write a language code, "
                          "optionally with a region (en, fr, fr-CA)")
            elif not isinstance(channels, MappingNode):
                self._add(line_of_node(locale_key), f"{locale}: expected a mapping of channels, "
                          f"got {_kind(channels)}")
            else:
                for channel_key, fields in self._entries(channels):
                    channel = channel_key.value
                    if channel not in CHANNELS:
                        self._add(line_of_node(channel_key), f"{locale}: unknown channel {channel!r}"
                                  + did_you_mean(channel, CHANNELS, listing=True))
                        continue
                    present.setdefault(channel, {})[locale] = line_of_node(channel_key)
                    variant = self._variant(locale, channel_key, fields)
                    if variant is not None:
                        variants.setdefault(channel, {})[locale] = variant
        for channel, lines in present.items():
            if self.default_locale not in lines:
                for locale, line in lines.items():
                    self._add(line, f"{locale}.{channel}: no {channel} variant in the default locale "
                              f"{self.default_locale!r}, so customers of other locales would get nothing; "
                              f"add {self.default_locale}.{channel}")
        return variants

    def _entries(self, node: MappingNode) -> Iterator[tuple[ScalarNode, Node]]:
        """A mapping's entries with scalar keys; duplicate keys, which YAML silently overrides, are errors. Merge
        keys (`push: {<<: *sms, title: Hi}`) work as in any YAML tool: a key written next to `<<` overrides the
        merged one, and the first mapping of `<<: [*a, *b]` wins over the second."""
        entries: dict[str, tuple[ScalarNode, Node]] = self._merged(node, set())
        written: set[str] = set()
        for key, value in node.value:
            if key.tag == _MERGE:
                continue
            if not isinstance(key, ScalarNode):
                self._add(line_of_node(key), f"a key must be a plain name, not {_kind(key)}")
            elif key.value in written:
                self._add(line_of_node(key), f"duplicate key {key.value!r}: the earlier one would be ignored")
            else:
                written.add(key.value)
                entries[key.value] = (key, value)
        yield from entries.values()

    def _merged(self, node: MappingNode, active: set[int]) -> dict[str, tuple[ScalarNode, Node]]:
        """The entries a mapping's merge keys bring in (the mappings of `<<`, with their own merges)."""
        entries: dict[str, tuple[ScalarNode, Node]] = {}
        for key, value in node.value:
            if key.tag != _MERGE:
                continue
            sources = value.value if isinstance(value, SequenceNode) else [value]
            for source in reversed(sources):  # the first mapping named wins: merged last
                if not isinstance(source, MappingNode) or id(source) in active:
                    self._add(line_of_node(key), "`<<` merges a mapping, or a list of mappings, into this one")
                    continue
                entries.update(self._merged(source, active | {id(source)}))
                entries.update((k.value, (k, v)) for k, v in source.value
                               if k.tag != _MERGE and isinstance(k, ScalarNode))
        return entries

    def _variant(self, locale: str, channel_key: ScalarNode, node: Node) -> Variant | None:
        channel = channel_key.value
        spec = CHANNELS[channel]
        if not isinstance(node, MappingNode):
            self._add(line_of_node(channel_key), f"{locale}.{channel}: expected a mapping of fields "
                      f"({', '.join(sorted(spec.fields))}), got {_kind(node)}")
            return None
        before = len(self.problems)
        variant: Variant = {}
        written: set[str] = set()
        for key, value in self._entries(node):
            name = key.value
            written.add(name)
            label = f"{channel}.{name}"
            if name not in spec.fields:
                self._add(line_of_node(key), f"{locale}.{label}: unknown field"
                          + did_you_mean(name, spec.fields, listing=True))
            elif name not in spec.mappings:
                env = _HTML_ENV if name in spec.html else _TEXT_ENV
                compiled = self._field(locale, label, key, value, env, may_be_empty=False)
                if compiled is not None:
                    variant[name] = compiled
            elif not isinstance(value, MappingNode):
                self._add(line_of_node(key), f"{locale}.{label}: expected a mapping of names to template "
                          f"strings, got {_kind(value)}")
            else:
                variant[name] = {
                    item.value: field
                    for item, item_value in self._entries(value)
                    if (field := self._field(locale, f"{label}.{item.value}", item, item_value, _TEXT_ENV,
                                             may_be_empty=True)) is not None
                }
        for name in sorted(spec.required - written):
            self._add(line_of_node(channel_key), f"{locale}.{channel}: missing required field {name!r}")
        return variant if len(self.problems) == before else None

    def _field(self, locale: str, label: str, key: ScalarNode, value: Node, env: jinja2.Environment, *,
               may_be_empty: bool) -> CompiledField | None:
        if not (isinstance(value, ScalarNode) and value.tag == _YAML_STR):
            self._add(line_of_node(key), f"{locale}.{label}: expected a template string, got {_kind(value)} "
                      "(quote it)")
            return None
        where = f"template {self.name} ({locale}, {label})"
        # A literal block (`|`) keeps the file's lines: template line 1 is the line after the `|`.
        first_line = line_of_node(value) + 1 if value.style == "|" else None
        try:
            template, constant = _compiled(env, value.value)
        except jinja2.TemplateSyntaxError as exc:
            line = first_line + exc.lineno - 1 if first_line else line_of_node(key)
            kind = "" if isinstance(exc, NotDataConstant) else "Jinja2 syntax error: "  # it says what and why
            self._add(line, f"{where}: {kind}{exc.message}")
            return None
        except UNCOMPILABLE as exc:
            self._add(line_of_node(key), f"{where}: {uncompilable(exc)}")
            return None
        return CompiledField(self.path, where, line_of_node(key), first_line, template, may_be_empty, constant)


@lru_cache(maxsize=2048)
def _compiled(env: jinja2.Environment, source: str) -> tuple[jinja2.Template, str | None]:
    """A field's compiled template and its constant text (see _constant), compiled once per process: every
    start and every reload reads all the template files again, and most of their fields are unchanged. A
    compiled template holds no state of its own between renders, so fields with the same text share it. The
    bound keeps a process that reloads edited files for weeks from keeping every version it ever compiled."""
    return env.from_string(source), _constant(env, source)


def _constant(env: jinja2.Environment, source: str) -> str | None:
    """The text a template without tags renders to (as Jinja's lexer reads it: its last newline dropped);
    None when it has any tag."""
    body = env.parse(source).body
    if not body:
        return ""
    if len(body) == 1 and isinstance(body[0], nodes.Output) and all(
            isinstance(node, nodes.TemplateData) for node in body[0].nodes):
        return "".join(node.data for node in body[0].nodes)  # type: ignore[attr-defined]
    return None
