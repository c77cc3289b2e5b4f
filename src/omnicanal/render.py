"""Message templates: one message definition, with variants per locale and channel, rendered from one scope.

The brief asks for "consistent information on every channel": a journey names a template (`cart_discount`) and
a list of channels, and whichever channel wins gets its own variant of the same message, in the customer's
language. A file `templates/<name>.yaml` holds all of them, locales at the top, channels under each locale,
fields under each channel:

    fr:
      push: {title: "{{ customer.first_name | default('Psst', true) }}, votre panier vous attend"}
    en:
      push: {title: "...", body: "..."}

Everything that can be checked before a message is sent is checked when the catalog loads, and reported all
at once with file and line, so `omnicanal validate` shows every mistake in one run. Each field is compiled
once at load; rendering, which is on the hot path of every send, only runs compiled templates.
"""

from __future__ import annotations

import difflib
import re
import traceback
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

import jinja2
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from omnicanal.errors import ConfigError, Problem, TemplateError
from omnicanal.expressions import make_sandbox

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_LOCALE = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")
_YAML_STR = "tag:yaml.org,2002:str"
_JINJA_FILENAME = "<template>"  # what Jinja calls a template made by from_string, in rewritten tracebacks


@dataclass(frozen=True)
class ChannelSpec:
    """The fields a channel's message is made of, so a typo in a template fails at load, not at send."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    mappings: frozenset[str] = frozenset()  # fields whose value is a mapping of key -> template string
    html: frozenset[str] = frozenset()  # fields rendered with HTML autoescape: customer data is not markup

    @property
    def fields(self) -> frozenset[str]:
        return self.required | self.optional


def _spec(required: str, optional: str = "", mappings: str = "", html: str = "") -> ChannelSpec:
    return ChannelSpec(*(frozenset(names.split()) for names in (required, optional, mappings, html)))


CHANNEL_FIELDS: Mapping[str, ChannelSpec] = MappingProxyType(
    {
        "sms": _spec("body"),
        "whatsapp": _spec("body", optional="content_sid content_variables", mappings="content_variables"),
        "push": _spec("title body", optional="data", mappings="data"),
        "email": _spec("subject text", optional="html", html="html"),
        "webhook": _spec("payload", mappings="payload"),
        "messenger": _spec("body"),
    }
)


@dataclass(frozen=True)
class Rendered:
    """A message ready for a connector: `content` maps each field to its text (mapping fields to a dict)."""

    template: str
    channel: str
    locale: str  # the variant actually used, after fallback
    content: dict[str, Any]


def _template_sandbox(*, autoescape: bool) -> jinja2.Environment:
    """The shared sandbox, plus block trimming: bodies are YAML block scalars with one `{% tag %}` per line,
    and such a line must not leave a blank line in the message. Expressions have no block tags, so this
    changes nothing they rely on."""
    env = make_sandbox(autoescape=autoescape)
    env.trim_blocks = env.lstrip_blocks = True
    return env


_TEXT_ENV = _template_sandbox(autoescape=False)
_HTML_ENV = _template_sandbox(autoescape=True)


@dataclass(frozen=True)
class _Field:
    """One compiled template string, with what an error needs to point a person at it."""

    path: str
    where: str  # "template cart_discount (fr, push.title)"
    line: int  # line of the field's key in the file
    first_line: int | None  # file line of the template's line 1, when the source maps line for line
    template: jinja2.Template
    may_be_empty: bool  # values inside push data / webhook payload may; a message text may not

    def render(self, scope: Mapping[str, Any]) -> str:
        try:
            text = self.template.render(scope).strip()
        except jinja2.UndefinedError as exc:
            raise self._error(str(exc), exc) from exc
        except Exception as exc:  # sandbox violations, type errors in filters...: none may escape untyped
            raise self._error(f"{type(exc).__name__}: {exc}", exc) from exc
        if not text and not self.may_be_empty:
            raise self._error("renders to an empty text; a message is never sent half-empty", None)
        return text

    def _error(self, message: str, exc: Exception | None) -> TemplateError:
        return TemplateError([Problem(self.path, self._line_of(exc), f"{self.where}: {message}")])

    def _line_of(self, exc: Exception | None) -> int:
        """The file line where rendering failed: Jinja rewrites tracebacks to template lines."""
        if exc is None or self.first_line is None:
            return self.line
        lines = [no for frame, no in traceback.walk_tb(exc.__traceback__)
                 if frame.f_code.co_filename == _JINJA_FILENAME]
        return self.first_line + lines[-1] - 1 if lines else self.line


_Variant: TypeAlias = dict[str, _Field | dict[str, _Field]]  # field -> compiled, or key -> compiled
_Template: TypeAlias = dict[str, dict[str, _Variant]]  # channel -> locale -> variant
_Templates: TypeAlias = dict[str, _Template]  # name -> template


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _did_you_mean(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f" ({hint}expected one of: {', '.join(sorted(choices))})"


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

    def read(self, text: str) -> _Template:
        """channel -> locale -> variant, for every variant without problems."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            problem = getattr(exc, "problem", None) or exc
            self._add(mark.line + 1 if mark else 1, f"YAML syntax error: {problem}")
            return {}
        if not isinstance(root, MappingNode):
            self._add(_line(root) if root else 1, "a template file is a mapping of locales (en, fr, fr-CA) "
                      "to channels to fields")
            return {}
        variants: _Template = {}
        present: dict[str, dict[str, int]] = {}  # channel -> locale -> line, broken variants included
        for locale_key, channels in self._entries(root):
            locale = locale_key.value
            if not _LOCALE.match(locale):
                self._add(_line(locale_key), f"{locale!r} is not a locale: write a language code, optionally "
                          "with a region (en, fr, fr-CA)")
            elif not isinstance(channels, MappingNode):
                self._add(_line(locale_key), f"{locale}: expected a mapping of channels, "
                          f"got {_kind(channels)}")
            else:
                for channel_key, fields in self._entries(channels):
                    channel = channel_key.value
                    if channel not in CHANNEL_FIELDS:
                        self._add(_line(channel_key), f"{locale}: unknown channel {channel!r}"
                                  + _did_you_mean(channel, CHANNEL_FIELDS))
                        continue
                    present.setdefault(channel, {})[locale] = _line(channel_key)
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
        """A mapping's entries with scalar keys; duplicate keys, which YAML silently overrides, are errors."""
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, ScalarNode):
                self._add(_line(key), f"a key must be a plain name, not {_kind(key)}")
            elif key.value in seen:
                self._add(_line(key), f"duplicate key {key.value!r}: the earlier one would be ignored")
            else:
                seen.add(key.value)
                yield key, value

    def _variant(self, locale: str, channel_key: ScalarNode, node: Node) -> _Variant | None:
        channel = channel_key.value
        spec = CHANNEL_FIELDS[channel]
        if not isinstance(node, MappingNode):
            self._add(_line(channel_key), f"{locale}.{channel}: expected a mapping of fields "
                      f"({', '.join(sorted(spec.fields))}), got {_kind(node)}")
            return None
        before = len(self.problems)
        variant: _Variant = {}
        written: set[str] = set()
        for key, value in self._entries(node):
            name = key.value
            written.add(name)
            label = f"{channel}.{name}"
            if name not in spec.fields:
                self._add(_line(key), f"{locale}.{label}: unknown field" + _did_you_mean(name, spec.fields))
            elif name not in spec.mappings:
                env = _HTML_ENV if name in spec.html else _TEXT_ENV
                compiled = self._field(locale, label, key, value, env, may_be_empty=False)
                if compiled is not None:
                    variant[name] = compiled
            elif not isinstance(value, MappingNode):
                self._add(_line(key), f"{locale}.{label}: expected a mapping of names to template strings, "
                          f"got {_kind(value)}")
            else:
                variant[name] = {
                    item.value: field
                    for item, item_value in self._entries(value)
                    if (field := self._field(locale, f"{label}.{item.value}", item, item_value, _TEXT_ENV,
                                             may_be_empty=True)) is not None
                }
        for name in sorted(spec.required - written):
            self._add(_line(channel_key), f"{locale}.{channel}: missing required field {name!r}")
        return variant if len(self.problems) == before else None

    def _field(self, locale: str, label: str, key: ScalarNode, value: Node, env: jinja2.Environment, *,
               may_be_empty: bool) -> _Field | None:
        if not (isinstance(value, ScalarNode) and value.tag == _YAML_STR):
            self._add(_line(key), f"{locale}.{label}: expected a template string, got {_kind(value)} "
                      "(quote it)")
            return None
        where = f"template {self.name} ({locale}, {label})"
        # A literal block (`|`) keeps the file's lines: template line 1 is the line after the `|`.
        first_line = _line(value) + 1 if value.style == "|" else None
        try:
            template = env.from_string(value.value)
        except jinja2.TemplateSyntaxError as exc:
            line = first_line + exc.lineno - 1 if first_line else _line(key)
            self._add(line, f"{where}: Jinja2 syntax error: {exc.message}")
            return None
        return _Field(self.path, where, _line(key), first_line, template, may_be_empty)


class TemplateCatalog:
    """Every template of a directory, validated and compiled; renders a message for a channel and locale."""

    def __init__(self, directory: Path, default_locale: str, templates: _Templates) -> None:
        self._directory = directory
        self._default_locale = default_locale
        self._templates = templates  # name -> channel -> locale -> variant

    @classmethod
    def load(cls, directory: Path, default_locale: str = "en") -> TemplateCatalog:
        """Load and check every `<name>.yaml`; raise TemplateError listing every problem of every file."""
        if not directory.is_dir():
            raise ConfigError(f"OMNICANAL_TEMPLATES_DIR: {str(directory)!r} is not a directory; set "
                              "OMNICANAL_TEMPLATES_DIR to the folder of <name>.yaml message templates")
        if not _LOCALE.match(default_locale):
            raise ConfigError(f"default locale {default_locale!r} is not a locale (en, fr, fr-CA)")
        problems: list[Problem] = []
        templates: _Templates = {}
        for path in sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()):
            if path.suffix == ".yml" or not _NAME.match(path.stem):
                problems.append(Problem(str(path), 1, "template files are named <name>.yaml, the name in "
                                        "lowercase letters, digits, '_' and '-' (e.g. cart_discount.yaml)"))
                continue
            reader = _FileReader(path, default_locale)
            try:
                templates[path.stem] = reader.read(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                reader.problems.append(Problem(str(path), 1, f"cannot read the file: {exc}"))
            problems += reader.problems
        if problems:
            raise TemplateError(problems)
        return cls(directory, default_locale, templates)

    def names(self) -> frozenset[str]:
        return frozenset(self._templates)

    def channels(self, name: str) -> frozenset[str] | None:
        """Channels with a variant in some locale (hence in the default one); None if no such template."""
        template = self._templates.get(name)
        return None if template is None else frozenset(template)

    def locales(self, name: str) -> frozenset[str]:
        """Locales with at least one variant; empty if no such template."""
        return frozenset().union(*self._templates.get(name, {}).values())

    def render(self, name: str, channel: str, locale: str | None, scope: Mapping[str, Any]) -> Rendered:
        """Render `name` for `channel`, in `locale` or the nearest variant: fr-CA, then fr, then the default.

        `locale` in the scope is set to the variant's locale, so prices and dates are formatted in the
        language the text is written in. Raises TemplateError rather than return an incomplete message.
        """
        by_locale = self._templates.get(name, {}).get(channel)
        if by_locale is None:
            path = str(self._directory / f"{name}.yaml")
            if name in self._templates:
                message = f"template {name} has no {channel} variant"
                message += _did_you_mean(channel, self._templates[name])
            else:
                message = f"no template named {name!r}" + _did_you_mean(name, self._templates)
            raise TemplateError([Problem(path, 1, message)])
        resolved = next((c for c in self._fallback(locale) if c in by_locale), self._default_locale)
        variant = by_locale[resolved]
        full_scope = {**scope, "locale": resolved}
        content = {
            field: compiled.render(full_scope) if isinstance(compiled, _Field)
            else {key: value.render(full_scope) for key, value in compiled.items()}
            for field, compiled in variant.items()
        }
        return Rendered(name, channel, resolved, content)

    def _fallback(self, locale: str | None) -> tuple[str, ...]:
        """Candidate locales, most specific first; `fr_ca` and `FR-ca` are read as `fr-CA`."""
        if not locale:
            return (self._default_locale,)
        language, _, region = locale.replace("_", "-").partition("-")
        language = language.lower()
        exact = f"{language}-{region.upper()}" if region else language
        return exact, language, self._default_locale
