"""Journey expressions and data that is not there.

A condition reads a missing value as false where it stands: `and`, `or` and `not` mean what they say in either
order, a comparison with a missing operand is false (`!=` and `not in`, the negations of `==` and `in`, are true),
arithmetic and filters keep it missing, `default` replaces it, `is defined` tells it apart. A value (update,
send data) with a missing part is an error, unless `default` says what to use.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest

from omnicanal.errors import ExpressionError
from omnicanal.expressions import Expression, compile_expression, reads

NOW = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.UTC)
ITEMS = [{"sku": "SKU-1", "price": 89.0}, {"sku": "SKU-7", "price": 61.0}]
VIP = {"vip": True, "tier": "gold", "age": 30, "tags": ["early"], "first_name": "Lea"}


def customer(attributes: dict[str, Any]) -> dict[str, Any]:
    """`customer` as the engine builds it: the attributes at the top, then the profile's own fields."""
    return {**attributes, "id": "c1", "attributes": attributes, "locale": None, "timezone": None,
            "addresses": {}, "channel_preference": [], "consents": {}, "whatsapp_last_inbound": None}


def scope(attributes: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return {"customer": customer(attributes), "event": {"name": "order_placed", "id": "e1", "properties": properties},
            "vars": {}, "now": NOW}


SCOPES = {
    "vip, 150": scope(VIP, {"total": 150, "items": ITEMS, "coupon": {"code": "WELCOME"}}),
    "plain, 150": scope({}, {"total": 150, "items": ITEMS}),
    "plain, 50": scope({}, {"total": 50, "items": ITEMS[:1]}),
    "vip, no properties": scope(VIP, {}),
}
"""Customers with and without attributes, events with and without properties (the columns of CONDITIONS)."""

CONDITIONS: list[tuple[str, bool | None, bool | None, bool | None, bool | None]] = [
    # expression                                                          vip,150 plain,150 plain,50 vip,{}
    # `or` and `and`, both orders of the operands
    ("customer.vip or event.properties.total >= 100",                     True,  True,  False, True),
    ("event.properties.total >= 100 or customer.vip",                     True,  True,  False, True),
    ("customer.vip and event.properties.total >= 100",                    True,  False, False, False),
    ("event.properties.total >= 100 and customer.vip",                    True,  False, False, False),
    ("customer.vip or customer.tier == 'silver' or event.properties.coupon", True, False, False, True),
    # `not`
    ("not customer.vip",                                                  False, True,  True,  False),
    ("not event.properties.total",                                        False, False, False, True),
    ("not (customer.vip and event.properties.total >= 100)",              False, True,  True,  True),
    ("not event.properties.total >= 100",                                 False, False, True,  True),
    # comparisons: a missing operand equals nothing and orders with nothing
    ("customer.tier == 'gold'",                                           True,  False, False, True),
    ("'gold' == customer.tier",                                           True,  False, False, True),
    ("customer.tier != 'gold'",                                           False, True,  True,  False),
    ("customer.tier == customer.segment",                                 False, False, False, False),
    ("customer.tier in ['gold', 'silver']",                               True,  False, False, True),
    ("customer.tier not in ['gold', 'silver']",                           False, True,  True,  False),
    ("'early' in customer.tags",                                          True,  False, False, True),
    ("'early' not in customer.tags",                                      False, True,  True,  False),
    ("event.properties.total < 100",                                      False, False, True,  False),
    ("100 > event.properties.total",                                      False, False, True,  False),
    ("event.properties.total >= 100",                                     True,  True,  False, False),
    ("1 <= event.properties.total < 200",                                 True,  True,  True,  False),
    ("event.properties.total > 'a text'",                                 None,  None,  None,  False),
    # arithmetic keeps a value missing: the comparison it is in is false
    ("event.properties.total * 2 >= 100",                                 True,  True,  True,  False),
    ("event.properties.total - customer.age > 100",                       True,  False, False, False),
    ("-event.properties.total < 0",                                       True,  True,  True,  False),
    ("not (event.properties.total * 2 >= 100)",                           False, False, False, True),
    # filters keep a value missing, but `default`, which replaces it
    ("customer.age | int < 18",                                           False, False, False, False),
    ("customer.age | int >= 18",                                          True,  False, False, True),
    ("customer.tags | length > 0",                                        True,  False, False, True),
    ("customer.tags | length == 0",                                       False, False, False, False),
    ("not customer.tags",                                                 False, True,  True,  False),
    ("customer.first_name | lower == 'lea'",                              True,  False, False, True),
    ("event.properties['items'] | map(attribute='sku') | select('in', ['SKU-7']) | list | length > 0",
                                                                          True,  True,  False, False),
    ("event.properties['items'] | map(attribute='sku') | select('in', vars.skus) | list",
                                                                          False, False, False, False),
    ("event.properties['items'] | map(attribute='size') | select('in', ['M']) | list",
                                                                          False, False, False, False),
    ("customer.vip | default(false) or event.properties.total >= 100",   True,  True,  False, True),
    ("customer.tier | default('bronze') == 'bronze'",                     False, True,  True,  False),
    ("event.properties.total | default(0) < 100",                         False, False, True,  True),
    ("customer.nickname | default(customer.first_name) | default('you') == 'you'",
                                                                          False, True,  True,  False),
    # `is defined`
    ("customer.vip is defined",                                           True,  False, False, True),
    ("customer.vip is not defined",                                       False, True,  True,  False),
    ("event.properties.coupon.code is defined",                           True,  False, False, False),
    ("event.properties.coupon.code is undefined",                         False, True,  True,  True),
    # a key missing deep in a chain is missing, not an error
    ("event.properties.coupon.code == 'WELCOME'",                         True,  False, False, False),
    ("event.properties.coupon.code != 'WELCOME'",                         False, True,  True,  True),
    ("event.properties.a.b.c",                                            False, False, False, False),
    ("not event.properties.a.b.c",                                        True,  True,  True,  True),
    ("event.properties['a']['b'].c",                                      False, False, False, False),
    ("vars.order_id == event.properties.order_id",                        False, False, False, False),
    ("customer.first_name.upper() == 'LEA'",                              True,  False, False, True),
    ("missing_name or customer.vip",                                      True,  False, False, True),
    # the sandbox still holds, and what it refuses is a mistake, not missing data
    ("customer.__class__.__mro__",                                        None,  None,  None,  None),
    ("customer.nickname.__class__ is defined",                            None,  None,  None,  None),
    ("range(3) | list | length == 3",                                     True,  True,  True,  True),
]
"""Each row: an expression, then its truth in each of SCOPES (None: an error, which the engine records)."""


def truth(source: str, name: str) -> bool | None:
    try:
        return Expression(source).test(SCOPES[name])
    except ExpressionError:
        return None


@pytest.mark.parametrize("row", CONDITIONS, ids=[row[0] for row in CONDITIONS])
def test_a_condition_reads_missing_data_as_false_where_it_stands(row: tuple[str, ...]) -> None:
    source, *expected = row
    assert {name: truth(source, name) for name in SCOPES} == dict(zip(SCOPES, expected, strict=True))


def test_a_condition_that_fails_for_another_reason_says_why() -> None:
    source = "event.properties.total > 'a'"
    with pytest.raises(ExpressionError, match=re.escape(f"{source!r}: TypeError: '>' not supported")):
        Expression(source).test(SCOPES["plain, 50"])


VALUES: list[tuple[str, str, Any]] = [
    ("event.properties.total * 2", "plain, 150", 300),
    ("customer.tier | default('bronze')", "plain, 150", "bronze"),
    ("customer.tier | default('bronze')", "vip, 150", "gold"),
    ("event.properties.coupon.code | default('none')", "plain, 150", "none"),
    ("event.properties.coupon.code | default('none')", "vip, 150", "WELCOME"),
    ("event.properties.coupon.code is defined", "plain, 150", False),
    ("customer.vip is defined and customer.vip", "plain, 150", False),
    ("event.properties['items'] | map(attribute='sku') | list", "vip, 150", ["SKU-1", "SKU-7"]),
    ("15 if event.properties.total >= 100 else 10", "plain, 50", 10),
    ("range(2) | list", "plain, 50", [0, 1]),
]


@pytest.mark.parametrize(("source", "scope_name", "value"), VALUES)
def test_a_value_is_computed_from_the_data_there(source: str, scope_name: str, value: Any) -> None:
    assert Expression(source).evaluate(SCOPES[scope_name]) == value


MISSING_VALUES: list[tuple[str, str, str]] = [
    ("customer.vip", "plain, 150", "no attribute 'vip'"),
    ("customer.vip or false", "plain, 150", "no attribute 'vip'"),
    ("not customer.vip", "plain, 150", "no attribute 'vip'"),
    ("customer.tier == 'gold'", "plain, 150", "no attribute 'tier'"),
    ("event.properties.total * 2", "vip, no properties", "no attribute 'total'"),
    ("event.properties.coupon.code", "plain, 150", "no attribute 'coupon'"),
    ("event.properties['coupon']", "plain, 150", "no attribute 'coupon'"),
    ("customer.first_name | upper", "plain, 150", "no attribute 'first_name'"),
    ("'Hello ' ~ customer.first_name", "plain, 150", "no attribute 'first_name'"),
    ("missing_name", "plain, 150", "'missing_name' is undefined"),
    ("1 if event.properties.total > 100", "plain, 50", "evaluated to false and no else section"),
    ("customer.__class__", "vip, 150", "access to attribute '__class__' of 'dict' object is unsafe"),
    ("customer.__class__ is defined", "vip, 150", "access to attribute '__class__' of 'dict' object is unsafe"),
]


@pytest.mark.parametrize(("source", "scope_name", "message"), MISSING_VALUES)
def test_a_value_with_a_missing_part_is_an_error_naming_it(source: str, scope_name: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message) as raised:
        Expression(source).evaluate(SCOPES[scope_name])
    assert str(raised.value).startswith(repr(source))  # the journey author finds the expression in the message


@pytest.mark.parametrize("source", ["1 2", "event.properties.total >=", "customer.tier | no_such_filter",
                                    "event.properties.total is no_such_test"])
def test_an_expression_that_does_not_compile_is_refused_at_once(source: str) -> None:
    with pytest.raises(ExpressionError, match="does not compile"):
        Expression(source)


def test_one_compiled_expression_serves_every_journey_that_writes_it() -> None:
    assert compile_expression("vars.total >= 20") is compile_expression("vars.total >= 20")
    assert compile_expression("vars.total >= 20") == Expression("vars.total >= 20")


@pytest.mark.parametrize(("source", "read"), [
    ("customer.tier == 'gold' and customer['city'] == 'Lyon'", {"tier", "city"}),
    ("customer.attributes.tier == 'gold'", {"attributes"}),
    ("event.properties.total > 2", set()),
    ("customer | length > 2", None),  # whole
    ("customer[event.name] == 1", None),  # a key computed at run time
    ("customer.get('tier') == 'gold'", None),  # a dict method's name: the method when there is no such key
    ("customer.items", None),
])
def test_what_an_expression_reads_of_a_name_is_found_in_its_text(source: str, read: set[str] | None) -> None:
    assert reads(source, "customer") == (None if read is None else frozenset(read))
