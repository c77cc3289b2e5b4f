"""What the fuzz tests share: how many examples each runs, and the corpus of template-injection payloads.

CI runs each property a bounded number of times with a fixed seed (derandomized: the same inputs every run, no
flaky failure that cannot be reproduced). `OMNICANAL_FUZZ_EXAMPLES=N` runs every fuzz test N times per
property instead, with fresh random inputs: the way to search longer locally (add `--timeout 0` for large N).
"""

from __future__ import annotations

import os

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
)
"""Expressions a template injection tries: each must fail typed, or give plain text that holds nothing of
Python's internals. Written as expressions; `{{ ... }}` around them makes the template form."""

LEAKS = ("<class", "<module", "<built-in", "<function", "<bound method", "<method", "__globals__", "__builtins__",
         "<frame", "<code", "uid=", "root:", "subprocess", "os.popen", "<generator")
"""What a rendered value must never contain: signs that Python's objects, or a shell, were reached."""
