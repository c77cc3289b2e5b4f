"""The template renderer on generated input: template files written by anyone fail at load or at render with a
TemplateError located in the file, or render inert text; and whatever a customer or an event carries (a first
name of `{{ config }}`) is written as that text, escaped in HTML, never run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape

from fuzz_support import SSTI, assert_inert, bounded, fuzz_settings, sandboxed
from omnicanal.errors import TemplateError
from omnicanal.render import TemplateCatalog

STATEMENTS = (
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{% set g = cycler.__init__.__globals__ %}{{ g.os.popen('id').read() }}",
    "{% import 'os' as os %}{{ os.system('id') }}",
    "{% include '/etc/passwd' %}",
    "{% extends '/etc/passwd' %}",
    "{% from 'os' import system %}{{ system('id') }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% for i in range(10**9) %}{{ i }}{% endfor %}",
    "{% for i in range(10**5) %}{% for j in range(10**5) %}x{% endfor %}{% endfor %}",
    "{% set ns = namespace(a=1) %}{% set ns.__class__ = 1 %}{{ ns }}",
    "{% set x = customer.update({'first_name': 'pwned'}) %}{{ customer.first_name }}",
    "{% debug %}",
    "{% raw %}{{ 7 * 7 }}{% endraw %}",
    "{{ self }}",
    "{{ range(3) }}",
    "{{ customer.attributes.keys() }}",
    "{% for x in [1] %}{{ loop }}{% endfor %}",
    "{{ self._TemplateReference__context.parent }}",
    "{{ track }}",
    "{{ track.__globals__ }}",
    "{{ unsubscribe_url.__self__ }}",
    "{% autoescape false %}{{ '<script>' }}{% endautoescape %}",
    "{{ '{% raw %}' }}",
    "{% macro m() %}{{ varargs }}{% endmacro %}{{ m(now) }}",
    "{% macro m() %}{{ caller }}{% endmacro %}{% call m() %}x{% endcall %}",
    "{% for g in event.properties['items'] | groupby('name') %}{{ g }}{% endfor %}",
    "{% block x %}{% endblock %}",
)
FRAGMENTS = ("{{", "}}", "{%", "%}", "{#", "#}", " for x in ", " endfor ", " if ", " endif ", " set ", " = ",
             " macro ", " call ", " raw ", " endraw ", " include ", " import ", " block ", " extends ", "customer",
             ".first_name", "event.properties", "[0]", " | ", "e", "safe", "(", ")", "'", '"', "\n", "x", "1",
             " ~ ", " * ", " ** ", "10", "lipsum", "self", "__class__", "range(", "loop", "caller", "%")
TEMPLATES = st.one_of(st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join), st.text(max_size=40))
TEXT = st.one_of(st.text(max_size=40), st.sampled_from(SSTI).map(lambda p: f"{{{{ {p} }}}}"),
                 st.sampled_from(STATEMENTS))


NOW = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
"""What journeys give templates as `now`: an aware date and time."""


def catalog(directory: Path, body: str, html: str | None = None, text: str | None = None) -> TemplateCatalog:
    """A one-template catalog, `fuzz`, with an SMS variant and an e-mail one (its HTML field autoescaped; its text
    `body` too unless said)."""
    email = {"subject": "s", "text": body if text is None else text, **({"html": html} if html is not None else {})}
    (directory / "fuzz.yaml").write_text(json.dumps({"en": {"sms": {"body": body}, "email": email}}),
                                         encoding="utf-8")  # JSON is YAML: every text quoted as it must be
    return TemplateCatalog.load(directory)


def scope(first_name: Any = "Léa", item: Any = "Sneakers") -> dict[str, Any]:
    return {"customer": {"id": "c42", "first_name": first_name, "attributes": {}},
            "event": {"name": "cart_abandoned", "properties": {"items": [{"name": item}], "total": 89.0}},
            "vars": {}, "data": {}, "now": NOW}


def _render_any(directory: Path, body: str) -> None:
    """The property: loading fails with a TemplateError or gives a catalog whose every variant renders inert
    text or fails with a TemplateError; each bounded in time, none reaching the system. The e-mail's text is
    plain, so that its HTML field is rendered even where the SMS body (the same text field) fails."""
    try:
        with bounded(seconds=10):
            loaded = catalog(directory, body, html=body, text="t")
    except TemplateError as exc:
        assert all(p.path.endswith("fuzz.yaml") and p.line >= 1 for p in exc.problems), exc
        return
    for channel in ("sms", "email"):
        with sandboxed(seconds=5):  # the budget allows 1 s per field
            try:
                rendered = loaded.render("fuzz", channel, "en", scope())
            except TemplateError as exc:
                assert exc.problems[0].path.endswith("fuzz.yaml"), exc
                continue
        assert_inert(rendered.content)


@pytest.mark.parametrize("body", [f"{{{{ {payload} }}}}" for payload in SSTI] + list(STATEMENTS))
def test_template_injection_in_a_template_file_fails_or_renders_inert(tmp_path: Path, body: str) -> None:
    _render_any(tmp_path, body)


@given(body=TEMPLATES)
@fuzz_settings(150)
def test_any_template_text_fails_located_or_renders_inert(tmp_path: Path, body: str) -> None:
    _render_any(tmp_path, body)


@given(name=TEXT, item=TEXT)
@fuzz_settings(200)
def test_customer_and_event_data_is_written_as_text_never_run(tmp_path: Path, name: str, item: str) -> None:
    """A first name or an item name holding template syntax or an injection payload is written as it is: the
    text field shows it, the HTML field shows it escaped, nothing of it is evaluated."""
    loaded = catalog(tmp_path, "{{ customer.first_name }} / {{ event.properties.items[0].name }}",
                     html="<p>{{ customer.first_name }}</p><p>{{ event.properties.items[0].name }}</p>")
    with sandboxed(seconds=5):
        sms = loaded.render("fuzz", "sms", "en", scope(name, item))
        email = loaded.render("fuzz", "email", "en", scope(name, item))
    assert sms.content["body"] == f"{name} / {item}".strip()
    assert email.content["html"] == f"<p>{escape(name)}</p><p>{escape(item)}</p>".strip()
