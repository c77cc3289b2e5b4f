"""What one expression or template render may cost: at most its own failure, never the daemon's availability.

Every customer's work runs on one event loop, so an evaluation that takes seconds or gigabytes stops everyone.
Jinja's sandbox keeps code from reaching what it must not; it does not keep it from working too long or making
something too big (`10 ** n` with n = 10^7, `'a' * 10**9`, two nested 20,000-step loops, a quadratic membership
test over two long lists). The sandbox (expressions.make_sandbox) calls this module wherever work can grow:

- size: no text, list or mapping computed in an evaluation has more than MAX_SIZE characters or items, no integer
  more than MAX_INT_BITS bits, and a template writes at most MAX_SIZE characters. Operations that would make one in
  a single step (`*`, `**`, `%` and `format` widths, padding, `replace`, `join`, `indent`, `batch`...) are
  estimated and refused *before* they run: making a gigabyte is itself the harm;
- operations: each loop iteration, item a filter is given, element a membership test (`in`) looks at, character a
  slice or a `~` copies, and call costs a unit; MAX_OPERATIONS per evaluation;
- time: MAX_SECONDS of wall-clock per evaluation, checked as units are counted (the backstop for work the counts
  do not foresee).

Over any of them, BudgetExceeded: the condition, value or message fails like any error in it (the timeline shows
it) and the worker goes on. A constant over the size limit (`10**(10**7)` in a journey file) is refused when the
file is loaded. Evaluations never interleave (nothing in them awaits), so the budget in progress is one object,
reset by `start()`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import wraps
from string import Formatter
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

from omnicanal.errors import BudgetExceeded
from omnicanal.plain_data import looped

MAX_SIZE = 1_000_000
"""Characters of a text, items of a list or mapping, that an evaluation may compute; also what a template may
write in all."""
MAX_INT_BITS = 10_000
"""About 3,000 decimal digits: far beyond any amount or count, far below what takes time to compute or print."""
MAX_OPERATIONS = 5_000_000
"""Loop iterations, filter items, membership comparisons, copied characters... per evaluation."""
MAX_SECONDS = 1.0
"""Wall-clock per evaluation, checked as operations are counted."""
_CLOCK_EVERY = 4096
"""Units between two looks at the clock: small evaluations never read it."""

COUNTED = "_budget_loop"
CHARGED = "_budget_container"
SIZED = "_budget_text"
"""Filters the sandbox's rewrite (`budgeted`) puts around loops, `in` containers, `~` joins and slices."""


class _Budget:
    """What is left of the evaluation in progress."""

    __slots__ = ("check_at", "deadline", "left", "written")

    def __init__(self) -> None:
        self.left = self.check_at = self.written = 0
        self.deadline = 0.0

    def check(self) -> None:
        if self.left < 0:
            raise BudgetExceeded(f"more than {MAX_OPERATIONS:,} operations (loop iterations, items filtered, "
                                 "elements compared); work on less data, or with sets (`intersect`)")
        now = time.monotonic()
        if not self.deadline:  # the first look: the units so far took next to nothing
            self.deadline = now + MAX_SECONDS
        elif now > self.deadline:
            raise BudgetExceeded(f"took more than {MAX_SECONDS:g} s")
        self.check_at = self.left - _CLOCK_EVERY


_BUDGET: _Budget


def start() -> None:
    """A fresh budget for the evaluation about to run (an expression, a template field, a compilation)."""
    budget = _BUDGET
    budget.left = MAX_OPERATIONS
    budget.check_at = MAX_OPERATIONS - _CLOCK_EVERY
    budget.written = 0
    budget.deadline = 0.0  # set at the first look at the clock


def charge(units: int) -> None:
    """Count `units` of work; BudgetExceeded past the operations or the time allowed."""
    budget = _BUDGET
    budget.left -= units
    if budget.left < budget.check_at:
        budget.check()


_BUDGET = _Budget()
start()


_SIZED = (str, list, tuple, dict, set, frozenset, range)


def _too_big(what: str, size: int) -> BudgetExceeded:
    return BudgetExceeded(f"{what} would have {size:,} characters or items (at most {MAX_SIZE:,})")


def check_size(value: Any, what: str = "a value") -> Any:
    """`value`, unless it is a text, list or mapping over MAX_SIZE or an integer over MAX_INT_BITS."""
    kind = type(value)
    if kind is int:
        if value.bit_length() > MAX_INT_BITS:
            raise BudgetExceeded(f"{what} would be an integer of {value.bit_length():,} bits (at most "
                                 f"{MAX_INT_BITS:,})")
    elif isinstance(value, _SIZED) and len(value) > MAX_SIZE:
        raise _too_big(what, len(value))
    return value


def size_of(value: Any) -> int:
    """Characters or items of a text, list or mapping; 1 for anything else."""
    return len(value) if isinstance(value, _SIZED) else 1


def _text_size(value: Any) -> int:
    """What `str(value)` would measure, without making it for numbers."""
    if isinstance(value, str):
        return len(value)
    if type(value) is int:
        return value.bit_length() * 30103 // 100000 + 2
    if isinstance(value, float | bool) or value is None:
        return 25
    return len(str(value))


# -- operators ------------------------------------------------------------------------------------------------------

INTERCEPTED_BINOPS = frozenset({"*", "**", "%", "+"})
"""The operators whose result can be much larger than their operands (`+` only twice, but repeated in a loop)."""

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d*)(?:\.(\*|\d*))?")


def check_percent_format(text: str) -> None:
    """A `%`-format (`'%.2f' % price`) whose widths and precisions stay within MAX_SIZE."""
    for match in _PERCENT_SPEC.finditer(text):
        for number in match.groups():
            if number == "*":
                raise BudgetExceeded("a `*` width or precision in a %-format is not allowed: write the number")
            if number and int(number) > MAX_SIZE:
                raise _too_big("a %-format", int(number))


def check_str_format(text: str) -> None:
    """A `str.format` string whose widths and precisions stay within MAX_SIZE (nested fields are refused)."""
    try:
        parsed = list(Formatter().parse(text))
    except ValueError:
        return  # malformed: str.format says why itself
    for _, _, spec, _ in parsed:
        if spec and "{" in spec:
            raise BudgetExceeded("a nested field in a format spec is not allowed: write the width")
        for number in re.findall(r"\d+", spec or ""):
            if int(number) > MAX_SIZE:
                raise _too_big("a format spec", int(number))


def binop(operator: str, left: Any, right: Any) -> Any:
    """`left <operator> right`, refused before it runs when its result would be over the limits."""
    if operator == "**" and type(left) is int and type(right) is int and right > 0 and abs(left) > 1:
        bits = int(right * math.log2(abs(left)))
        if bits > MAX_INT_BITS:
            raise BudgetExceeded(f"{left} ** {right} would be an integer of about {bits:,} bits (at most "
                                 f"{MAX_INT_BITS:,})")
        return left**right
    if operator == "*":
        if type(left) is int and type(right) is int:
            if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                raise BudgetExceeded(f"a product of {left.bit_length() + right.bit_length():,} bits (at most "
                                     f"{MAX_INT_BITS:,})")
            return left * right
        sequence, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(sequence, str | list | tuple) and isinstance(times, int):
            size = len(sequence) * max(times, 0)
            if size > MAX_SIZE:
                raise _too_big("a repetition (`*`)", size)
            charge(size)
        return left * right
    if operator == "%":
        if isinstance(left, str):
            check_percent_format(left)
            charge(len(left))
            return check_size(left % right, "a %-format")
        return left % right
    if operator == "+":
        result = left + right
        if isinstance(result, str | list | tuple):
            charge(len(result))
            check_size(result, "a concatenation (`+`)")
        return result
    return left**right  # `**` of floats, a negative exponent, or a base of -1, 0 or 1: no larger than its operands


# -- calls --------------------------------------------------------------------------------------------------------

def _str_method_size(name: str, text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int | None:
    """What a str method that can grow its text would make, before it runs (None: it cannot grow it)."""
    if name in ("center", "ljust", "rjust", "zfill"):
        width = args[0] if args else kwargs.get("width", 0)
        return max(len(text), width) if isinstance(width, int) else None
    if name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        return len(text) + text.count("\t") * size if isinstance(size, int) else None
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        old, new = args[0], args[1]
        times = len(text) + 1 if not old else text.count(old)
        return len(text) + times * max(len(new) - len(old), 0)
    if name == "join" and args:
        items = args[0]
        if isinstance(items, list | tuple):
            return sum(_text_size(item) for item in items) + len(text) * len(items)
    if name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((_text_size(v) for v in args[0].values() if v is not None), default=1)
        return len(text) * max(longest, 1)
    return None


def before_call(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Charge a call (what its object and sized arguments hold: a method may go through all of them), and refuse
    one that would make a text over the limit."""
    owner = getattr(function, "__self__", None)
    units = 1 + size_of(owner) + sum(size_of(arg) for arg in args)
    charge(units)
    if isinstance(owner, str):
        name = getattr(function, "__name__", "")
        if name in ("format", "format_map"):
            check_str_format(owner)
        elif (size := _str_method_size(name, owner, args, kwargs)) is not None:
            if size > MAX_SIZE:
                raise _too_big(f"str.{name}", size)
            charge(size)
    wrapped = getattr(getattr(function, "__wrapped__", None), "__self__", None)  # the sandbox's str.format wrapper
    if isinstance(wrapped, str) and getattr(function, "__name__", "") in ("format", "format_map"):
        check_str_format(wrapped)


def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's `lipsum`, refused when it would write more than MAX_SIZE characters."""
    if n * max * 12 > MAX_SIZE:
        raise _too_big("lipsum", n * max * 12)
    charge(n * max)
    return generate_lorem_ipsum(n, html, min, max)


# -- filters and tests ----------------------------------------------------------------------------------------------

def _param(params: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    return params[index] if len(params) > index else kwargs.get(name, default)


Estimate = Callable[[Any, tuple[Any, ...], Mapping[str, Any]], int]
"""What a filter that can grow its input would make (characters or items), from its value and parameters, before
it runs."""


def _center(value: Any, params: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    width = _param(params, kwargs, 0, "width", 80)
    return max(_text_size(value), width) if isinstance(width, int) else 0


def _indent(value: Any, params: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    width = _param(params, kwargs, 0, "width", 4)
    text = value if isinstance(value, str) else ""
    return len(text) + (text.count("\n") + 1) * (width if isinstance(width, int) else _text_size(width))


def _replace(value: Any, params: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    old, new = _param(params, kwargs, 0, "old", ""), _param(params, kwargs, 1, "new", "")
    if not isinstance(value, str):
        return 0
    return _str_method_size("replace", value, (str(old), str(new)), {}) or 0


def _wordwrap(value: Any, params: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    width = _param(params, kwargs, 0, "width", 79)
    wrap = _param(params, kwargs, 2, "wrapstring", None) or "\n"
    text = value if isinstance(value, str) else ""
    return len(text) + (len(text) // width + 1 if isinstance(width, int) and width > 0 else 1) * _text_size(wrap)


def _count(name: str) -> Estimate:
    """`batch` and `slice` make (and may fill) as many rows as they are asked for."""
    def estimate(value: Any, params: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
        count = _param(params, kwargs, 0, name, 0)
        return count if isinstance(count, int) else 0
    return estimate


def _format(value: Any, params: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    if isinstance(value, str):
        check_percent_format(value)
    return 0


def _join(value: Any, params: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    if not isinstance(value, list | tuple):
        return 0
    separator = _param(params, kwargs, 0, "d", "")
    return sum(_text_size(item) for item in value) + _text_size(separator) * len(value)


def _sum(value: Any, params: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    if isinstance(value, list | tuple) and not isinstance(_param(params, kwargs, 1, "start", 0), int | float):
        charge(len(value) * sum(size_of(item) for item in value))  # adding sequences copies the total each time
    return 0


_ESTIMATES: dict[str, Estimate] = {
    "center": _center, "indent": _indent, "replace": _replace, "wordwrap": _wordwrap, "format": _format,
    "batch": _count("linecount"), "slice": _count("slices"), "join": _join, "sum": _sum,
}
_PER_ITEM = {"groupby": 12, "sort": 5, "dictsort": 5, "slice": 3, "batch": 2, "unique": 2, "min": 2, "max": 2}
"""Units an item costs filters that run Python for each one (a key function through the sandbox, a row made per
item), where one unit is ~0.2 µs of work (MAX_OPERATIONS in about MAX_SECONDS): `groupby` over 10^6 items took
2.4 s, `sort` 0.9 s, charged as one unit an item. Charged before the filter runs, which the clock cannot stop."""
_MATERIALISED = frozenset({"join", "sum"})
"""Filters estimated from all their items: a one-pass input (a `map`) is made a list first."""


def _materialised(value: Any) -> Any:
    """A one-pass iterable (a `map` or `select`) as a list, so that it can be measured before it is used."""
    if isinstance(value, Iterator):
        items = list(value)
        charge(len(items))
        return items
    return value


def _budgeted_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, charged for the size of its input and refused when its output would be over the limits."""
    offset = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0  # environment or context first
    estimate = _ESTIMATES.get(name)
    materialise = name in _MATERIALISED
    per_item = _PER_ITEM.get(name, 1)

    @wraps(function)  # keeps jinja_pass_arg, which says whether Jinja passes its environment or context first
    def budgeted(*args: Any, **kwargs: Any) -> Any:
        # charge(), size_of() and check_size() written out: every filter of every message goes through here
        budget = _BUDGET
        if len(args) > offset:
            value = args[offset]
            budget.left -= 1 + (len(value) * per_item if isinstance(value, _SIZED) else 1)
        else:
            budget.left -= 1
        if budget.left < budget.check_at:
            budget.check()
        result = function(*args, **kwargs)
        if type(result) is str:
            if len(result) > MAX_SIZE:
                raise _too_big(name, len(result))
            return result
        return check_size(result, name)

    @wraps(function)
    def estimated(*args: Any, **kwargs: Any) -> Any:
        if len(args) <= offset:
            return function(*args, **kwargs)
        value, params = args[offset], args[offset + 1:]
        if materialise:
            value = _materialised(value)
        size = estimate(value, params, kwargs)  # type: ignore[misc]  # only made when there is one
        if size > MAX_SIZE:
            raise _too_big(name, size)
        charge(1 + size_of(value) * per_item + size)
        return check_size(function(*args[:offset], value, *params, **kwargs), name)

    return budgeted if estimate is None else estimated


def _budget_loop(items: Any) -> Any:
    """A loop's items, each iteration charged as it comes (a sized one keeps its length for `loop.length`)."""
    if isinstance(items, jinja2.Undefined):
        return items
    looped(items)
    if hasattr(items, "__len__"):
        return _CountedSized(items)
    return _counted(items)


def _counted(items: Iterable[Any]) -> Iterator[Any]:
    for item in items:
        charge(1)
        yield item


class _CountedSized:
    __slots__ = ("_items",)

    def __init__(self, items: Any) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        return _counted(self._items)


def _budget_container(container: Any) -> Any:
    """The right side of `in`: charged for what the test may compare it with."""
    if not isinstance(container, jinja2.Undefined):
        charge(size_of(container))
    return container


def _budget_text(text: Any) -> Any:
    """The result of `~` or of a slice: charged for what it copied (`text[::-1]` in a loop costs its length every
    time), refused over the size limit."""
    charge(size_of(text))
    return check_size(text, "a text joined with `~`")


def _intersect(value: Iterable[Any], other: Iterable[Any]) -> list[Any]:
    """The items of `value` that are also in `other`, in order: `items | map(attribute='sku') | intersect(vars.skus)`.
    Linear (a set of `other`), where `select('in', other)` compares every pair."""
    items, others = list(value), list(other)
    charge(len(items) + len(others))
    try:
        wanted = set(others)
        return [item for item in items if item in wanted]
    except TypeError:  # unhashable items (mappings): compare them pair by pair, each pair charged
        charge(len(items) * len(others))
        return [item for item in items if item in others]


def _test_in(value: Any, container: Any) -> bool:
    """Jinja's `in` test, charged for what it compares (`select('in', xs)` runs it once per item)."""
    charge(size_of(container))
    return value in container


def budgeted_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The sandbox's filters, each charged and bounded, with the rewrite's own and `intersect`."""
    budgeted = {name: _budgeted_filter(name, function) for name, function in filters.items()}
    budgeted["intersect"] = _budgeted_filter("intersect", _intersect)
    budgeted.update({COUNTED: _budget_loop, CHARGED: _budget_container, SIZED: _budget_text})
    return budgeted


def budgeted_tests(tests: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    return {**tests, "in": _test_in}


def write(value: Any) -> Any:
    """What `{{ ... }}` writes (the sandbox's `finalize`), counted against MAX_SIZE written per render."""
    size = len(value) if isinstance(value, str) else 1
    budget = _BUDGET
    budget.written += size
    if budget.written > MAX_SIZE:
        raise BudgetExceeded(f"the template would write more than {MAX_SIZE:,} characters")
    budget.left -= size  # charge(size), written out: every `{{ }}` of every message goes through here
    if budget.left < budget.check_at:
        budget.check()
    return value


# -- compiled code --------------------------------------------------------------------------------------------------

def _filtered(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Rewrite(NodeTransformer):
    """Loops, `in` containers, `~` joins and slices put through the budget's filters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filtered(node.iter, COUNTED)  # type: ignore[arg-type]  # an Expr once visited
        return node

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        for operand in node.ops:
            if operand.op in ("in", "notin"):
                operand.expr = _filtered(operand.expr, CHARGED)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filtered(node, SIZED)

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        self.generic_visit(node)
        if isinstance(node.arg, nodes.Slice):  # Jinja writes a slice as Python's, past the sandbox's getitem
            return _filtered(node, SIZED)
        return node


def budgeted(tree: nodes.Template, environment: jinja2.Environment) -> nodes.Template:
    """The parsed template with its work counted (see _Rewrite); TemplateAssertionError at the line of a constant
    over the limits (`10 ** (10 ** 7)`), which Jinja would otherwise compute while compiling."""
    start()
    context = nodes.EvalContext(environment)
    for expression in tree.find_all(nodes.BinExpr):
        if expression.operator in INTERCEPTED_BINOPS:
            try:
                _constant(expression, context)
            except nodes.Impossible:
                pass
            except BudgetExceeded as exc:
                raise jinja2.TemplateAssertionError(f"a constant over the budget: {exc}", expression.lineno) from exc
    rewritten = _Rewrite().visit(tree)
    rewritten.set_environment(environment)
    return rewritten  # type: ignore[no-any-return]


def _constant(node: nodes.Expr, context: nodes.EvalContext) -> Any:
    """The value of a constant expression, computed under the budget (Impossible: not a constant)."""
    if isinstance(node, nodes.BinExpr) and node.operator in INTERCEPTED_BINOPS:
        left, right = _constant(node.left, context), _constant(node.right, context)
        try:
            return binop(node.operator, left, right)
        except BudgetExceeded:
            raise
        except Exception as exc:  # 1 / 0, 'a' * 'b': Jinja reports those where they run
            raise nodes.Impossible() from exc
    return node.as_const(context)
