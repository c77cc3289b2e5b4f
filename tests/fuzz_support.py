"""What the fuzz tests share: how many examples each runs, and the corpus of template-injection payloads.

CI runs each property a bounded number of times with a fixed seed (derandomized: the same inputs every run, no
flaky failure that cannot be reproduced). `OMNICANAL_FUZZ_EXAMPLES=N` runs every fuzz test N times per
property instead, with fresh random inputs: the way to search longer locally (add `--timeout 0` for large N).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jinja2.debug
from hypothesis import HealthCheck, settings

ASKED = os.environ.get("OMNICANAL_FUZZ_EXAMPLES")


def examples(default: int) -> int:
    """Examples per property (per operation, for schemathesis): `default` in CI, or as many as asked."""
    return int(ASKED) if ASKED else default


def fuzz_settings(default: int) -> settings:
    """Hypothesis settings for a property: no deadline (a slow example on a busy 2-core machine is not a failure;
    a hang is, and the tests that guard against one measure it themselves), no example database written into
    the checkout, derandomized unless a longer run was asked for."""
    return settings(max_examples=examples(default), deadline=None, database=None, derandomize=ASKED is None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


SSTI = (
    # Reaching Python's internals from a value: the classic Jinja2 escapes.
    "''.__class__.__mro__[1].__subclasses__()",
    "''.__class__.__mro__[-1].__subclasses__()[40]('/etc/passwd').read()",
    "().__class__.__bases__[0].__subclasses__()",
    "[].__class__.__base__.__subclasses__()",
    "{}.__class__.__init__.__globals__",
    "cycler.__init__.__globals__.os.popen('id').read()",
    "joiner.__init__.__globals__.os.popen('id').read()",
    "namespace.__init__.__globals__.os.popen('id').read()",
    "lipsum.__globals__['os'].popen('id').read()",
    "lipsum.__globals__.__builtins__.__import__('os').system('id')",
    "range.__init__.__globals__",
    "self._TemplateReference__context",
    "self.__init__.__globals__.__builtins__",
    "config",
    "config.items()",
    "request",
    "request.application.__globals__.__builtins__.__import__('os').popen('id').read()",
    "url_for.__globals__",
    "get_flashed_messages.__globals__",
    "__builtins__",
    "__import__('os')",
    "customer.__class__.__init__.__globals__",
    "event.properties.__class__.__subclasses__()",
    "event.properties.items.__self__.__class__",
    "(event.properties | attr('__class__'))",
    "'' | attr('__class__') | attr('__mro__')",
    "'' | attr('\\x5f\\x5fclass\\x5f\\x5f')",
    "''['__class__']",
    "''['\\x5f\\x5fclass\\x5f\\x5f']",
    "'{0.__class__.__mro__}'.format(customer)",
    "'{0.__init__.__globals__}'.format(lipsum)",
    "'%s' % lipsum.__globals__",
    "'{x.__class__}'.format_map({'x': 1})",
    "dict(a=1).__class__.__subclasses__()",
    "(1).__class__.__base__.__subclasses__()",
    "range(10**9) | list",
    "range(10**9) | join",
    "'a' * 10**9",
    "10 ** 10 ** 7",
    "[0] * 10**9",
    "lipsum(10**6)",
    "lipsum.__code__",
    "(lambda: 0)",
    "getattr(customer, '__class__')",
    "customer.__dict__",
    "now.__class__.__module__",
    "{}.update.__self__",
    "'x'.join.__self__.__class__",
    # Python objects written as they are: `<function lipsum at 0x7f...>`, an address, in a customer's message.
    "lipsum", "cycler", "joiner", "range", "customer.keys", "event.properties.items", "cycler(1, 2)",
    "event.properties.get", "now.__class__",
    # The same objects made a text first, which `{{ }}` then writes as any text.
    "lipsum ~ ''", "'Dear ' ~ [cycler]", "customer.keys | string", "[lipsum] | join", "'%s' % joiner",
    "'%s' | format(lipsum)", "'{0.keys}'.format(customer)", "('{}' | safe).format(cycler)",
    "[1, 2] | select('odd') | string", "namespace(a=1) | e",
    # Data written in Python's notation: inside a list or mapping, or by `%r`, `!r` and `pprint`.
    "[now]", "now | pprint", "'%r' % now", "'{!r}'.format(now)", "'%r' | format(now)", "'%s' % [now]",
    "[now] | string", "{'a': [now]} | xmlattr", "now.isocalendar()", "now.timetuple()",
    # Constants Jinja computes while compiling, escaped in HTML before the sandbox sees them.
    "[1, 2] | unique", "[1, 2] | reverse", "[1, 2, 3] | batch(2)", "[1, 2, 3] | slice(2)", "{'a': 1} | items",
    "'ab'.split", "['x' | safe]",
    # A value holding data that is not there, which could not be stored.
    "[customer.nope]",
)
"""Expressions a template injection tries: each must fail typed, or give plain text that holds nothing of
Python's internals. Written as expressions; `{{ ... }}` around them makes the template form."""

LEAKS = ("<class", "<module", "<built-in", "<function", "<bound method", "<method", "<Namespace", "__globals__",
         "__builtins__", "<frame", "<code", "uid=", "root:", "subprocess", "os.popen", "<generator", "range(0, ",
         "dict_keys(", "dict_values(", "dict_items(", "<TemplateReference", "<LoopContext", " at 0x", "&lt;class",
         "&lt;function", "&lt;built-in", "datetime.", "Markup(", "Undefined", "IsoCalendarDate(", "struct_time(",
         "<Macro", "&lt;Macro")
"""What a rendered value must never contain: signs that Python's objects, or a shell, were reached (escaped too,
as an HTML field writes them), or that data was written in Python's notation (`[datetime.datetime(2027, ...)]`)."""


DANGEROUS = ("os.", "subprocess.", "shutil.", "socket.", "ctypes.", "pty.", "open", "import", "exec", "compile",
             "builtins.input", "builtins.breakpoint", "sys.", "object.__setattr__", "object.__delattr__",
             "code.__new__", "function.__new__", "marshal.", "pickle.", "urllib.", "http.", "fcntl.", "glob.",
             "cpython.")
"""Audit events (PEP 578) that sandboxed code reaching the system would raise: files, processes, imports,
sockets, frames, code objects, writes to objects. Not `object.__getattr__` (`__code__`, `tb_frame`...): Jinja's
sandbox reads an attribute before it refuses it; that the value never comes out is what assert_inert checks.
Not `builtins.id` either: Jinja hashes its undefined values with it."""

_reached: list[str] | None = None
_JINJA_DEBUG = str(Path(jinja2.debug.__file__))
"""Jinja's own error reporting, which compiles code to show template lines in tracebacks: not sandboxed code."""


def _audit(event: str, args: tuple[object, ...]) -> None:
    global _reached
    if _reached is None or not event.startswith(DANGEROUS):
        return
    reached, _reached = _reached, None  # sys._getframe below raises an audit event too
    try:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename != _JINJA_DEBUG:
            frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            reached.append(event)
    finally:
        _reached = reached


sys.addaudithook(_audit)  # for the rest of the process: a hook cannot be removed; it only records when watching


@contextlib.contextmanager
def sandboxed(seconds: float, compiling: bool = False) -> Iterator[None]:
    """Fail if the code inside reaches the system or Python's machinery (DANGEROUS, seen by an audit hook) or
    takes more than `seconds` (the budget allows 1 s per evaluation; more means something escaped it).
    `compiling`: Jinja turning a template into Python code and running its module, which it does with `compile`
    and `exec`, is expected."""
    global _reached
    _reached, started = [], time.monotonic()
    try:
        yield
    finally:
        reached, _reached = _reached, None
        took = time.monotonic() - started
    if compiling:
        reached = [event for event in reached if event not in ("compile", "exec")]
    assert not reached, f"sandboxed code reached {sorted(set(reached))}"
    assert took < seconds, f"took {took:.1f} s (at most {seconds} s)"


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Fail if the code inside takes more than `seconds`: for work that reads files (loading a project)."""
    started = time.monotonic()
    yield
    assert time.monotonic() - started < seconds, f"took more than {seconds} s"


def assert_inert(value: object) -> None:
    """`value` is data (text, numbers, lists, mappings) and nothing in it shows a Python object or a shell: read
    as JSON, as it is stored (a text marked safe is its text, a date its text, a named tuple a list), not by
    Python's notation of it; what JSON has no form for by its text (`<function lipsum at 0x...>`)."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    except (TypeError, ValueError):  # keys JSON has no form for (a tuple): Python's notation, then
        text = repr(value)
    leaked = [sign for sign in LEAKS if sign in text]
    assert not leaked, f"{leaked} in {text[:500]!r}"
