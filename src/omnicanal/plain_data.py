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

A text is made of data by writing it as itself: a text, a number, a date. A list or a mapping is written in
Python's notation (`[1, 'a']`), which shows each item by its own notation: that of a scalar is data, that of
anything else is Python's (`[datetime.datetime(2027, 1, 15, ...)]`, `[Markup('x')]`, `[Undefined]`). So a text is
made only of scalars, dates and times (and texts marked safe, Decimals, durations), and lists, tuples and mappings
of scalars; a tuple with a notation of its own (`now.isocalendar()`, `now.timetuple()`) is refused (`| list` makes
it a list; stored in `vars`, codec.py writes it as a JSON array). What makes a text by Python's notation even of a
date (`%r`, `!r`, `| pprint`) takes scalars and lists and mappings of them only. Each place that makes a text
checks what it turns into one: `{{ }}` (and, at load, what Jinja computes while compiling: `constants_written`),
each operand of `~` and of `%`, each field of `str.format`, each item of `join`, each key and value of `xmlattr`
and `urlencode`.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache, update_wrapper, wraps
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.filters import _GroupTuple, make_attrgetter  # _GroupTuple: what `groupby` gives, a row of it
from jinja2.runtime import LoopContext, Macro
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


_AS_THEMSELVES = (str, date, time, timedelta, Decimal, jinja2.Undefined)
"""What is made a text by writing it as itself (`str(now)` is `2027-01-15 10:00:00+00:00`): a text (a text marked
safe too), a date or time, a duration, a decimal; data that is not there has its own rules (expressions.py)."""
_PLAIN_NOTATIONS: frozenset[object] = frozenset({list.__repr__, tuple.__repr__, dict.__repr__, _GroupTuple.__repr__})
"""The notations of lists, tuples and mappings that show only their items: a `groupby` row (a named tuple of
Jinja's) is written as the tuple it is; `datetime.IsoCalendarDate(year=2027, ...)` is not data."""


def not_data(value: Any) -> bool:
    """Anything but data: a list of what data is, rather than of what is not, so that an object a template finds
    next year is refused too. A namespace (`{% set ns = namespace(total=0) %}`, where a template keeps a value
    across a loop's iterations) is not data either: its attributes are."""
    return value is not None and not isinstance(value, _DATA)


def not_data_within(value: Any) -> Any:
    """The first thing in `value` — itself, or an item, key or value of the lists, tuples, sets and mappings in
    it, however deep — that is not data (see not_data), or, inside it, data that is not there; None when it is
    all data. `[cycler]` would be written `[<class 'jinja2.utils.Cycler'>]`, `[customer.nope]` cannot be
    stored."""
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
        elif not_data(item) or (item is not value and isinstance(item, jinja2.Undefined)):
            return item
    return None


def shown_within(value: Any) -> Any:
    """The first thing in `value` that Python's notation of it (`repr`) would show as Python's own, rather than as
    data: `value` itself or an item, key or value of its lists, tuples and mappings, however deep, unless it is a
    scalar (a text, number, boolean or None) or a list, tuple or mapping with the plain notation. None when all
    of it shows as data."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is list or kind is tuple:
            stack += item
        elif kind is dict or (isinstance(item, dict) and kind.__repr__ in _PLAIN_NOTATIONS):
            stack += item.keys()
            stack += item.values()
        elif isinstance(item, list | tuple) and kind.__repr__ in _PLAIN_NOTATIONS:
            stack += item
        else:
            return item
    return None


def unwritable(value: Any) -> Any:
    """The first thing in `value`, to be made a text, that its text would show as Python's own (not data, a tuple
    with a notation of its own, or, inside a list or mapping, what is not a scalar); None when its text is data.
    Called on every `{{ }}` of every message: scalars are settled first."""
    if type(value) in _SCALARS or isinstance(value, _AS_THEMSELVES):
        return None
    if isinstance(value, list | tuple | dict):
        return shown_within(value)
    return value


def refusal(verb: str, found: Any) -> str:
    """Why `found` is refused where a text is made (`verb`: "writes", "makes a text of"): it is not
    data; or it is a tuple with a notation of its own; or it is data that a list or mapping would write in
    Python's notation."""
    if not_data(found):
        return f"{verb} {what(found)}, not data: {hint(found)}"
    if isinstance(found, list | tuple | dict):
        fix = ("write one of its values" if isinstance(found, dict)
               else "end it with `| list`, or write one of its items")
        return f"{verb} {what(found)}, which would be written in Python's notation: {fix}"
    if isinstance(found, jinja2.Undefined):
        fix = "`| default(...)` says what to use instead"
    else:
        fix = "write it on its own, or join the items (`| join(', ')`)"
    return f"{verb} {what(found)} inside a list or mapping, which would write it in Python's notation: {fix}"


def hint(value: Any) -> str:
    """What to write instead of `value`, which is not data."""
    if isinstance(value, LoopContext):
        return "write one of its attributes (`loop.index`, `loop.first`)"
    if isinstance(value, LISTABLE):
        return "end it with `| list`"
    if isinstance(value, Namespace):
        return "write the attribute it keeps (`ns.total`), not the namespace"
    if isinstance(value, Macro):
        return f"call it: `{value.name or 'caller'}()`"
    if callable(value):
        return "call it, or name a key that is there"
    return "name a key or attribute that holds data"


def what(value: Any) -> str:
    """`value`, which is not data or not a text's, named for a person: `the function lipsum`, `a lazy sequence`,
    `a range`, `a date and time`."""
    if isinstance(value, jinja2.Undefined):
        return f"data that is not there ({value._undefined_message})"
    if isinstance(value, str):
        return f"a text marked safe ({type(value).__name__})" if isinstance(value, Markup) else "a text"
    if isinstance(value, date | time | timedelta | Decimal):
        kind = ("a date and time" if isinstance(value, datetime) else "a date" if isinstance(value, date)
                else "a time" if isinstance(value, time) else "a duration" if isinstance(value, timedelta)
                else "a number")
        return f"{kind} ({type(value).__name__})"
    if isinstance(value, tuple):
        return f"a named tuple ({type(value).__name__})"
    if isinstance(value, list | dict):
        return f"a {'list' if isinstance(value, list) else 'mapping'} ({type(value).__name__})"
    if isinstance(value, Macro):
        return "the macro's caller" if value.name is None else f"the macro {value.name}"  # `caller` has no name
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
    """`value`, to be made a text; ExpressionError if its text would show anything but data (see unwritable)."""
    if type(value) not in _SCALARS and (found := unwritable(value)) is not None:
        raise ExpressionError(refusal("makes a text of", found))
    return value


def notation_of(value: Any, how: str, fix: str) -> Any:
    """`value`, to be made a text by Python's notation of it (`how`: `%r`, `!r`, `| pprint`); ExpressionError
    unless it is made of scalars, lists and mappings (see shown_within), saying `fix`."""
    if type(value) not in _SCALARS and (found := shown_within(value)) is not None:
        if not_data(found):
            raise ExpressionError(refusal("makes a text of", found))
        raise ExpressionError(f"makes a text of {what(found)} by Python's notation ({how}): {fix}")
    return value


_PERCENT_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(?:\*|\d*)(?:\.(?:\*|\d*))?[hlL]?(.?)")


@lru_cache(maxsize=1024)
def _percent_notations(text: str) -> bool:
    """Whether a %-format writes any operand by Python's notation (`%r`, `%a`); `%%` is a percent sign."""
    return any(conversion in ("r", "a") for conversion in _PERCENT_CONVERSION.findall(text))


def percent_operands(text: str, right: Any) -> None:
    """The operands of `text % right` (the `%` operator and the `format` filter): each made a text of data,
    ExpressionError otherwise. A tuple holds the operands, a mapping too when the format names them (`%(a)s`);
    anything else is the one operand."""
    if type(right) in _SCALARS:
        return
    operands: Iterable[Any]
    if isinstance(right, tuple):
        operands = right
    elif isinstance(right, Mapping) and "%(" in text:
        operands = right.values()
    else:
        operands = (right,)
    if _percent_notations(text):
        for operand in operands:
            notation_of(operand, "`%r`", "write it with `%s`")
    else:
        for operand in operands:
            text_of(operand)


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
    return {name: _OWN_CHECKS.get(name, _textual)(function) if name in TEXTUAL else function
            for name, function in filters.items()}


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


def _argument(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _joined(function: Callable[..., Any]) -> Callable[..., Any]:
    """`join` (eval_ctx, value, d, attribute): the separator and each item it writes (each item's `attribute`)
    made a text: `[now, now] | join(', ')` writes each date as itself, `[[now]] | join` is refused."""

    @wraps(function)
    def checked(eval_ctx: Any, *args: Any, **kwargs: Any) -> Any:
        value = _argument(args, kwargs, 0, "value", None)
        separator = _argument(args, kwargs, 1, "d", "")
        attribute = _argument(args, kwargs, 2, "attribute", None)
        text_of(separator)
        if isinstance(value, list | tuple | dict):
            if attribute is not None:  # what join writes: the attribute of each item, looked up once here
                getter = make_attrgetter(eval_ctx.environment, attribute)
                value = [getter(item) for item in value]
                args, kwargs = (value, separator), {}
            for item in value:
                text_of(item)
        elif not isinstance(value, str):
            text_of(value)
        return function(eval_ctx, *args, **kwargs)
    return checked


def _each_pair(function: Callable[..., Any]) -> Callable[..., Any]:
    """`xmlattr` and `urlencode`: each key and value of their mapping (or list of pairs) made a text."""
    offset = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    @wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for arg in args[offset + 1:]:
            text_of(arg)
        for arg in kwargs.values():
            text_of(arg)
        value = args[offset] if len(args) > offset else None
        if isinstance(value, Mapping):
            for key, item in value.items():
                text_of(key)
                text_of(item)
        elif isinstance(value, list | tuple):
            for pair in value:
                for item in pair if isinstance(pair, list | tuple) else (pair,):
                    text_of(item)
        else:
            text_of(value)
        return function(*args, **kwargs)
    return checked


def _formatted(function: Callable[..., Any]) -> Callable[..., Any]:
    """`format` (value % (kwargs or args)): its operands, as the `%` operator's are checked."""

    @wraps(function)
    def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
        text_of(value)
        percent_operands(value if isinstance(value, str) else "", kwargs or args)
        return function(value, *args, **kwargs)
    return checked


def _pretty(function: Callable[..., Any]) -> Callable[..., Any]:
    """`pprint`: Python's notation of its value."""

    @wraps(function)
    def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
        notation_of(value, "`| pprint`", "write it without `| pprint`")
        return function(value, *args, **kwargs)
    return checked


_OWN_CHECKS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "join": _joined, "xmlattr": _each_pair, "urlencode": _each_pair, "format": _formatted, "pprint": _pretty}
"""The filters of TEXTUAL that make a text of parts of their value, or by Python's notation: checked their way."""


class NotDataConstant(jinja2.TemplateAssertionError):
    """A constant `{{ }}` that Jinja computes while compiling (and, in HTML, escapes before finalize sees it),
    whose text would not be data: refused at load. Its message says what and how to fix it, as a refusal at
    render would; it is no syntax error."""


def constants_written(tree: nodes.Template, environment: jinja2.Environment) -> None:
    """NotDataConstant at the line of the first `{{ }}` of `tree` that Jinja would compute while compiling and
    whose text would not be data (`{{ [1, 2] | unique }}`, `{{ 'ab'.split }}`): Jinja writes such a constant
    into the compiled code, escaped in an HTML field before the sandbox's finalize sees it. Checked once, at
    load; what is not constant is checked where it is written."""
    context = nodes.EvalContext(environment)
    for output in tree.find_all(nodes.Output):
        for child in output.nodes:
            if isinstance(child, nodes.TemplateData):
                continue
            try:
                value = child.as_const(context)
            except Exception:  # not a constant (Impossible), or one that fails: Jinja runs those at render
                continue
            if type(value) not in _SCALARS and (found := unwritable(value)) is not None:
                raise NotDataConstant(refusal("writes", found), child.lineno)


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

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion in ("r", "a"):
            notation_of(value, f"`!{conversion}`", f"drop the `!{conversion}`")
        elif conversion is not None:
            text_of(value)
        return super().convert_field(value, conversion)


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
