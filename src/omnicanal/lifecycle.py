"""Controlling a journey while it runs: pause, resume, stop, drain — for the API and the command line alike.

Each one acts through the customers' ordered work, so it takes its place among their events and timers: a
paused journey takes no new entries (recorded as skipped) and its instances keep what comes for them (events,
timers) until it is resumed, then apply it in order; a stopped journey is paused and every instance exits; a
drain makes every instance exit and new entries go on.
"""

from __future__ import annotations

from omnicanal.store.journeys import JourneyStore
from omnicanal.store.work import WorkQueue


async def _customers(journeys: JourneyStore, journey_id: str) -> list[str]:
    return [customer_id async for customer_id in journeys.active_customers(journey_id)]


async def pause(journeys: JourneyStore, journey_id: str) -> int:
    """Returns how many customers have an instance that now waits for the resume."""
    await journeys.pause(journey_id, True)
    return await journeys.active_count(journey_id)


async def resume(journeys: JourneyStore, queue: WorkQueue, journey_id: str) -> int:
    """The journey takes entries again; each customer with an instance applies what came meanwhile."""
    await journeys.pause(journey_id, False)
    return await queue.append_to("resume", await _customers(journeys, journey_id), {"journey": journey_id})


async def drain(journeys: JourneyStore, queue: WorkQueue, journey_id: str, reason: str = "drained") -> int:
    """Every running instance exits (with `reason`); returns how many customers were asked."""
    return await queue.append_to("drain", await _customers(journeys, journey_id),
                                 {"journey": journey_id, "reason": reason})


async def stop(journeys: JourneyStore, queue: WorkQueue, journey_id: str) -> int:
    """Paused (no new entries until `resume`), and every running instance exits."""
    await journeys.pause(journey_id, True)
    return await drain(journeys, queue, journey_id, "stopped")
