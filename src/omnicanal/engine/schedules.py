"""Firing scheduled journeys: each occurrence of a journey's cron schedule becomes one broadcast.

Every worker process runs this loop. Occurrences are computed on the journey clock (engine/clock.py, which may
run faster than real time) with APScheduler's `CronTrigger.get_next_fire_time` (journey/schedules.py), not
with APScheduler's scheduler, which sleeps on the wall clock. An occurrence is fired as a broadcast of id
`s.<journey>.<occurrence epoch seconds>`, created once (store/broadcasts.py): however many processes see it
due, and however often (a crash before the mark moved), it starts the journey once for its audience; the
broadcast walker (engine/broadcasts.py) then walks the audience in batches, resuming after a crash.

Whether the audience's segment exists is checked when the journeys load (journey/loader.py, with the segments
loaded beside them), and again here when an occurrence fires: an occurrence whose segment is not defined (any
more) is not fired, and the reason is logged.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Collection
from typing import Any

import structlog

from omnicanal.broadcasting import new_broadcast
from omnicanal.engine.clock import Clock
from omnicanal.engine.registry import JourneyRegistry
from omnicanal.errors import InputError
from omnicanal.eventloop import every
from omnicanal.journey.model import Journey
from omnicanal.journey.schedules import EVERYONE, cron_of, due, local_time
from omnicanal.store.broadcasts import BroadcastStore
from omnicanal.store.schedules import ScheduleMarks
from omnicanal.timestamps import iso

log = structlog.get_logger("omnicanal.schedules")

SCHEDULE_ORIGIN = "schedule"
"""The `origin` of the broadcasts a schedule fires."""
LOOKS_LATE = 4
"""Looks an occurrence may wait for while processes run (a slow look, a fast clock) before it counts as missed."""


def occurrence_id(journey_id: str, occurrence: float) -> str:
    """The broadcast id of one occurrence: the same in every process, so it is created once."""
    return f"s.{journey_id}.{int(occurrence)}"


def audience_of(journey: Journey) -> dict[str, Any]:
    """The broadcast audience of a scheduled journey: `everyone`, or the segment named."""
    audience = journey.trigger.audience
    return {"everyone": True} if audience == EVERYONE else {"segment": audience}


class ScheduleRunner:
    def __init__(self, registry: JourneyRegistry, segments: Callable[[], Collection[str]], store: BroadcastStore,
                 marks: ScheduleMarks, clock: Clock, grace: float, poll: float = 0.25) -> None:
        self.registry = registry
        self.segments = segments
        self.store = store
        self.marks = marks
        self.clock = clock
        self.grace = grace
        self.poll = poll

    async def run(self, stopping: asyncio.Event) -> None:
        """Until the process stops: fire the occurrences that came due."""
        await every(self.poll, stopping, self.look, "schedule_failed")

    @property
    def looking(self) -> float:
        """Journey seconds a few looks last (a clock 36000 times faster than real time makes 0.25 s 2.5 h; a
        manual clock has no speed): a mark that recent means processes were looking, and nothing was missed."""
        speed = self.clock.speed if math.isfinite(self.clock.speed) else 0.0
        return speed * self.poll * LOOKS_LATE

    async def look(self) -> None:
        """Fire every current scheduled journey's due occurrences, then mark them handled."""
        now = self.clock.now()
        for journey in list(self.registry.current.values()):
            trigger = journey.trigger
            if trigger.schedule is None:
                continue
            handled = await self.marks.handled(journey.id)
            found = due(cron_of(trigger.schedule, trigger.timezone or "UTC"), handled, now, self.grace,
                        looking=self.looking)
            if found.skipped:
                log.warning("schedule_occurrences_skipped", journey=journey.id, after=iso(handled or now),
                            before=iso(now - self.grace), reason="older than OMNICANAL_SCHEDULE_GRACE")
            for occurrence in found.fire:
                await self._fire(journey, occurrence, now)
            await self.marks.mark(journey.id, now)

    async def _fire(self, journey: Journey, occurrence: float, now: float) -> None:
        """One occurrence as a broadcast; with `timezone: customer`, its members each start at the schedule's
        wall-clock time on their own clock (`data.occurrence` is then that wall-clock time, without offset)."""
        local = local_time(journey.trigger.timezone or "UTC", occurrence)
        try:
            broadcast = new_broadcast(journey.id, self.registry.current, audience_of(journey), self.segments(), now,
                                      at=occurrence, rate=journey.trigger.rate or 0.0,
                                      data={"occurrence": local or iso(occurrence)}, origin=SCHEDULE_ORIGIN,
                                      broadcast_id=occurrence_id(journey.id, occurrence), local_time=local or "")
        except InputError as exc:
            log.error("schedule_not_fired", journey=journey.id, occurrence=iso(occurrence), error=str(exc))
            return
        if await self.store.create(broadcast):
            log.info("schedule_fired", journey=journey.id, occurrence=iso(occurrence), broadcast=broadcast.id)
