"""Journey expressions of the common kind compiled to Python closures: Jinja's answer without Jinja's context.

Jinja evaluates an expression by building a template context first (~2 µs, most of what a condition such as
`event.properties.total >= 20` costs), and a journey step evaluates a few of them for every customer. Here the
parsed expression becomes a tree of closures over the scope, when every node in it means, in the engine's
sandbox (expressions.py), plain Python on plain data:

    names and constants, list/tuple/dict literals, `a.b` and `a['b']` on dicts (the data-first sandbox reads
    a mapping's key before its attributes) and `a[0]` on lists, comparisons, `and` `or` `not`, `x if c else y`,
    `~`, arithmetic (the sandbox intercepts no operator), the filters and tests that are plain functions
    (`default`, `round`, `money`, `is defined`, `is even`...), `list`, and `map(attribute=...)` / `select` /
    `reject` feeding `list`, `map`, `select` or `reject`.

Anything else (calls, slices, a look-up on an object, a filter or test that needs Jinja's context)
leaves the expression to Jinja entirely. A compiled expression that raises anything (a missing name or key, a
type error) — or whose value is a `map`/`select` result, a generator in Jinja — is evaluated again by Jinja,
whose answer, value or error, is the one given: the fast path only answers where its answer is Jinja's.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, cast

from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

Scope = Mapping[str, Any]
Compiled = Callable[[Scope], Any]


class NotCompiled(Exception):
    """The expression has a node outside the compiled subset: Jinja evaluates it."""


class Fallback(Exception):
    """Raised while evaluating where Jinja's answer could differ from plain Python's: Jinja evaluates it."""


class _Lazy(list[Any]):
    """What `map`, `select` and `reject` give: a generator in Jinja, so only `list`, `map`, `select` and `reject`
    may take it here (anything else given one leaves the expression to Jinja)."""


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "lteq": operator.le, "gt": operator.gt,
    "gteq": operator.ge, "in": lambda a, b: a in b, "notin": lambda a, b: a not in b,
}
_BINARY: dict[type[nodes.BinExpr], Callable[[Any, Any], Any]] = {
    nodes.Add: operator.add, nodes.Sub: operator.sub, nodes.Mul: operator.mul, nodes.Div: operator.truediv,
    nodes.FloorDiv: operator.floordiv, nodes.Mod: operator.mod, nodes.Pow: operator.pow,
}
_UNARY: dict[type[nodes.UnaryExpr], Callable[[Any], Any]] = {nodes.Neg: operator.neg, nodes.Pos: operator.pos}


def compile_native(node: nodes.Expr, env: SandboxedEnvironment) -> Compiled:
    """The closure computing `node` (raises NotCompiled if some part of it is outside the subset)."""
    return _Compiler(env).expr(node)


def evaluate(compiled: Compiled, scope: Scope) -> Any:
    """The value, or Fallback when Jinja must say (an exception, or a value only Jinja can make)."""
    try:
        value = compiled(scope)
    except Exception as exc:
        raise Fallback from exc
    if isinstance(value, _Lazy):
        raise Fallback
    return value


def _key(container: Any, key: Any) -> Any:
    """`container[key]` where Jinja's sandbox reads the same: a dict's key, a list's index."""
    kind = type(container)
    if kind is dict or (kind is list and type(key) is int):
        return container[key]
    raise Fallback


def _eager(value: Any) -> Any:
    if isinstance(value, _Lazy):
        raise Fallback  # Jinja would hand a generator to this filter
    return value


def _keywords(node: nodes.Filter) -> list[nodes.Keyword]:
    """A filter's keyword arguments (Jinja's parser makes them Keyword nodes; its annotations say Pair)."""
    return cast(list[nodes.Keyword], node.kwargs)


class _Compiler:
    def __init__(self, env: SandboxedEnvironment) -> None:
        self._env = env

    def expr(self, node: nodes.Expr) -> Compiled:
        if isinstance(node, nodes.BinExpr) and type(node) in _BINARY:
            return self._binary(node)
        if isinstance(node, nodes.UnaryExpr) and type(node) in _UNARY:
            return self._unary(node)
        handler = getattr(self, f"_{type(node).__name__}", None)
        if handler is None:
            raise NotCompiled(type(node).__name__)
        compiled: Compiled = handler(node)
        return compiled

    def _Name(self, node: nodes.Name) -> Compiled:
        name = node.name
        return lambda scope: scope[name]

    def _Const(self, node: nodes.Const) -> Compiled:
        value = node.value
        return lambda scope: value

    def _List(self, node: nodes.List) -> Compiled:
        items = [self.expr(item) for item in node.items]
        return lambda scope: [_eager(item(scope)) for item in items]

    def _Tuple(self, node: nodes.Tuple) -> Compiled:
        items = [self.expr(item) for item in node.items]
        return lambda scope: tuple(_eager(item(scope)) for item in items)

    def _Dict(self, node: nodes.Dict) -> Compiled:
        pairs = [(self.expr(pair.key), self.expr(pair.value)) for pair in node.items]
        return lambda scope: {key(scope): _eager(value(scope)) for key, value in pairs}

    def _Getattr(self, node: nodes.Getattr) -> Compiled:
        container, name = self.expr(node.node), node.attr
        return lambda scope: _key(container(scope), name)

    def _Getitem(self, node: nodes.Getitem) -> Compiled:
        if isinstance(node.arg, nodes.Slice):
            raise NotCompiled("slice")
        container, key = self.expr(node.node), self.expr(node.arg)
        return lambda scope: _key(container(scope), key(scope))

    def _Compare(self, node: nodes.Compare) -> Compiled:
        if any(op.op not in _COMPARE for op in node.ops):
            raise NotCompiled("comparison")
        first = self.expr(node.expr)
        ops = [(_COMPARE[op.op], self.expr(op.expr)) for op in node.ops]
        if len(ops) == 1:
            (compare, right), = ops
            return lambda scope: compare(_eager(first(scope)), _eager(right(scope)))

        def chain(scope: Scope) -> Any:  # Python's a < b < c: each operand once, stop at the first false
            left = _eager(first(scope))
            result: Any = True
            for compare, operand in ops:
                right = _eager(operand(scope))
                result = compare(left, right)
                if not result:
                    return result
                left = right
            return result
        return chain

    def _And(self, node: nodes.And) -> Compiled:
        left, right = self.expr(node.left), self.expr(node.right)
        return lambda scope: _eager(left(scope)) and right(scope)

    def _Or(self, node: nodes.Or) -> Compiled:
        left, right = self.expr(node.left), self.expr(node.right)
        return lambda scope: _eager(left(scope)) or right(scope)

    def _Not(self, node: nodes.Not) -> Compiled:
        self._not_intercepted(node.operator, self._env.intercepted_unops)
        value = self.expr(node.node)
        return lambda scope: not _eager(value(scope))

    def _CondExpr(self, node: nodes.CondExpr) -> Compiled:
        if node.expr2 is None:  # `x if c`: Jinja's undefined when c is false
            raise NotCompiled("if without else")
        test, yes, no = self.expr(node.test), self.expr(node.expr1), self.expr(node.expr2)
        return lambda scope: yes(scope) if _eager(test(scope)) else no(scope)

    def _Concat(self, node: nodes.Concat) -> Compiled:
        if self._env.autoescape is not False:
            raise NotCompiled("concat with autoescape")
        parts = [self.expr(part) for part in node.nodes]
        return lambda scope: "".join([str(_eager(part(scope))) for part in parts])

    def _binary(self, node: nodes.BinExpr) -> Compiled:
        self._not_intercepted(node.operator, self._env.intercepted_binops)
        apply, left, right = _BINARY[type(node)], self.expr(node.left), self.expr(node.right)
        return lambda scope: apply(_eager(left(scope)), _eager(right(scope)))

    def _unary(self, node: nodes.UnaryExpr) -> Compiled:
        self._not_intercepted(node.operator, self._env.intercepted_unops)
        apply, value = _UNARY[type(node)], self.expr(node.node)
        return lambda scope: apply(_eager(value(scope)))

    @staticmethod
    def _not_intercepted(symbol: str, intercepted: frozenset[str]) -> None:
        """A sandbox may route an operator through its own method (none of ours does): then Jinja evaluates."""
        if symbol in intercepted:
            raise NotCompiled(f"operator {symbol}")

    def _Filter(self, node: nodes.Filter) -> Compiled:
        if node.node is None or node.dyn_args is not None or node.dyn_kwargs is not None:
            raise NotCompiled("filter block or dynamic arguments")
        value = self.expr(node.node)
        if node.name in ("map", "select", "reject"):
            return getattr(self, f"_filter_{node.name}")(value, node)  # type: ignore[no-any-return]
        if node.name == "list":
            return lambda scope: list(value(scope))
        function = self._env.filters.get(node.name)
        if function is None or getattr(function, "jinja_pass_arg", None) is not None:
            raise NotCompiled(f"filter {node.name}")  # unknown, or wants Jinja's context or environment
        args = [self.expr(arg) for arg in node.args]
        kwargs = {keyword.key: self.expr(keyword.value) for keyword in _keywords(node)}

        def call(scope: Scope) -> Any:
            return function(_eager(value(scope)), *[_eager(arg(scope)) for arg in args],
                            **{name: _eager(kwarg(scope)) for name, kwarg in kwargs.items()})
        return call

    def _Test(self, node: nodes.Test) -> Compiled:
        """`x is even`, `x is defined`...: a test that is a plain function. A value computed here is never
        Jinja's undefined, so `is defined` is true when it computes; when it does not, Jinja says."""
        if node.dyn_args is not None or node.dyn_kwargs is not None or node.kwargs:
            raise NotCompiled("test arguments")
        test = cast("Callable[..., Any] | None", self._env.tests.get(node.name))
        if test is None or getattr(test, "jinja_pass_arg", None) is not None:
            raise NotCompiled(f"test {node.name}")
        value, args = self.expr(node.node), [self.expr(arg) for arg in node.args]
        return lambda scope: test(_eager(value(scope)), *[_eager(arg(scope)) for arg in args])

    def _filter_map(self, value: Compiled, node: nodes.Filter) -> Compiled:
        """`map(attribute='name')`: each item's key, read as Jinja's attribute getter reads it."""
        keywords = {keyword.key: keyword.value for keyword in _keywords(node)}
        attribute = keywords.get("attribute")
        if node.args or set(keywords) != {"attribute"} or not isinstance(attribute, nodes.Const):
            raise NotCompiled("map")
        name = attribute.value
        if not isinstance(name, str) or "." in name or name.isdigit():  # Jinja walks dotted and numeric parts
            raise NotCompiled("map")

        def mapped(scope: Scope) -> _Lazy:
            items = value(scope)
            return _Lazy(_key(item, name) for item in items) if items else _Lazy()
        return mapped

    def _filter_select(self, value: Compiled, node: nodes.Filter, keep: bool = True) -> Compiled:
        """`select('test', args...)` (and `reject`): the items the test passes (fails), or are truthy (falsy)."""
        if node.kwargs or (node.args and not isinstance(node.args[0], nodes.Const)):
            raise NotCompiled(node.name)
        if not node.args:
            def truthy(scope: Scope) -> _Lazy:
                items = value(scope)
                return _Lazy(item for item in items if bool(item) is keep) if items else _Lazy()
            return truthy
        name = cast(nodes.Const, node.args[0]).value
        test = cast("Callable[..., Any] | None", self._env.tests.get(name))
        if test is None or getattr(test, "jinja_pass_arg", None) is not None:
            raise NotCompiled(f"test {name}")
        test_args = [self.expr(arg) for arg in node.args[1:]]

        def chosen(scope: Scope) -> _Lazy:
            items = value(scope)
            if not items:
                return _Lazy()
            extra = [_eager(arg(scope)) for arg in test_args]
            return _Lazy(item for item in items if bool(test(item, *extra)) is keep)
        return chosen

    def _filter_reject(self, value: Compiled, node: nodes.Filter) -> Compiled:
        return self._filter_select(value, node, keep=False)
