"""Query parameters read strictly: one that is malformed is a 422 naming it, never a 500 or a silent guess."""

from __future__ import annotations

from omnicanal.errors import InputError

MAX_POSITION = 2**53
"""The largest position a page may start from (`after` in the outbox, `before` in a timeline): positions are
counted in Redis, and its Lua reads numbers as doubles, exact up to 2**53."""


def whole_number(text: str, field: str, lowest: int, highest: int) -> int:
    """`text` as a whole number from `lowest` to `highest`, in ASCII digits: Python's int() also reads `٣`,
    spaces and `_`, and answers more than 4,300 digits (or `²`, a digit to str.isdigit) with a ValueError.
    InputError naming `field` otherwise."""
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(highest))
            and lowest <= (value := int(text)) <= highest):
        raise InputError([{"field": field, "message": f"{text[:40]!r}: a whole number from {lowest} to {highest}"}])
    return value
