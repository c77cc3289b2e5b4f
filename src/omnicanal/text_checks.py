"""Where the sandbox makes a text, each checked to be made of data (plain_data.py says what that is).

`{{ }}` is checked where it is written (expressions.py) and, at load, what Jinja computes while compiling
(`constants_written`); here every other place: each operand of `~` (rewritten through TEXT_OF) and of `%`, each
field of `str.format`, the values and arguments of the filters that make text (TEXTUAL), each item of `join`, each
key and value of `xmlattr` and `urlencode`, and what `%r`, `!r` and `| pprint` write in Python's notation.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache, update_wrapper, wraps
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.filters import make_attrgetter
from jinja2.sandbox import SandboxedFormatter
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup

from omnicanal.plain_data import SCALARS, notation_of, refusal, text_of, unwritable

_PERCENT_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(?:\*|\d*)(?:\.(?:\*|\d*))?[hlL]?(.?)")


@lru_cache(maxsize=1024)
def _percent_notations(text: str) -> bool:
    """Whether a %-format writes any operand by Python's notation (`%r`, `%a`); `%%` is a percent sign."""
    return any(conversion in ("r", "a") for conversion in _PERCENT_CONVERSION.findall(text))


def percent_operands(text: str, right: Any) -> None:
    """The operands of `text % right` (the `%` operator and the `format` filter): each made a text of data,
    ExpressionError otherwise. A tuple holds the operands, a mapping too when the format names them (`%(a)s`);
    anything else is the one operand."""
    if type(right) in SCALARS:
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
            if type(value) not in SCALARS and (found := unwritable(value)) is not None:
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
