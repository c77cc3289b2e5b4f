"""What an expression or template may give, write or make a text of: data (texts, numbers, booleans, lists, mappings),
never one of Python's objects.

Data is what JSON carries and what the sandbox computes from it: texts, numbers, booleans, None, lists, mappings,
and dates and times (`now`). Anything else a template reaches is Python's own and not data: a look-up that finds a
method rather than a key (`customer.keys`, for a customer without `keys`), a global of the sandbox (`lipsum`,
`cycler`, `range(3)`), a lazy sequence (`select(...)` before `| list`), a view of a mapping
(`customer.attributes.keys()`) or the set its arithmetic makes, a namespace, `self` or `loop`. Made a text, it shows
a customer Python's internals (`<built-in method keys of dict object at 0x7f...>`, `range(0, 3)`,
`dict_keys(['vip'])`, `{'vip'}`); kept in `vars` it is stored as that text; as a condition it always (or never)
holds. The sandbox (expressions.py) refuses one wherever it would become a value or a text: what `{{ }}` writes and
what an expression gives (expressions.py), and here the operands of `~`, the right side of `%`, the fields of
`str.format` and the values and arguments of the filters that make text (TEXTUAL). Each refusal is an
ExpressionError naming the thing and the fix.
"""

from __future__ import annotations

import types
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from datetime import date, time, timedelta
from decimal import Decimal
from functools import update_wrapper, wraps
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.runtime import LoopContext
from jinja2.sandbox import SandboxedFormatter
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup

from omnicanal.errors import ExpressionError

_SCALARS = frozenset({str, int, float, bool, type(None)})
_DATA = (str, int, float, list, tuple, dict, date, time, timedelta, Decimal, jinja2.Undefined)
"""What data is (see the module's docstring), subclasses included: Markup is a text, a `groupby` row a tuple, a
datetime a date. Undefined is not Python's either: its own rules (expressions.py) say what it reads as."""
LISTABLE = (Iterator, range, KeysView, ValuesView, ItemsView, set, frozenset)
"""Not data, but sequences whose items may be: `| list` makes them data. A set (what arithmetic on a mapping's
`keys()` makes) has no JSON form: written or stored, it would be Python's notation, `{'vip'}`."""


def not_data(value: Any) -> bool:
    """Anything but data: a list of what data is, rather than of what is not, so that an object a template finds
    next year is refused too. A namespace (`{% set ns = namespace(total=0) %}`, where a template keeps a value
    across a loop's iterations) is not data either: its attributes are."""
    return value is not None and not isinstance(value, _DATA)


def not_data_within(value: Any) -> Any:
    """The first thing in `value` — itself, or an item, key or value of the lists, tuples, sets and mappings in
    it, however deep — that is not data (see not_data); None when it is all data. `[cycler]` would be written
    `[<class 'jinja2.utils.Cycler'>]`."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) in _SCALARS:
            continue
        if isinstance(item, dict):
            stack += item.keys()
            stack += item.values()
        elif isinstance(item, list | tuple):
            stack += item
        elif not_data(item):
            return item
    return None


def hint(value: Any) -> str:
    """What to write instead of `value`, which is not data."""
    if isinstance(value, LoopContext):
        return "write one of its attributes (`loop.index`, `loop.first`)"
    if isinstance(value, LISTABLE):
        return "end it with `| list`"
    if isinstance(value, Namespace):
        return "write the attribute it keeps (`ns.total`), not the namespace"
    if callable(value):
        return "call it, or name a key that is there"
    return "name a key or attribute that holds data"


def what(value: Any) -> str:
    """`value`, which is not data, named for a person: `the function lipsum`, `a lazy sequence`, `a range`."""
    if isinstance(value, LoopContext):
        return "the loop itself"
    if isinstance(value, Iterator):
        return "a lazy sequence"
    if isinstance(value, range):
        return "a range"
    if isinstance(value, KeysView | ValuesView | ItemsView):
        return f"a view of a mapping ({type(value).__name__})"
    if isinstance(value, set | frozenset):
        return "a set"
    if isinstance(value, Namespace):
        return "a namespace"
    kind = "the class" if isinstance(value, type) else "the function" if callable(value) else "an object"
    return f"{kind} {getattr(value, '__name__', type(value).__name__)}"


def text_of(value: Any) -> Any:
    """`value`, to be made a text; ExpressionError if anything in it is not data."""
    if type(value) not in _SCALARS and (found := not_data_within(value)) is not None:
        raise ExpressionError(f"makes a text of {what(found)}, not data: {hint(found)}")
    return value


def looped(items: Any) -> Any:
    """What a `for` loop goes through: data, a lazy sequence, or data that is not there (Undefined's own rules);
    a function or object that a look-up found instead of a key (`event.properties.items` for an event without
    `items`: the mapping's method) is refused by name, not left to fail as "object is not iterable"."""
    if not_data(items) and not isinstance(items, LISTABLE):
        raise ExpressionError(f"loops over {what(items)}, not data: {hint(items)}")
    return items


# -- where the sandbox makes texts --------------------------------------------------------------------------------

TEXT_OF = "_text_of"
"""The filter the rewrite (`checked`) puts around each operand of `~`: text_of."""

TEXTUAL = frozenset({"capitalize", "center", "e", "escape", "forceescape", "format", "indent", "join", "lower",
                     "pprint", "replace", "safe", "string", "striptags", "title", "trim", "truncate", "upper",
                     "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr"})
"""Jinja's filters that make a text of their value or arguments (`lipsum | string`, `'%s' | format(lipsum)`)."""


def textual_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The filters, those of TEXTUAL refusing a value or argument that is not data. Put inside the budget's
    wrappers: `join` is then given the list the budget made of a lazy sequence, not the sequence."""
    return {name: _textual(function) if name in TEXTUAL else function for name, function in filters.items()}


def _textual(function: Callable[..., Any]) -> Callable[..., Any]:
    offset = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0  # environment or context first

    @wraps(function)  # keeps jinja_pass_arg, which says whether Jinja passes its environment or context first
    def checked(*args: Any, **kwargs: Any) -> Any:
        for arg in args[offset:]:
            text_of(arg)
        for arg in kwargs.values():
            text_of(arg)
        return function(*args, **kwargs)
    return checked


class _TextOperands(NodeTransformer):
    """Each operand of `~` through TEXT_OF, but constants (`'CART' ~ vars.percent`)."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [operand if isinstance(operand, nodes.Const)
                      else nodes.Filter(operand, TEXT_OF, [], [], None, None, lineno=operand.lineno)
                      for operand in node.nodes]
        return node


def checked(tree: nodes.Template) -> nodes.Template:
    """The parsed template or expression, the operands of its `~` checked to be data."""
    return _TextOperands().visit(tree)  # type: ignore[no-any-return]


class _DataFormatter(SandboxedFormatter):
    """Jinja's sandboxed `str.format`, writing a field only if it is data: `'{0}'.format(lipsum)` and
    `'{0.keys}'.format(customer)` would write Python's objects."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        return super().format_field(text_of(value), format_spec)


class _DataEscapeFormatter(_DataFormatter, EscapeFormatter):
    """The same for `Markup.format` (a text marked safe, `'{}' | safe`), escaping each field."""


def format_method(environment: jinja2.Environment, method: Any) -> Callable[..., str] | None:
    """`str.format` or `str.format_map` of a text, as the sandbox must call it (None for any other method): what
    Jinja's SandboxedEnvironment.wrap_str_format makes, with a formatter that writes data only. The wrapper keeps
    the method as `__wrapped__`, where the budget finds the format string to check its widths."""
    if not isinstance(method, types.MethodType | types.BuiltinMethodType) or method.__name__ not in (
            "format", "format_map"):
        return None
    text = method.__self__
    if not isinstance(text, str):
        return None
    formatter = (_DataEscapeFormatter(environment, escape=text.escape) if isinstance(text, Markup)
                 else _DataFormatter(environment))
    mapping = method.__name__ == "format_map"

    def wrapper(*args: Any, **kwargs: Any) -> str:
        if not mapping:
            return type(text)(formatter.vformat(text, args, kwargs))
        if kwargs or len(args) != 1:
            raise TypeError("format_map() takes exactly one argument, a mapping")
        return type(text)(formatter.vformat(text, (), args[0]))
    return update_wrapper(wrapper, method)
