"""Who gets the credit for a conversion: the messages the customer received before it, on any channel and from
any journey, by three models side by side — last touch, first touch and linear (equal shares).

Pure: touchpoints in, credits out. The counters it leads to (journey/core.py) say, per converting journey,
how many conversions and how much revenue each step and channel earned under each model, split by where the goal
happened (the event's `channel` property: web, store, app...), so that "the push discount led to 42 purchases in
store worth 3,870 EUR" is one number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

MODELS = ("last", "first", "linear")
COUPON = "coupon"
"""Credit by coupon code: the message whose code was redeemed (exact, not modelled; counted apart)."""
WINDOW = 7 * 86400.0
"""How far back messages earn credit when the goal has no `within`."""
KEPT = 50
"""Touchpoints kept per customer (the most recent): older ones could not be credited inside any sane window."""
KEPT_FOR = 90 * 86400.0


def touchpoint(message_id: str, journey: str, step: str, channel: str, at: float) -> dict[str, Any]:
    return {"m": message_id, "j": journey, "s": step, "c": channel, "t": at}


def kept(touchpoints: Sequence[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """The touchpoints worth keeping: recent, and the last KEPT of them."""
    return [t for t in touchpoints[-KEPT:] if now - float(t["t"]) <= KEPT_FOR]


def credits(touchpoints: Sequence[Mapping[str, Any]], now: float, window: float
            ) -> dict[str, list[tuple[dict[str, Any], float]]]:
    """Each model's (touchpoint, share) pairs for a conversion at `now`: the shares of a model add up to 1, or
    the model credits nothing when no message came within the window."""
    touches = [dict(t) for t in touchpoints if 0 <= now - float(t["t"]) <= window]
    if not touches:
        return {model: [] for model in MODELS}
    share = 1 / len(touches)
    return {"last": [(touches[-1], 1.0)], "first": [(touches[0], 1.0)], "linear": [(t, share) for t in touches]}


def revenue_of(value: Any) -> float:
    """A conversion's revenue from what the goal's expression (or the event's `total`) gave: a finite number,
    or 0 for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return float(value)


_WHERE = re.compile(r"[a-z0-9_-]{1,32}")


def where_of(event: Mapping[str, Any]) -> str:
    """Where the goal happened: the event's `channel` property (web, store, app...), `unknown` without one,
    `other` for a value that is no short name (it goes into counter names)."""
    value = event.get("properties", {}).get("channel")
    if value is None:
        return "unknown"
    return value if isinstance(value, str) and _WHERE.fullmatch(value) else "other"


def counter(model: str, where: str, touch: Mapping[str, Any], measure: str) -> str:
    """`attr:<model>:<where>:<journey>:<step>:<channel>:conversions|revenue` in the converting journey's stats."""
    return f"attr:{model}:{where}:{touch['j']}:{touch['s']}:{touch['c']}:{measure}"
