"""The numbers of a journey's pages — overall counts, per step, per channel, conversions by where and by
attribution model — from one place: the journey's stats (stats.py), as `GET /v1/journeys/{id}/stats` answers
them, over all time or over the period the page asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omnicanal import stats
from omnicanal.engine.runtime import Runtime
from omnicanal.errors import InputError
from omnicanal.journey.model import Journey

CHANNEL_STATUSES = ("sent", "queued", "delivered", "read", "clicked", "replied", "failed", "unknown", "held",
                    "suppressed")
"""The order of a channel's funnel columns; statuses not listed follow, alphabetically."""
DEFAULT_SPAN = 86400.0
"""A period given only its end starts this long before it."""
_AFTER_LAST = 253_402_300_800.0
"""10000-01-01T00:00:00Z: a moment from it on has no date to be shown with."""


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in journey time."""

    start: float
    end: float

    @classmethod
    def from_query(cls, start: str | None, end: str | None, now: float) -> Period | None:
        """The `from` and `to` of a request (ISO 8601 or an HTML datetime-local, read as UTC); None when neither
        is given (all time). Without `to`, up to now; without `from`, a day before `to`. InputError names a value
        that is not a moment."""
        if not start and not end:
            return None
        last = _moment("to", end) if end else now
        return cls(_moment("from", start) if start else max(last - DEFAULT_SPAN, stats.EARLIEST), last)

    @classmethod
    def last_day(cls, now: float) -> Period:
        return cls(now - DEFAULT_SPAN, now)


def _moment(field: str, text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError([{"field": field, "message": f"{text!r} is not a date and time (2026-11-23T10:00)"}]
                         ) from exc
    value = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if not stats.EARLIEST <= value < _AFTER_LAST:  # 0001-01-01T00:00+14:00: no date to show it with, a 500
        raise InputError([{"field": field, "message": f"{text!r} is outside the years 1 to 9999 once in UTC"}])
    return value


@dataclass(frozen=True, slots=True)
class Funnel:
    period: Period | None
    """The period the numbers cover; None: since the journey first ran."""
    active: int
    """Instances running now (whatever the period)."""
    counts: dict[str, float]
    steps: dict[str, dict[str, float]]
    """Step id -> status -> count (`entered` always there)."""
    channels: dict[str, dict[str, float]]
    by_where: dict[str, dict[str, float]]
    """Where goals happened (`store`, `web`...) -> conversions and revenue."""
    attribution: dict[str, list[dict[str, Any]]]
    """Model (last, first, linear touch) -> credited (where, journey, step, channel, conversions, revenue)."""

    def channel_columns(self) -> list[str]:
        seen = {status for statuses in self.channels.values() for status in statuses}
        return [s for s in CHANNEL_STATUSES if s in seen] + sorted(seen - set(CHANNEL_STATUSES))

    def messages(self, status: str = "sent") -> dict[str, float]:
        """Messages per channel with that status."""
        return {channel: statuses.get(status, 0) for channel, statuses in sorted(self.channels.items())}

    def as_json(self) -> dict[str, Any]:
        """What the journey page's script polls: every number the page shows, under the names its `data-count`
        attributes use."""
        flat: dict[str, float] = {f"count:{name}": value for name, value in self.counts.items()}
        flat["active"] = self.active
        flat.update({f"step:{step}:{name}": value for step, counts in self.steps.items()
                     for name, value in counts.items()})
        flat.update({f"channel:{channel}:{name}": value for channel, counts in self.channels.items()
                     for name, value in counts.items()})
        return {"counts": flat}


async def funnel(runtime: Runtime, journey: Journey, period: Period | None = None) -> Funnel:
    """The journey's numbers over `period` (None: all time, the counters of `GET /v1/journeys/{id}`)."""
    if period is None:  # the totals alone: the report's series would read a week of hourly buckets for nothing
        body = stats.funnel(journey, await runtime.journey_store.counters(journey.id))
    else:
        body = await stats.report(runtime.journey_store, journey, period.start, period.end, None)
    return Funnel(
        period=period,
        active=await runtime.journey_store.active_count(journey.id),
        counts=body["counts"],
        steps={step["id"]: step["counts"] for step in body["steps"]},
        channels=body["channels"],
        by_where=body["by_where"],
        attribution=body["attribution"],
    )
