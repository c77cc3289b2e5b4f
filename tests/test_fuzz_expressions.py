"""The expression sandbox on generated input: any expression, on any data, fails with a typed error
(ExpressionError, BudgetExceeded) or gives data; never another exception, never the system, never a hang.
And the corpus of template-injection payloads (fuzz_support.SSTI) is inert, as conditions and as values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_support import SSTI, assert_inert, fuzz_settings, sandboxed
from omnicanal.errors import ExpressionError
from omnicanal.expressions import Expression, TextTemplate, make_sandbox

ATTRIBUTES = ("properties", "items", "keys", "values", "get", "first_name", "total", "name", "__class__", "__mro__",
              "__subclasses__", "__globals__", "__init__", "__dict__", "__builtins__", "__code__", "__self__",
              "__func__", "__getitem__", "__reduce_ex__", "mro", "format", "format_map", "gi_frame", "f_back",
              "tb_frame", "cr_frame", "_TemplateReference__context", "environment", "_environment", "pop", "update",
              "append", "clear", "setdefault", "func_globals", "im_func", "real", "imag", "__len__", "upper")
NAMES = ("customer", "event", "vars", "now", "x", "cycler", "joiner", "namespace", "lipsum", "range", "dict", "self",
         "config", "request", "loop", "__builtins__", "_", "varargs", "kwargs", "caller")
OPERATORS = ("+", "-", "*", "/", "//", "%", "**", "~", "and", "or", "==", "!=", "<", ">=", "in", "not in")
SANDBOX = make_sandbox()
FILTERS = tuple(name for name in sorted(SANDBOX.filters) if not name.startswith("_"))
TESTS = tuple(sorted(SANDBOX.tests))

LITERALS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["10**9", "10**10**7", "-1", "0", "1e308", "2**64"]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=12).map(repr),
    st.sampled_from(["'%s'", "'%999999999s'", "'{0}'", "'{0.__class__}'", "'{:>99999999}'", "'a'", "''",
                     "none", "true", "false", "None"]),
)
ATOMS = st.one_of(st.sampled_from(NAMES), LITERALS)


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arguments = st.lists(inner, max_size=3).map(", ".join)
    return st.one_of(
        st.tuples(inner, st.sampled_from(ATTRIBUTES)).map(lambda t: f"{t[0]}.{t[1]}"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(inner, st.sampled_from(["", "1", "-1"]), st.sampled_from(["", "2", "-1"]), st.sampled_from(
            ["", ":-1", ":2"])).map(lambda t: f"{t[0]}[{t[1]}:{t[2]}{t[3]}]"),
        st.tuples(inner, st.sampled_from(OPERATORS), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, st.sampled_from(FILTERS), arguments).map(lambda t: f"({t[0]} | {t[1]}({t[2]}))"),
        st.tuples(inner, st.sampled_from(TESTS)).map(lambda t: f"({t[0]} is {t[1]})"),
        st.tuples(inner, arguments).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        arguments.map(lambda items: f"[{items}]"),
        st.tuples(LITERALS, inner).map(lambda t: f"{{{t[0]}: {t[1]}}}"),
        inner.map(lambda x: f"(not {x})"),
        inner.map(lambda x: f"(-{x})"),
    )


EXPRESSIONS = st.recursive(ATOMS, _compound, max_leaves=10)
KEYS = st.one_of(st.sampled_from(ATTRIBUTES), st.text(max_size=8))
DATA = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
              st.sampled_from(SSTI)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
SCOPES = st.fixed_dictionaries({
    "customer": st.dictionaries(KEYS, DATA, max_size=4),
    "event": st.fixed_dictionaries({"name": st.text(max_size=10), "properties": st.dictionaries(KEYS, DATA,
                                                                                                 max_size=5)}),
    "vars": st.dictionaries(KEYS, DATA, max_size=3),
    "now": st.floats(min_value=0, max_value=4e9),
})


def _run(source: str, scope: dict[str, Any]) -> None:
    """The property: compiling and both readings fail typed or give inert data, each in bounded time, reaching
    nothing of the system."""
    try:
        with sandboxed(seconds=10, compiling=True):
            expression = Expression(source)
    except ExpressionError:
        return
    for reading in (expression.evaluate, expression.test):
        with sandboxed(seconds=5):  # the budget allows 1 s
            try:
                value = reading(scope)
            except ExpressionError:
                continue
        assert_inert(value)


@given(source=EXPRESSIONS, scope=SCOPES)
@fuzz_settings(200)
def test_any_expression_on_any_data_fails_typed_or_gives_inert_data(source: str, scope: dict[str, Any]) -> None:
    _run(source, scope)


@given(source=st.text(max_size=80), scope=SCOPES)
@fuzz_settings(100)
def test_any_text_as_an_expression_fails_typed_or_gives_inert_data(source: str, scope: dict[str, Any]) -> None:
    _run(source, scope)


@pytest.mark.parametrize("payload", SSTI)
def test_template_injection_payloads_are_inert_as_expressions(payload: str) -> None:
    scope = {"customer": {"first_name": "Léa"}, "event": {"name": "x", "properties": {"items": [1]}},
             "vars": {}, "now": 0.0}
    _run(payload, scope)


@pytest.mark.parametrize("depth", [100, 199, 300, 1000, 5000])
@pytest.mark.parametrize("nest", ["({})", "[{}]", "not {}", "-{}", "{} + 1", "{}.a", "{} | e", "{}[0]"])
def test_a_deeply_nested_expression_compiles_at_once_or_is_a_typed_error(nest: str, depth: int) -> None:
    """These raised RecursionError (Jinja's parser and code generator recurse once per level) or SyntaxError
    (Python refuses 200 nested parentheses): untyped, they stopped `omnicanal validate` and a reload. And Jinja's
    optimizer took time cubic in the nesting (a chain of 200 filters: 3 s) before failing or not."""
    source = "x"
    for _ in range(depth):
        source = nest.format(source)
    try:
        with sandboxed(seconds=2, compiling=True):
            Expression(source).evaluate({"x": [1]})
    except ExpressionError as exc:
        assert "does not compile" in str(exc) or "x" in str(exc), exc


def test_a_slice_is_counted_by_the_budget() -> None:
    """Jinja writes `text[::-1]` as Python's slice, past the sandbox: a loop reversing a 1 MB text took 2.6 s
    where the budget allows 1."""
    scope = {"event": {"properties": {"s": "ab" * 500_000}}}
    template = TextTemplate("{% for i in range(100000) %}{{ event.properties.s[::-1][:1] }}{% endfor %}")
    with sandboxed(seconds=1.5), pytest.raises(ExpressionError, match="5,000,000 operations"):
        template.render(scope)


def test_a_condition_on_a_method_found_for_a_missing_key_is_an_error_not_always_true() -> None:
    """`event.properties.items` for an event without `items` was the dict's method: always true as a condition,
    `<built-in method items of dict object at 0x7f...>` as a value or in a message."""
    scope = {"event": {"name": "x", "properties": {}}}
    with pytest.raises(ExpressionError, match="not data: it would always hold"):
        Expression("event.properties.items").test(scope)
    with pytest.raises(ExpressionError, match="not data"):
        TextTemplate("{{ event.properties.items }}").render(scope)
    assert Expression("event.properties.items").test({"event": {"properties": {"items": [1]}}})
