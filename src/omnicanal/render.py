"""Rendering a message: the template's variant for the channel, in the customer's language, from one scope.

This runs on the hot path of every send, so it only runs what template_files.py compiled and checked at load.
A message is never sent incomplete: a field that fails, or renders empty, raises TemplateError located at the
line of the template file that failed.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from omnicanal import budget
from omnicanal.channels import CHANNELS
from omnicanal.errors import BudgetExceeded, Problem, TemplateError
from omnicanal.links import PlainLinks
from omnicanal.suggest import did_you_mean
from omnicanal.template_files import CompiledField, Templates, read_templates

_JINJA_FILENAME = "<template>"  # what Jinja calls a template made by from_string, in rewritten tracebacks
_UNTRACKED = PlainLinks()


@dataclass(frozen=True)
class Rendered:
    """A message ready for a connector: `content` maps each field to its text (mapping fields to a dict)."""

    template: str
    channel: str
    locale: str  # the variant actually used, after fallback
    content: dict[str, Any]


class TemplateCatalog:
    """Every template of a directory, validated and compiled; renders a message for a channel and locale."""

    def __init__(self, directory: Path, default_locale: str, templates: Templates) -> None:
        self._directory = directory
        self._default_locale = default_locale
        self._templates = templates  # name -> channel -> locale -> variant

    @classmethod
    def load(cls, directory: Path, default_locale: str = "en") -> TemplateCatalog:
        """Load and check every `<name>.yaml`; raise TemplateError listing every problem of every file."""
        return cls(directory, default_locale, read_templates(directory, default_locale))

    def names(self) -> frozenset[str]:
        return frozenset(self._templates)

    def channels(self, name: str) -> frozenset[str] | None:
        """Channels with a variant in some locale (hence in the default one); None if no such template."""
        template = self._templates.get(name)
        return None if template is None else frozenset(template)

    def locales(self, name: str) -> frozenset[str]:
        """Locales with at least one variant; empty if no such template."""
        return frozenset().union(*self._templates.get(name, {}).values())

    def render(self, name: str, channel: str, locale: str | None, scope: Mapping[str, Any],
               links: PlainLinks = _UNTRACKED) -> Rendered:
        """Render `name` for `channel`, in `locale` or the nearest variant: fr-CA, then fr, then the default.

        `locale` in the scope is set to the variant's locale, so prices and dates are formatted in the
        language the text is written in. `links` gives templates `track(url)` and `unsubscribe_url`, and
        rewrites the links of HTML fields (links.py). Raises TemplateError rather than return an incomplete
        message.
        """
        by_locale = self._templates.get(name, {}).get(channel)
        if by_locale is None:
            path = str(self._directory / f"{name}.yaml")
            if name in self._templates:
                message = f"template {name} has no {channel} variant"
                message += did_you_mean(channel, self._templates[name], listing=True)
            else:
                message = f"no template named {name!r}" + did_you_mean(name, self._templates, listing=True)
            raise TemplateError([Problem(path, 1, message)])
        candidates = _locale_candidates(locale, self._default_locale)
        resolved = next((c for c in candidates if c in by_locale), self._default_locale)
        variant = by_locale[resolved]
        full_scope = {**scope, "locale": resolved, "track": links.track, "unsubscribe_url": links.unsubscribe_url}
        content = {
            field: _render_field(compiled, full_scope) if isinstance(compiled, CompiledField)
            else {key: _render_field(value, full_scope) for key, value in compiled.items()}
            for field, compiled in variant.items()
        }
        for field in CHANNELS[channel].html & content.keys():
            content[field] = links.rewrite_html(str(content[field]))
        return Rendered(name, channel, resolved, content)


def _locale_candidates(locale: str | None, default_locale: str) -> tuple[str, ...]:
    """Locales to try, most specific first; `fr_ca` and `FR-ca` are read as `fr-CA`, then `fr`, then the default."""
    if not locale:
        return (default_locale,)
    language, _, region = locale.replace("_", "-").partition("-")
    language = language.lower()
    exact = f"{language}-{region.upper()}" if region else language
    return exact, language, default_locale


def _render_field(field: CompiledField, scope: Mapping[str, Any]) -> str:
    """One field's text, stripped; TemplateError at the file line that failed, or if it renders empty."""
    budget.start()
    try:
        text = field.render(scope).strip()
    except jinja2.UndefinedError as exc:
        raise _error(field, str(exc), exc) from exc
    except BudgetExceeded as exc:
        raise _error(field, f"over its budget: {exc}", exc) from exc
    except Exception as exc:  # sandbox violations, type errors in filters...: none may escape untyped
        raise _error(field, f"{type(exc).__name__}: {exc}", exc) from exc
    if not text and not field.may_be_empty:
        raise _error(field, "renders to an empty text; a message is never sent half-empty", None)
    return text


def _error(field: CompiledField, message: str, exc: Exception | None) -> TemplateError:
    return TemplateError([Problem(field.path, _line_of(field, exc), f"{field.where}: {message}")])


def _line_of(field: CompiledField, exc: Exception | None) -> int:
    """The file line where rendering failed: Jinja rewrites tracebacks to template lines."""
    if exc is None or field.first_line is None:
        return field.line
    lines = [no for frame, no in traceback.walk_tb(exc.__traceback__)
             if frame.f_code.co_filename == _JINJA_FILENAME]
    return field.first_line + lines[-1] - 1 if lines else field.line
