"""JSON, fast: what the API reads and answers, what the store keeps (events in the work streams, instances,
timeline entries, message records, profiles), what connectors post.

Each event is decoded and encoded several times on its way (request, stream, instance, timeline, provider), so
this is orjson, in C. It reads integers beyond 64 bits as floating point numbers (as JavaScript does) and refuses
to write them: writing such a value (an expression can compute one) falls back to the standard library, so no
value becomes unstorable. A tuple of any kind is an array, as a list is: a `groupby` row or `now.isocalendar()`, which
orjson does not write itself, is written `["Sneakers", [...]]`, not as the text of its Python notation. Values JSON
has no type for (sets, decimals) are written as text.

Two things no encoder can store: text with a lone surrogate (`"\\ud800"` in JSON parses, but UTF-8 has no
encoding for it) and nesting deep enough to exhaust the interpreter's stack. `unstorable` finds them, so that
the API refuses them at the door.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from typing import Any

import orjson

_FLOAT_MAX = sys.float_info.max


def _json_of(value: Any) -> Any:
    """What orjson and json write for a value they have no type for: a tuple's items (orjson writes only `tuple`
    itself, not a named tuple), or else its text."""
    return list(value) if isinstance(value, tuple) else str(value)


def encode(value: Any) -> bytes:
    """Compact JSON, UTF-8 encoded.

    orjson's option for keys that are not strings (an expression can build `{1: ...}`) makes every call ~60 %
    slower, so it is only asked for when plain orjson refused the value; integers beyond 64 bits go to the
    standard library."""
    try:
        return orjson.dumps(value, default=_json_of)
    except orjson.JSONEncodeError:
        pass
    try:
        return orjson.dumps(value, default=_json_of, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_of).encode()


def unstorable(value: Any, max_depth: int) -> tuple[str, str] | None:
    """Where in `value` (a dotted path, "" for `value` itself) something cannot be stored, and what: a string or
    key with a lone surrogate, or a container nested more than `max_depth` deep (`value` counts as one). None
    when all of it can be stored.

    Called on every event the API takes, so the common case is settled in C: orjson refuses lone surrogates,
    and a text with at most `max_depth` brackets cannot nest deeper (brackets inside strings only make the
    count larger). Past that, the containers are walked; the strings too when orjson refused the value."""
    try:
        text = orjson.dumps(value, default=_json_of)
    except orjson.JSONEncodeError:  # a lone surrogate, deep nesting, an integer beyond 64 bits...
        found = _first_unstorable(value, max_depth, max_depth, texts=True)
    else:
        if text.count(b"[") + text.count(b"{") <= max_depth:
            return None
        found = _first_unstorable(value, max_depth, max_depth, texts=False)
    if found is None:
        return None
    path, problem = found
    return ".".join(reversed(path)), problem


_CONTAINERS = frozenset({dict, list, tuple})


def _first_unstorable(value: Any, max_depth: int, room: int, texts: bool) -> tuple[list[str], str] | None:
    """The first problem in `value` with its path, innermost part first; strings are checked if `texts`."""
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    elif texts and isinstance(value, str) and not _encodable(value):
        return [], "text with a lone surrogate: send valid Unicode"
    else:
        return None
    if room == 0:
        return [], f"nested more than {max_depth} levels deep"
    for key, item in items:
        if texts and isinstance(key, str) and not _encodable(key):
            return [key.encode("utf-8", "backslashreplace").decode()], "a key with a lone surrogate: send valid Unicode"
        if not (texts or type(item) in _CONTAINERS):
            continue  # a number or (checked by orjson) a string
        if (found := _first_unstorable(item, max_depth, room - 1, texts)) is not None:
            found[0].append(str(key))
            return found
    return None


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def canonical(value: Any) -> bytes:
    """JSON with the keys of every object sorted: the same text for two bodies that differ only in key order (JSON
    objects have none). For JSON read from outside: its keys are text."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is."""
    return encode(value).decode()


def loads(text: str | bytes, *, finite: bool = False) -> Any:
    """The value of JSON text; ValueError when it is not JSON. With `finite` (text from outside), `NaN` and
    `Infinity`, which are not JSON but which the standard library reads, raise NonFinite naming where they are."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # not JSON, an integer beyond 64 bits, or NaN / Infinity
        value = json.loads(text)
    if finite and (found := _non_finite(value)) is not None:
        where, huge = found
        raise NonFinite(".".join(reversed(where)), huge=huge)
    return value


class NonFinite(ValueError):
    """`NaN`, `Infinity` or `-Infinity` in JSON from outside, or an integer beyond a float's range (`huge`), which
    JavaScript and orjson read as Infinity; `path` is where (dotted; "" for the whole value)."""

    def __init__(self, path: str, huge: bool = False) -> None:
        self.path = path
        self.huge = huge
        super().__init__(f"{path or 'the value'}: NaN and Infinity are not JSON numbers")


def _non_finite(value: Any) -> tuple[list[str], bool] | None:
    """The path (innermost part first) to the first NaN, infinity or integer beyond a float's range in `value`,
    and whether it is such an integer."""
    if isinstance(value, float):
        return None if math.isfinite(value) else ([], False)
    if isinstance(value, int) and not isinstance(value, bool):
        return None if -_FLOAT_MAX <= value <= _FLOAT_MAX else ([], True)
    children: Iterable[tuple[Any, Any]] = (value.items() if isinstance(value, dict)
                                           else enumerate(value) if isinstance(value, list) else ())
    for key, child in children:
        if (found := _non_finite(child)) is not None:
            found[0].append(str(key))
            return found
    return None
