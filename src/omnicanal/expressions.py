"""Sandboxed Jinja2 expressions: the conditions and computed values journeys are written with.

A journey says `where: "event.properties.total >= 20"` or `vars: {total: "event.properties.total"}`. Those strings
come from people who are not the engine's authors, and the data they read comes from the outside world, so they
run in Jinja2's sandbox (no attribute access to internals, no imports) with strict undefined: a name that does
not exist is an error the caller decides about, never a silent empty string.

The scope is always a mapping of `customer`, `event`, `vars` and `now` (templates add `data` and `locale`).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from omnicanal import native
from omnicanal.errors import ExpressionError


def _money(amount: Any, currency: str = "EUR", locale: str = "en") -> str:
    """Format an amount the way customers of that locale read prices: `89,00 €` (fr) or `€89.00` (en)."""
    symbol = {"EUR": "€", "USD": "$", "GBP": "£"}.get(currency, currency)
    value = f"{float(amount):,.2f}"
    if locale.startswith("fr"):
        return value.replace(",", "\u202f").replace(".", ",") + f"\u00a0{symbol}"
    return f"{symbol}{value}"


class _DataFirstSandbox(ImmutableSandboxedEnvironment):
    """A sandbox where `event.properties.items` means the key `items`, not the dict method.

    Jinja looks up attributes before keys; event properties are data, and names such as `items`, `keys` or
    `values` are common in them, so for mappings the key wins.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as a plain dict, not Jinja's ChainMap over the environment's: every render and
        every expression evaluation copies them, and copying a ChainMap was a measurable share of each send.
        The environment's globals never change after it is made, so the snapshot is the same thing."""
        return {**self.globals, **(d or {})}


def make_sandbox(*, autoescape: bool = False) -> ImmutableSandboxedEnvironment:
    """The one sandbox configuration used by expressions and message templates alike."""
    env = _DataFirstSandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=False,
    )
    env.filters["money"] = _money
    return env


_SANDBOX = make_sandbox()


def _native(source: str) -> native.Compiled | None:
    """The expression as Python closures when it is of the kind native.py compiles (else Jinja evaluates it)."""
    try:
        return native.compile_native(Parser(_SANDBOX, source, state="variable").parse_expression(), _SANDBOX)
    except native.NotCompiled:
        return None


class Expression:
    """A compiled expression; evaluate it against a scope as many times as needed.

    Most journey expressions are also compiled to Python closures (native.py), which give Jinja's answer
    without Jinja's per-evaluation context; where those cannot answer as Jinja would, Jinja does."""

    __slots__ = ("_compiled", "_native", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._compiled = _SANDBOX.compile_expression(source, undefined_to_none=False)
        except jinja2.TemplateSyntaxError as exc:
            raise ExpressionError(f"expression {source!r} does not compile: {exc.message}") from exc
        self._native = _native(source)

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """The expression's value; raises ExpressionError on an undefined name or any failure inside it."""
        if self._native is not None:
            try:
                return native.evaluate(self._native, scope)
            except native.Fallback:
                pass  # Jinja says what it is, or what the error is
        return self._jinja(scope)

    def _jinja(self, scope: Mapping[str, Any]) -> Any:
        try:
            value = self._compiled(**scope)
        except jinja2.UndefinedError as exc:
            raise ExpressionError(f"{self.source!r}: {exc.message}") from exc
        except Exception as exc:  # a sandboxed expression may fail in any way; none may escape untyped
            raise ExpressionError(f"{self.source!r}: {type(exc).__name__}: {exc}") from exc
        if isinstance(value, jinja2.Undefined):
            raise ExpressionError(f"{self.source!r}: {value._undefined_message}")
        return value

    def test(self, scope: Mapping[str, Any]) -> bool:
        """The expression as a condition: data that is not there makes it false, not an error.

        Events come from many systems and not all carry every property, so `event.properties.fulfilment ==
        'click_collect'` is simply false for an event without `fulfilment`. Other failures (comparing a text
        with a number, ...) still raise ExpressionError: they are mistakes worth seeing.
        """
        try:
            return bool(self.evaluate(scope))
        except ExpressionError as exc:
            if isinstance(exc.__cause__, jinja2.UndefinedError) or exc.__cause__ is None:
                return False
            raise

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Expression:
    """Compile once, reuse everywhere: the same condition text in many journeys compiles a single time."""
    return Expression(source)
