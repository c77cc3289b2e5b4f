"""JSON, fast: what the API reads and answers, what the store keeps (events in the work streams, instances,
timeline entries, message records, profiles), what connectors post.

Each event is decoded and encoded several times on its way (request, stream, instance, timeline, provider), so
this is orjson, in C. It reads integers beyond 64 bits as floating point numbers (as JavaScript does) and refuses
to write them: writing such a value (an expression can compute one) falls back to the standard library, so no
value becomes unstorable. Values JSON has no type for (sets, dates in a variable) are written as text.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def encode(value: Any) -> bytes:
    """Compact JSON, UTF-8 encoded.

    orjson's option for keys that are not strings (an expression can build `{1: ...}`) makes every call ~60 %
    slower, so it is only asked for when plain orjson refused the value; integers beyond 64 bits go to the
    standard library."""
    try:
        return orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:
        pass
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is."""
    return encode(value).decode()


def loads(text: str | bytes) -> Any:
    """The value of JSON text; ValueError when it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
