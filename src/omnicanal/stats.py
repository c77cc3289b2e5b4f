"""A journey's counters read as a funnel: per step and channel, conversions and revenue by where they happened,
attribution by model, experiment arms with their lift over the holdout, and a series over time.

Pure: counter dicts in (store/journeys.py keeps them, the journey core names them), plain data out, for
`GET /v1/journeys/{id}/stats`, `omnicanal stats` and the dashboard alike.

Counter names, as the core writes them: `started`, `completed`, `exited`, `failed`, `converted`, `revenue`
(journey); `<status>:<reason>` (exits, failures and entries skipped, e.g. `skipped:paused`, by reason);
`converted:<where>`, `revenue:<where>`;
`step:<id>:<status>`, `step:<id>:<channel>:<status>`, `step:<id>:<status>:<reason>`,
`step:<id>:arm:<arm>[:converted|:revenue]`; `channel:<channel>:<status>`;
`attr:<model>:<where>:<journey>:<step>:<channel>:<conversions|revenue>`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from omnicanal.channels import CHANNELS
from omnicanal.errors import InputError
from omnicanal.journey.attribution import COUPON, MODELS
from omnicanal.journey.model import Journey

JOURNEY_COUNTERS = ("started", "completed", "exited", "failed", "converted", "revenue", "coupons_redeemed",
                    "coupon_revenue")
REASONED = ("exited", "failed", "completed", "coupons_refused", "skipped")
STEP_REASONED = ("suppressed", "failed", "held")


def add(total: dict[str, float], more: Mapping[str, float]) -> dict[str, float]:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value
    return total


def summed(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Counters of several hours added up."""
    total: dict[str, float] = {}
    for part in parts:
        add(total, part)
    return total


def _number(value: float) -> float:
    """Whole numbers as int, fractions rounded to the cent's hundredth (float sums drift in the last digits)."""
    return int(value) if float(value).is_integer() else round(value, 4)


def _nested(target: dict[str, Any], *path: str) -> dict[str, Any]:
    for part in path:
        target = target.setdefault(part, {})
    return target


def funnel(journey: Journey, counters: Mapping[str, float]) -> dict[str, Any]:
    """The journey's funnel from its counters (all time, or summed over a range)."""
    steps: dict[str, dict[str, Any]] = {
        step.id: {"id": step.id, "kind": step.kind, "line": step.line, "counts": {"entered": 0}, "channels": {},
                  "reasons": {}, "arms": {}} for step in journey.steps}
    out: dict[str, Any] = {"counts": {name: 0 for name in JOURNEY_COUNTERS}, "reasons": {}, "by_where": {},
                           "channels": {}, "attribution": {model: [] for model in (*MODELS, COUPON)}}
    for name, raw in sorted(counters.items()):
        value = _number(raw)
        head, _, rest = name.partition(":")
        if not rest and head in out["counts"]:
            out["counts"][head] = value
        elif head in REASONED and rest:
            _nested(out, "reasons", head)[rest] = value
        elif head in ("converted", "revenue") and rest:
            _nested(out, "by_where", rest)["conversions" if head == "converted" else "revenue"] = value
        elif head == "channel":
            channel, _, status = rest.partition(":")
            _nested(out, "channels", channel)[status] = value
        elif head == "step":
            _step_counter(steps, rest, value)
        elif head == "attr":
            _attribution(out["attribution"], rest, value)
    for model in (*MODELS, COUPON):
        out["attribution"][model].sort(key=lambda row: (-row["revenue"], -row["conversions"]))
    for step in steps.values():
        _lift(step["arms"])
    out["steps"] = list(steps.values())
    return out


def _step_counter(steps: dict[str, dict[str, Any]], rest: str, value: float) -> None:
    step_id, _, what = rest.partition(":")
    step = steps.get(step_id)
    if step is None:  # a step of an older version of the journey
        return
    first, _, more = what.partition(":")
    if not more:
        step["counts"][first] = value
    elif first == "arm":
        arm, _, measure = more.partition(":")
        _nested(step, "arms", arm)[measure or "entered"] = value
    elif first in CHANNELS:
        _nested(step, "channels", first)[more] = value
    elif first in STEP_REASONED:
        _nested(step, "reasons", first)[more] = value


def _attribution(models: dict[str, list[dict[str, Any]]], rest: str, value: float) -> None:
    parts = rest.split(":")
    if len(parts) != 6 or parts[0] not in models:
        return
    model, where, journey_id, step_id, channel, measure = parts
    rows = models[model]
    row = next((r for r in rows if (r["where"], r["journey"], r["step"], r["channel"]) ==
                (where, journey_id, step_id, channel)), None)
    if row is None:
        row = {"where": where, "journey": journey_id, "step": step_id, "channel": channel, "conversions": 0,
               "revenue": 0}
        rows.append(row)
    row[measure] = value


def _lift(arms: dict[str, dict[str, Any]]) -> None:
    """Each arm's conversion rate, and its lift over the holdout's rate when there is one."""
    for arm in arms.values():
        entered = arm.get("entered", 0)
        arm.setdefault("converted", 0)
        arm.setdefault("revenue", 0)
        arm["conversion_rate"] = round(arm["converted"] / entered, 4) if entered else None
    base = arms.get("holdout", {}).get("conversion_rate")
    for name, arm in arms.items():
        if name != "holdout" and base and arm["conversion_rate"] is not None:
            arm["lift"] = round(arm["conversion_rate"] / base - 1, 4)


def series_point(counters: Mapping[str, float]) -> dict[str, float]:
    """What one bucket of a series shows: the journey's counts, and messages by status across channels."""
    point = {name: _number(counters.get(name, 0)) for name in JOURNEY_COUNTERS}
    for name, value in counters.items():
        head, _, rest = name.partition(":")
        if head == "channel":
            status = rest.partition(":")[2]
            point[f"messages_{status}"] = _number(point.get(f"messages_{status}", 0) + value)
    return point


MAX_HOURS = 366 * 24
"""The longest range a stats request may cover (its hours are read in one round trip)."""
BUCKETS = {"hour": 3600, "day": 86400}


class StatsRange:
    """The hours a stats request covers: `first` and `last` (epoch hours, included), and its buckets' width."""

    def __init__(self, start: float, end: float, bucket: str) -> None:
        """InputError names the parameter that makes no range."""
        if bucket not in BUCKETS:
            raise InputError([{"field": "bucket", "message": f"bucket must be hour or day, not {bucket!r}"}])
        if end <= start:
            raise InputError([{"field": "to", "message": "`to` must be after `from`"}])
        # `to` is excluded: the hour that begins at it is not counted (`end - 1e-9` was `end` for any timestamp of
        # this century, so a day's range counted the next day's first hour, and a day bucket the next day)
        self.first, self.last = int(start // 3600), math.ceil(end / 3600) - 1
        if self.last - self.first + 1 > MAX_HOURS:
            raise InputError([{"field": "from", "message": f"a range covers at most {MAX_HOURS // 24} days; ask "
                                                           "for a shorter one"}])
        self.bucket = bucket

    def series(self, hours: Mapping[int, Mapping[str, float]]) -> list[tuple[float, dict[str, float]]]:
        """(bucket start, counters) for every bucket of the range, empty ones included, oldest first."""
        width = BUCKETS[self.bucket] // 3600
        starts = range(self.first - self.first % width if width > 1 else self.first, self.last + 1, width)
        return [(start * 3600.0, summed(hours[h] for h in range(start, start + width) if h in hours))
                for start in starts]


class Counters(Protocol):
    """Where a journey's counters are kept (store/journeys.JourneyStore)."""

    async def counters(self, journey_id: str) -> dict[str, float]: ...

    async def hours(self, journey_id: str, first: int, last: int) -> dict[int, dict[str, float]]: ...


SERIES = 7 * 86400.0
"""Without `start`, the funnel is all time and the series covers this much before `end`."""
EARLIEST = -62_135_596_800.0
"""0001-01-01T00:00:00Z: the series of a `to` in the first week of year 1 starts there (a bucket before it has no
date to be written with)."""


async def report(source: Counters, journey: Journey, start: float | None, end: float, bucket: str | None
                 ) -> dict[str, Any]:
    """The stats of a journey: the funnel over [start, end) (all time when `start` is None) and a series by
    bucket (`hour` or `day`; by default days beyond two days of range); InputError names a wrong parameter."""
    if start is None and end <= EARLIEST:
        raise InputError([{"field": "to", "message": "`to` must be after 0001-01-01T00:00:00Z, the first date"}])
    first = start if start is not None else max(end - SERIES, EARLIEST)
    span = StatsRange(first, end, bucket or ("day" if end - first > 2 * 86400 else "hour"))
    hours = await source.hours(journey.id, span.first, span.last)
    counters = summed(hours.values()) if start is not None else await source.counters(journey.id)
    return {"journey": journey.id, "version": journey.version, "from": start, "to": end, "bucket": span.bucket,
            **funnel(journey, counters), "series": [{"at": at, **series_point(point)} for at, point in
                                                    span.series(hours)]}
