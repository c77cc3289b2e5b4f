"""The numbers of a journey's page — overall counts, per step, per channel — from one place.

They are the journey's counters, the numbers `GET /v1/journeys/{id}` answers: totals since the journey first ran.
A time range (`from`/`to`) is asked for here and nowhere else, so that per-period statistics, once the store
keeps counters by time bucket, reach every view of the dashboard through this one function; until then the
answer says which period it covers (`period` None: all time) and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omnicanal.api.journeys import journey_view
from omnicanal.engine.runtime import Runtime
from omnicanal.errors import InputError
from omnicanal.journey.model import Journey

CHANNEL_STATUSES = ("sent", "queued", "delivered", "read", "clicked", "failed", "unknown", "held", "suppressed")
"""The order of a channel's funnel columns; statuses not listed follow, alphabetically."""


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime | None
    end: datetime | None

    @classmethod
    def from_query(cls, start: str | None, end: str | None) -> Period | None:
        """The `from` and `to` of a request (ISO 8601 or an HTML datetime-local, read as UTC); None when
        neither is given. InputError names a value that is not a moment."""
        if not start and not end:
            return None
        return cls(_moment("from", start), _moment("to", end))


def _moment(field: str, text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError([{"field": field, "message": f"{text!r} is not a date and time (2026-11-23T10:00)"}]
                         ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Funnel:
    counts: dict[str, int]
    active: int
    steps: dict[str, dict[str, int]]
    """Step id -> counter -> value (`entered` always there)."""
    channels: dict[str, dict[str, int]]
    period: Period | None
    """The period the numbers cover; None: since the journey first ran."""

    def channel_columns(self) -> list[str]:
        seen = {status for statuses in self.channels.values() for status in statuses}
        return [s for s in CHANNEL_STATUSES if s in seen] + sorted(seen - set(CHANNEL_STATUSES))

    def as_json(self) -> dict[str, Any]:
        """What the journey page's script polls: every number the page shows, under the names its
        `data-count` attributes use."""
        flat = {f"count:{name}": value for name, value in self.counts.items()}
        flat["active"] = self.active
        flat.update({f"step:{step}:{name}": value for step, counts in self.steps.items()
                     for name, value in counts.items()})
        flat.update({f"channel:{channel}:{name}": value for channel, counts in self.channels.items()
                     for name, value in counts.items()})
        return {"counts": flat}


async def funnel(runtime: Runtime, journey: Journey, period: Period | None = None) -> Funnel:
    """The journey's numbers. The counters hold totals only: whatever `period` asks, they cover all time, and
    the answer's `period` is None."""
    view = await journey_view(runtime, journey)
    return Funnel(
        counts=view["counts"],
        active=view["active"],
        steps={step["id"]: step["counts"] for step in view["steps"]},
        channels=view["channels"],
        period=None,
    )
