"""Journey expressions: the closures compiled for the common kind (native.py) answer exactly as Jinja does —
the same value of the same type, or the same error — over the shipped journeys' expressions and every kind of
node, on data with keys missing, of other types, empty or None."""

from __future__ import annotations

import datetime
import inspect
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from omnicanal import native
from omnicanal.errors import ExpressionError
from omnicanal.expressions import Expression

ROOT = Path(__file__).resolve().parent.parent

ITEMS = [{"sku": "SKU-1", "name": "Sneakers", "price": 89.0}, {"sku": "SKU-7", "name": "Socks", "price": 12.5}]
SCOPES: list[dict[str, Any]] = [
    {"customer": {"id": "c1", "first_name": "Lea", "attributes": {"tier": "gold"}, "locale": "fr"},
     "event": {"name": "cart_abandoned", "properties": {"items": ITEMS, "total": 101.5, "channel": "store",
                                                        "store": "Lyon", "order_id": "T-1", "sale_price": 70,
                                                        "fulfilment": "click_collect"}},
     "vars": {"skus": ["SKU-1", "SKU-7"], "total": 101.5, "n": 3, "empty": [], "none": None, "order_id": "T-1",
              "timed_out": False},
     "now": datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.UTC)},
    {"customer": {"id": "c2"},  # no first name, no attributes
     "event": {"name": "order_placed", "properties": {"items": [{"sku": "SKU-9"}], "total": "12"}},
     "vars": {"skus": [], "total": 15, "n": 0, "empty": [], "none": None},
     "now": datetime.datetime(2026, 12, 1, 23, 0, tzinfo=datetime.UTC)},
    {"customer": {"id": "c3", "first_name": None},
     "event": {"name": "x", "properties": {}},  # no items, no total
     "vars": {}, "now": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)},
]

HAND_WRITTEN = [
    # look-ups: dict keys (before the dict's own methods), list indexes, missing and wrong-typed ones
    "event.properties.total", "event.properties['total']", "event.properties.items", "event.properties.keys",
    "event.properties['items'][0].sku", "event.properties['items'][-1]['price']", "event.properties['items'][5]",
    "customer.first_name", "customer.attributes.tier", "vars.none", "vars.none.x", "missing_name", "now.hour",
    "event.properties['items'][0:1]",
    # comparisons, chained, membership, logic that returns values
    "event.properties.total >= 20", "1 < vars.n < 5", "vars.n == 3 != 4", "'SKU-1' in vars.skus",
    "'SKU-1' not in vars.skus", "'to' in 'store'", "vars.total > 'a'", "vars.n and vars.total", "vars.empty or 'none'",
    "not vars.empty", "not missing_name", "vars.n > 1 and event.properties.total < 200 or false",
    # conditionals, concatenation, arithmetic, literals
    "15 if vars.total >= 100 else 10", "'LUMIERE' ~ (15 if vars.total >= 100 else 10)", "1 if vars.n",
    "'x' ~ none ~ 1.5 ~ true", "vars.total * 2 - 1", "vars.total / vars.n", "vars.total // 0", "7 % 3", "2 ** 10",
    "-vars.n", "+vars.total", "'%s!' % customer.first_name", "[1, vars.n, 'a']", "(1, 2)", "{'a': vars.n}",
    "[vars.skus | map(attribute='sku')]",
    # filters: plain ones, list, map/select/reject in chains, and where Jinja would hand a generator on
    "customer.first_name | default('there', true)", "customer.first_name | default('there')",
    "vars.total | round", "vars.total | int", "event.properties.total | money(locale='fr')", "customer.id | upper",
    "event.properties['items'] | map(attribute='sku') | list",
    "event.properties['items'] | map(attribute='sku') | select('in', vars.skus) | list | length > 0",
    "event.properties['items'] | map(attribute='sku')", "event.properties['items'] | map(attribute='sku') | length",
    "event.properties['items'] | map(attribute='price') | select('gt', 20) | list",
    "event.properties['items'] | map(attribute='nope') | list", "vars.skus | reject('in', ['SKU-1']) | list",
    "[0, 1, '', 'a', none] | select | list", "[0, 1, '', 'a', none] | reject | list",
    "vars.empty | map(attribute='a') | list",
    "event.properties['items'] | map(attribute='sku') | join(',')", "event.properties['items'] | first",
    "event.properties['items'] | length", "vars.skus | count", "vars.none | list", "vars.skus | sum",
    "event.properties['items'] | map(attribute='sku') | select('equalto', 'SKU-7') | list",
    "event.properties['items'] | selectattr('price', 'gt', 20) | list",
    # tests and calls are Jinja's alone
    "customer.first_name is defined", "event.properties.items is defined", "vars.nope is undefined",
    "vars.skus | length is even", "vars.none is none", "vars.skus | length is divisibleby 2", "'upper' is filter",
    "range(3) | list",
    "customer.id.upper()",
]


def shipped_expressions() -> list[str]:
    """Every expression in the shipped journeys: conditions, computed vars and attributes, send data."""
    found: set[str] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                walk(value, str(name))
        elif isinstance(node, list):
            for value in node:
                walk(value, key)
        elif isinstance(node, str) and key not in ("id", "name", "event", "template", "purpose", "goto", "reason",
                                                   "timeout", "within", "on_timeout", "re_entry", "after") \
                and not key.startswith("wait") and (key in ("where", "if", "when") or " " in node or "." in node):
            found.add(node)

    for path in sorted((ROOT / "journeys").glob("*.yaml")):
        walk(yaml.safe_load(path.read_text()))
    return sorted(found)


def plain(value: Any) -> Any:
    """A value as it can be compared: what a generator yields, Jinja's undefined by its message."""
    if isinstance(value, jinja2.Undefined):
        return ("undefined", value._undefined_message)
    if inspect.isgenerator(value):  # two generators are never equal: compare what they yield
        try:
            return ("generator", [plain(item) for item in value])
        except Exception as exc:  # Jinja's generators fail as they are read
            return ("generator failing", type(exc).__name__, str(exc))
    if isinstance(value, list | tuple):
        return (type(value).__name__, [plain(item) for item in value])
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return (type(value).__name__, value)


def outcome(evaluate: Any, scope: dict[str, Any]) -> Any:
    try:
        return plain(evaluate(scope))
    except ExpressionError as exc:
        return "error", str(exc)


@pytest.mark.parametrize("source", [*shipped_expressions(), *HAND_WRITTEN])
def test_the_compiled_expression_answers_as_jinja_does(source: str) -> None:
    try:
        expression = Expression(source)
    except ExpressionError:
        pytest.skip("not an expression (a plain value in a journey file)")
    for scope in SCOPES:
        assert outcome(expression.evaluate, scope) == outcome(expression._jinja, scope), scope


def test_the_common_expressions_are_compiled_and_the_rest_left_to_jinja() -> None:
    compiled = [source for source in [*shipped_expressions(), *HAND_WRITTEN]
                if Expression(source)._native is not None]
    assert "event.properties.total >= 20" in compiled
    assert "event.properties['items'] | map(attribute='sku') | select('in', vars.skus) | list | length > 0" \
        in compiled
    for source in shipped_expressions():  # compiled, and answering by themselves on data with what they read
        compiled = Expression(source)._native
        assert compiled is not None, source
        native.evaluate(compiled, SCOPES[0])  # raises Fallback if it left the answer to Jinja
    for jinja_only in ("'upper' is filter", "range(3) | list", "1 if vars.n",
                       "event.properties['items'] | first", "event.properties['items'][0:1]"):
        assert Expression(jinja_only)._native is None, jinja_only
