"""Sandboxed Jinja2 expressions: the conditions and computed values journeys are written with.

A journey says `where: "event.properties.total >= 20"` or `vars: {total: "event.properties.total"}`. Those strings
come from people who are not the engine's authors, and the data they read comes from the outside world, so they
run in Jinja2's sandbox (no attribute access to internals, no imports).

Data that is not there is read two ways, by what the expression is for:

- a condition (`Expression.test`) sees it as `Missing`: falsy where it stands, so `and`, `or` and `not` mean what
  they say whatever the order of their operands (see `Missing` for comparisons, arithmetic and filters);
- a value (`Expression.evaluate`) is strict: a name or key that does not exist is an error the caller records,
  never a silent empty string sent to a customer (`| default(...)` says what to use instead).

The scope is always a mapping of `customer`, `event`, `vars` and `now` (templates add `data` and `locale`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from functools import lru_cache, wraps
from types import CodeType
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from omnicanal import budget, plain_data, text_checks
from omnicanal.errors import BudgetExceeded, ExpressionError
from omnicanal.plain_data import LISTABLE, hint, not_data, not_data_within, text_of, unwritable, what

UNCOMPILABLE = (RecursionError, SyntaxError)
"""What compiling a text that Jinja parsed may still raise: its parser and code generator recurse once per level
of nesting (RecursionError), and Python refuses some code they make (SyntaxError: past 200 nested parentheses;
`(1.5)[0:1]`, a slice Jinja writes as Python, is a SyntaxWarning made an error by `-W error`)."""


def uncompilable(exc: RecursionError | SyntaxError) -> str:
    """Why a text that parsed did not compile, and what to do about it."""
    if isinstance(exc, RecursionError):
        return "nested deeper than Jinja follows: write it in steps, with `vars`"
    return f"Python refuses the code it makes of it ({exc.msg}): write it in steps, with `vars`"


def _money(amount: Any, currency: str = "EUR", locale: str = "en") -> str:
    """Format an amount the way customers of that locale read prices: `89,00 €` (fr) or `€89.00` (en)."""
    symbol = {"EUR": "€", "USD": "$", "GBP": "£"}.get(currency, currency)
    value = f"{float(amount):,.2f}"
    if locale.startswith("fr"):
        return value.replace(",", "\u202f").replace(".", ",") + f"\u00a0{symbol}"
    return f"{symbol}{value}"


class _DataFirstSandbox(ImmutableSandboxedEnvironment):
    """A sandbox where `event.properties.items` means the key `items`, not the dict method, where every
    evaluation has a budget (budget.py: the operators, calls, slices and compiled code that can grow go through it),
    and where only data becomes a text (plain_data.py says what data is, text_checks.py checks `~`, `%`, `str.format`
    and the filters that make text).

    Jinja looks up attributes before keys; event properties are data, and names such as `items`, `keys` or
    `values` are common in them, so for mappings the key wins. A subscript (`event.properties['items']`) on a
    mapping reads its key only: a key that is not there is undefined, never the method of the same name.
    """

    intercepted_binops = budget.INTERCEPTED_BINOPS

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            text_checks.percent_operands(left, right)
        return budget.binop(operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        return text_checks.format_method(self, value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget.before_call(__obj, args, kwargs)
        return budget.check_size(super().call(__context, __obj, *args, **kwargs), "a call's result")

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template's code, with its work counted and its texts checked to be made of data; a constant over
        the budget, or one written that is not data, is refused here, at load."""
        tree = _rewritten(super()._parse(source, name, filename), self)
        text_checks.constants_written(tree, self)
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict or isinstance(obj, Mapping):  # JSON data is dicts: the ABC check only for others
            if attribute in obj:
                return obj[attribute]
            if not hasattr(obj, attribute):  # what Jinja would find after two failed look-ups
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if type(obj) is dict or isinstance(obj, Mapping):
            try:
                return obj[argument]
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=argument)
        return super().getitem(obj, argument)  # (slices do not come here: budget.budgeted counts them)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as a plain dict, not Jinja's ChainMap over the environment's: every render
        copies them, and copying a ChainMap is a measurable share of each send. The environment's globals
        never change after it is made, so the snapshot is the same thing."""
        return {**self.globals, **(d or {})}


def _written(value: Any) -> Any:
    """What `{{ ... }}` writes: data, counted by the budget."""
    if type(value) is not str and (found := unwritable(value)) is not None:
        raise ExpressionError(plain_data.refusal("writes", found))
    return budget.write(value)


_OTHER_FILES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
"""Tags that read another template: the sandbox has no loader, so each would fail every render."""


def _rewritten(tree: nodes.Template, environment: jinja2.Environment) -> nodes.Template:
    """Parsed code as the sandbox runs it: its texts checked (text_checks.checked), its work counted (budget).
    A tag reading another file is refused here, at load, rather than failing each message at its send."""
    for node in tree.find_all(_OTHER_FILES):
        raise jinja2.TemplateSyntaxError("a template field stands alone: include, import and extends (which read "
                                         "another file) are not available; write the text here, or a macro in "
                                         "this field", node.lineno)
    return budget.budgeted(text_checks.checked(tree), environment)


def make_sandbox(*, autoescape: bool = False) -> ImmutableSandboxedEnvironment:
    """The sandbox configuration shared by message templates and expressions (which set how they read data that
    is not there: `_Absent` for values, `Missing` for conditions).

    Without Jinja's optimizer: it tries to fold every subexpression of every node into a constant, which takes
    time cubic in the nesting (a chain of 200 filters took 3 s to compile, blocking a reload) and runs filters
    while compiling. Constants are still folded where it matters, by the budget (`budgeted`)."""
    env = _DataFirstSandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=False,
        finalize=_written,
        optimized=False,
    )
    env.filters["money"] = _money
    env.filters = budget.budgeted_filters(text_checks.textual_filters(env.filters))
    env.filters[text_checks.TEXT_OF] = text_of
    env.tests = budget.budgeted_tests(env.tests)  # type: ignore[assignment,arg-type]  # Jinja types them narrowly
    env.globals["lipsum"] = budget.lipsum
    return env


class _NotThere(jinja2.ChainableUndefined):
    """What both readings of data that is not there share: a look-up in it is not there either (so
    `event.properties.coupon.code` works as `event.properties.coupon` does), and what the sandbox refuses
    (`customer.__class__`) is not absent data but a mistake, an error at once."""

    __slots__ = ()

    def __init__(self, hint: str | None = None, obj: Any = missing, name: str | None = None,
                 exc: type[jinja2.TemplateRuntimeError] = jinja2.UndefinedError) -> None:
        if issubclass(exc, SecurityError):
            raise exc(hint)
        super().__init__(hint, obj, name, exc)


class _Absent(jinja2.StrictUndefined, _NotThere):
    """Data that is not there, as a value reads it: an error as soon as it is used or is the value, except by
    `default` and `is defined` (`event.properties.coupon.code | default('none')`)."""

    __slots__ = ()


class Missing(_NotThere):
    """Data that is not there, as a condition reads it: false where it stands, whatever surrounds it.

    - it is falsy: `not customer.vip` is true for a customer without `vip`, and `customer.vip or x` is `x`;
    - it equals nothing (not even another missing value), so `==` is false and `!=` true: a customer without a
      tier is not gold. `in` is false and `not in` true, the same way round. `<`, `<=`, `>` and `>=` are false;
    - it stays missing through what is computed from it: a look-up in it (`event.properties.a.b.c`), a call,
      arithmetic (`event.properties.total * 2 >= 100` is false) and any filter but `default`, which replaces
      it (`customer.age | int < 18` is false for a customer whose age is unknown, not true as for 0);
    - `is defined` and `is undefined` tell it apart from a value; joined as text (`~`) it is empty.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    __hash__ = _NotThere.__hash__

    def __contains__(self, item: object) -> bool:
        return False

    def _compares_false(self, other: object) -> bool:
        return False

    __lt__ = __le__ = __gt__ = __ge__ = _compares_false  # type: ignore[assignment]

    def _stays_missing(self, *args: Any, **kwargs: Any) -> Missing:
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _stays_missing  # type: ignore[assignment]
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _stays_missing  # type: ignore[assignment]
    __mod__ = __rmod__ = __pow__ = __rpow__ = __neg__ = __pos__ = __call__ = _stays_missing  # type: ignore


def _missing_through(function: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, answering `Missing` when its value or an argument is missing (and the filter otherwise)."""

    @wraps(function)  # keeps jinja_pass_arg, which says whether Jinja passes its context first
    def through(*args: Any, **kwargs: Any) -> Any:
        for arg in args:
            if type(arg) is Missing:
                return arg
        for arg in kwargs.values():
            if type(arg) is Missing:
                return arg
        return function(*args, **kwargs)
    return through


def _condition_sandbox() -> ImmutableSandboxedEnvironment:
    """The shared sandbox, reading data that is not there as `Missing` (filters pass it on, but `default`)."""
    env = make_sandbox()
    env.undefined = Missing
    env.filters = {name: function if name in ("default", "d") else _missing_through(function)
                   for name, function in env.filters.items()}
    return env


def _value_sandbox() -> ImmutableSandboxedEnvironment:
    """The shared sandbox, reading data that is not there as `_Absent`."""
    env = make_sandbox()
    env.undefined = _Absent
    return env


_VALUES = _value_sandbox()
_CONDITIONS = _condition_sandbox()


class LightContext(Context):
    """The context of one evaluation or render, reading names in the scope itself, then in the sandbox's globals.

    Jinja's own context for a call copies the scope and the globals into a new dict; compiled code only reads
    names and keeps what it sets (`{% set %}`, an expression's `result`) in `vars`, so this one keeps the scope
    as given. Every attribute Context's methods read is set here, which is why Context's constructor is not
    run. An expression shares its sandbox's evaluation context (it has no `{% autoescape %}` block that could
    change it); a template render gets its own."""

    def __init__(self, environment: jinja2.Environment, eval_ctx: EvalContext, scope: Mapping[str, Any],
                 blocks: Mapping[str, Callable[[Context], Any]] | None = None) -> None:
        self.environment = environment
        self.eval_ctx = eval_ctx
        self.parent = scope  # type: ignore[assignment]  # a Mapping is all it reads
        self.vars = {}
        self.exported_vars = set()
        self.name = None
        self.globals_keys = set()
        self.blocks = {name: [block] for name, block in blocks.items()} if blocks else {}  # `{% block %}`

    def resolve_or_missing(self, key: str) -> Any:
        if key in self.parent:
            return self.parent[key]
        return self.environment.globals.get(key, missing)


def _compile(source: str) -> CodeType:
    """Python code assigning the expression's value to `result`, as Jinja's own `compile_expression` makes."""
    parser = Parser(_VALUES, source, state="variable")
    expression = parser.parse_expression()
    if not parser.stream.eos:
        raise jinja2.TemplateSyntaxError("chunk after expression", parser.stream.current.lineno)
    template = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)], lineno=1)
    code: CodeType = _VALUES.compile(_rewritten(template, _VALUES))
    return code


class _Bound:
    """An expression's code bound to one sandbox: its filters, tests and undefined."""

    __slots__ = ("_environment", "_eval_ctx", "_root")

    def __init__(self, environment: jinja2.Environment, code: CodeType) -> None:
        template = environment.template_class.from_code(environment, code, environment.make_globals(None))
        self._environment, self._eval_ctx = environment, EvalContext(environment)
        self._root = template.root_render_func

    def __call__(self, scope: Mapping[str, Any]) -> Any:
        budget.start()
        context = LightContext(self._environment, self._eval_ctx, scope)
        for _ in self._root(context):
            pass
        return context.vars["result"]


def _failure(source: str, exc: Exception) -> ExpressionError:
    """What went wrong in evaluating or rendering `source`, typed: a budget failure stays a BudgetExceeded (its
    caller reports it as one), a sandboxed evaluation's any other failure is an ExpressionError naming it."""
    if isinstance(exc, BudgetExceeded):
        return BudgetExceeded(f"{source!r}: over its budget: {exc}")
    if isinstance(exc, ExpressionError):  # refused inside the sandbox (plain_data.py, text_checks.py): already says why
        return ExpressionError(f"{source!r}: {exc}")
    if isinstance(exc, jinja2.UndefinedError):
        return ExpressionError(f"{source!r}: {exc.message}")
    return ExpressionError(f"{source!r}: {type(exc).__name__}: {exc}")


class Expression:
    """A compiled expression; test or evaluate it against a scope as many times as needed.

    Compiled once to Python code by Jinja; that code is bound to each sandbox, so a condition and a value run
    the same code and differ only in how they read data that is not there."""

    __slots__ = ("_condition", "_value", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            code = _compile(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ExpressionError(f"expression {source!r} does not compile: {exc.message}") from exc
        except UNCOMPILABLE as exc:
            raise ExpressionError(f"expression {source[:80]!r} does not compile: {uncompilable(exc)}") from exc
        self._value = _Bound(_VALUES, code)
        self._condition = _Bound(_CONDITIONS, code)

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """The expression's value; raises ExpressionError on an undefined name or key, or any failure inside it."""
        try:
            value = self._value(scope)
        except Exception as exc:  # a sandboxed expression may fail in any way; none may escape untyped
            raise _failure(self.source, exc) from exc
        if isinstance(value, jinja2.Undefined):
            raise ExpressionError(f"{self.source!r}: {value._undefined_message}")
        if (found := not_data_within(value)) is not None:
            if isinstance(found, jinja2.Undefined):
                raise ExpressionError(f"{self.source!r} holds {what(found)}: `| default(...)` says what to use "
                                      "instead")
            raise ExpressionError(f"{self.source!r} {'is' if found is value else 'holds'} {what(found)}, not data: "
                                  f"{hint(found)}")
        return value

    def test(self, scope: Mapping[str, Any]) -> bool:
        """The expression as a condition: data that is not there is `Missing`, false where it stands.

        Events come from many systems and not all carry every property, so `event.properties.fulfilment ==
        'click_collect'` is simply false for an event without `fulfilment`, and `customer.vip or
        event.properties.total >= 100` holds for a big order from a customer without `vip`. Other failures
        (comparing a text with a number, ...) raise ExpressionError: they are mistakes worth seeing.
        """
        try:
            value = self._condition(scope)
        except Exception as exc:  # as in evaluate: typed, with the expression it comes from
            raise _failure(self.source, exc) from exc
        if not_data(value):  # a sequence whose items may be data holds when it is not empty: say how to test that
            why = f"{hint(value)} to test its items" if isinstance(value, LISTABLE) else "it would always hold"
            raise ExpressionError(f"{self.source!r} is {what(value)}, not data: {why}")
        return bool(value)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


def _parsed(source: str) -> nodes.Expr:
    try:
        return Parser(_VALUES, source, state="variable").parse_expression()
    except jinja2.TemplateSyntaxError as exc:
        raise ExpressionError(f"expression {source!r} does not compile: {exc.message}") from exc


def _key_reads(expression: nodes.Expr, name: str) -> list[tuple[nodes.Getattr | nodes.Getitem, str]]:
    """Each `name.key` and `name['key']` of the expression, with its key."""
    def on_name(node: nodes.Expr) -> bool:
        return isinstance(node, nodes.Name) and node.name == name

    found: list[tuple[nodes.Getattr | nodes.Getitem, str]] = [
        (node, node.attr) for node in expression.find_all(nodes.Getattr) if on_name(node.node)]
    found += ((node, node.arg.value) for node in expression.find_all(nodes.Getitem)
              if on_name(node.node) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str))
    return found


def keys_read(source: str, name: str) -> frozenset[str]:
    """The keys an expression reads from the mapping `name`, written `name.key` or `name['key']` (a key computed
    at run time is not known here): what a segment's `where` reads of its aggregates. ExpressionError if it does
    not compile."""
    return frozenset(key for _, key in _key_reads(_parsed(source), name))


def reads(source: str, name: str) -> frozenset[str] | None:
    """The keys of the mapping `name` the expression's value can depend on (empty: it does not read `name`), or
    None when it may depend on any: `name` read whole (`customer | length`), by a computed key, or through a
    name that may be a dict method (`customer.get('tier')`, `customer.items`: the sandbox gives the method when
    no such key exists). What lets a segment's membership be left alone while nothing it reads changes.
    ExpressionError if it does not compile."""
    expression = _parsed(source)
    uses = sum(1 for node in expression.find_all(nodes.Name) if node.name == name)
    keys = [(node, key) for node, key in _key_reads(expression, name)
            if not (isinstance(node, nodes.Getattr) and hasattr(dict, key))]
    return frozenset(key for _, key in keys) if len(keys) == uses else None


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Expression:
    """Compile once, reuse everywhere: the same condition text in many journeys compiles a single time."""
    return Expression(source)


class TextTemplate:
    """A text with `{{ expressions }}` (a `fetch` step's URL), compiled once, rendered with the values' sandbox:
    data that is not there is an error, not an empty string (a URL must not silently lose a part)."""

    __slots__ = ("_template", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._template = _VALUES.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ExpressionError(f"template {source!r} does not compile: {exc.message}") from exc
        except UNCOMPILABLE as exc:
            raise ExpressionError(f"template {source[:80]!r} does not compile: {uncompilable(exc)}") from exc

    def render(self, scope: Mapping[str, Any]) -> str:
        """The text; ExpressionError on data that is not there or any failure in it, BudgetExceeded over the
        budget of its own (not what an evaluation before it left)."""
        budget.start()
        try:
            return self._template.render(scope)
        except Exception as exc:  # sandboxed: any failure, typed
            raise _failure(self.source, exc) from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextTemplate) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)
