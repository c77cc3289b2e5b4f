"""What an expression or template may give, write or make a text of: data (texts, numbers, booleans, lists, mappings),
never one of Python's objects.

Data is what JSON carries and what the sandbox computes from it: texts, numbers, booleans, None, lists, mappings,
and dates and times (`now`). Anything else a template reaches is Python's own and not data: a look-up that finds a
method rather than a key (`customer.keys`, for a customer without `keys`), a global of the sandbox (`lipsum`,
`cycler`, `range(3)`), a lazy sequence (`select(...)` before `| list`), a view of a mapping
(`customer.attributes.keys()`) or the set its arithmetic makes, a namespace, `self` or `loop`. Made a text, it shows
a customer Python's internals (`<built-in method keys of dict object at 0x7f...>`, `range(0, 3)`,
`dict_keys(['vip'])`, `{'vip'}`); kept in `vars` it is stored as that text; as a condition it always (or never)
holds. The sandbox refuses one wherever it would become a value or a text: what `{{ }}` writes and what an
expression gives (expressions.py), and every other place that makes a text (text_checks.py). Each refusal is an
ExpressionError naming the thing and the fix.

A text is made of data by writing it as itself: a text, a number, a date. A list or a mapping is written in
Python's notation (`[1, 'a']`), which shows each item by its own notation: that of a scalar is data, that of
anything else is Python's (`[datetime.datetime(2027, 1, 15, ...)]`, `[Markup('x')]`, `[Undefined]`). So a text is
made only of scalars, dates and times (and texts marked safe, Decimals, durations), and lists, tuples and mappings
of scalars; a tuple with a notation of its own (`now.isocalendar()`, `now.timetuple()`) is refused (`| list` makes
it a list; stored in `vars`, codec.py writes it as a JSON array). What makes a text by Python's notation even of a
date (`%r`, `!r`, `| pprint`) takes scalars and lists and mappings of them only (`notation_of`).
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import jinja2
from jinja2.filters import _GroupTuple  # _GroupTuple: what `groupby` gives, a row of it
from jinja2.runtime import LoopContext, Macro
from jinja2.utils import Namespace
from markupsafe import Markup

from omnicanal.errors import ExpressionError

SCALARS = frozenset({str, int, float, bool, type(None)})
"""The types that are data by themselves, whatever holds them: checked first, by type, on every write."""
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
        if type(item) in SCALARS:
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
        if kind in SCALARS:
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
    if type(value) in SCALARS or isinstance(value, _AS_THEMSELVES):
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
    if type(value) not in SCALARS and (found := unwritable(value)) is not None:
        raise ExpressionError(refusal("makes a text of", found))
    return value


def notation_of(value: Any, how: str, fix: str) -> Any:
    """`value`, to be made a text by Python's notation of it (`how`: `%r`, `!r`, `| pprint`); ExpressionError
    unless it is made of scalars, lists and mappings (see shown_within), saying `fix`."""
    if type(value) not in SCALARS and (found := shown_within(value)) is not None:
        if not_data(found):
            raise ExpressionError(refusal("makes a text of", found))
        raise ExpressionError(f"makes a text of {what(found)} by Python's notation ({how}): {fix}")
    return value


def looped(items: Any) -> Any:
    """What a `for` loop goes through: data, a lazy sequence, or data that is not there (Undefined's own rules);
    a function or object that a look-up found instead of a key (`event.properties.items` for an event without
    `items`: the mapping's method) is refused by name, not left to fail as "object is not iterable"."""
    if not_data(items) and not isinstance(items, LISTABLE):
        raise ExpressionError(f"loops over {what(items)}, not data: {hint(items)}")
    return items
