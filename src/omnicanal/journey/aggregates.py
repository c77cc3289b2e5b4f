"""An aggregate's data as kept per customer, and its value at a moment: pure arithmetic on plain data.

A windowed count or sum keeps amounts per bucket of time (a day for windows of two days or more, an hour for
windows of two hours or more, a minute below), never one entry per event: a customer's data stays bounded (at
most one bucket per width of the window, 366 for a year) however many events they send. A bucket stops counting
when its start is `within` old, so an event leaves a 90-day window on the 90th day after the day it came (up to
a bucket's width early, never on a later day). Events count at the moment they are applied (journey time).

Stored forms, under the aggregate's signature `d` (data kept under another signature is dropped):
`{"d", "b": {bucket start: amount}}` (windowed count or sum), `{"d", "v": amount}` (count or sum since ever),
`{"d", "v": value, "t": when}` (last).
"""

from __future__ import annotations

from typing import Any

from omnicanal.journey.segments import Aggregate

DAY, HOUR, MINUTE = 86400, 3600, 60


def bucket_width(within: float) -> int:
    """The width of a window's buckets: a 50th of it at most (and whole days, hours or minutes)."""
    return DAY if within >= 2 * DAY else HOUR if within >= 2 * HOUR else MINUTE


def fresh(data: dict[str, Any] | None, aggregate: Aggregate) -> dict[str, Any]:
    """The kept data if it was kept for this very definition, else empty data for it."""
    if data is not None and data.get("d") == aggregate.signature:
        return data
    return {"d": aggregate.signature}


def add(data: dict[str, Any], aggregate: Aggregate, amount: Any, now: float) -> None:
    """One more matching event at `now`: `amount` is 1 (count), the summed value (sum) or the value (last)."""
    if aggregate.kind == "last":
        data["v"], data["t"] = amount, now
    elif aggregate.within is None:
        data["v"] = data.get("v", 0) + amount
    else:
        buckets = data.setdefault("b", {})
        start = str(int(now // bucket_width(aggregate.within) * bucket_width(aggregate.within)))
        buckets[start] = buckets.get(start, 0) + amount


def expire(data: dict[str, Any], aggregate: Aggregate, now: float) -> bool:
    """Drop the buckets (or the last value) out of the window at `now`; True if anything was dropped."""
    if aggregate.within is None:
        return False
    if aggregate.kind == "last":
        if "t" in data and data["t"] + aggregate.within <= now:
            del data["v"], data["t"]
            return True
        return False
    buckets = data.get("b", {})
    old = [start for start in buckets if int(start) + aggregate.within <= now]
    for start in old:
        del buckets[start]
    return bool(old)


def value(data: dict[str, Any], aggregate: Aggregate) -> Any:
    """The aggregate's value (expired data dropped beforehand): 0 for a count or sum of nothing, None for the
    last value of nothing."""
    if aggregate.kind == "last":
        return data.get("v")
    if aggregate.within is None:
        return data.get("v", 0)
    return sum(data.get("b", {}).values())


def next_expiry(data: dict[str, Any], aggregate: Aggregate) -> float | None:
    """When the value next changes by time alone: its oldest bucket (or last value) leaves the window."""
    if aggregate.within is None:
        return None
    if aggregate.kind == "last":
        return data["t"] + aggregate.within if "t" in data else None
    buckets = data.get("b")
    return min(int(start) for start in buckets) + aggregate.within if buckets else None
