"""The JSON encoding of everything the store keeps: events in the work streams, instances, timeline entries,
message records, profiles.

Each event is encoded and decoded several times on its way (stream, instance, timeline), so this is orjson, in
C. Its few refusals fall back to the standard library, so no value the API accepted becomes unstorable:
integers beyond 64 bits (which orjson neither writes nor reads). Values JSON has no type for (sets, dates in
a variable) are written as text, as before.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    """Compact JSON text, UTF-8 kept as is."""
    try:
        return orjson.dumps(value, default=str, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def loads(text: str | bytes) -> Any:
    """The value of JSON text; ValueError when it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
