"""`GET /v1/journeys` and `/v1/journeys/{id}`: what is loaded, and how many customers went where."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from omnicanal.api.state import runtime_of
from omnicanal.engine.runtime import Runtime
from omnicanal.errors import NotFound
from omnicanal.journey.model import Journey

JOURNEY_COUNTERS = ("started", "completed", "exited", "converted", "failed")


def _summary(journey: Journey, counters: dict[str, int]) -> dict[str, Any]:
    return {
        "id": journey.id,
        "name": journey.name,
        "version": journey.version,
        "trigger": journey.trigger.event,
        "counts": {name: counters.get(name, 0) for name in JOURNEY_COUNTERS},
    }


async def list_journeys(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    items = [_summary(j, await runtime.journey_store.counters(j.id)) for j in runtime.registry.current.values()]
    return web.json_response({"journeys": sorted(items, key=lambda item: item["id"])})


def _step_counts(journey: Journey, counters: dict[str, int]) -> list[dict[str, Any]]:
    steps = []
    for step in journey.steps:
        prefix = f"step:{step.id}:"
        counts = {name[len(prefix):]: value for name, value in counters.items() if name.startswith(prefix)}
        steps.append({"id": step.id, "kind": step.kind, "line": step.line,
                      "counts": {"entered": 0, **counts}})
    return steps


async def journey_view(runtime: Runtime, journey: Journey) -> dict[str, Any]:
    """What `GET /v1/journeys/{id}` answers: the journey's counters per step and channel, and its running
    instances (the dashboard shows the same numbers)."""
    counters = await runtime.journey_store.counters(journey.id)
    channels: dict[str, dict[str, int]] = {}
    for name, value in counters.items():
        if name.startswith("channel:"):
            _, channel, status = name.split(":", 2)
            channels.setdefault(channel, {})[status] = value
    return {
        **_summary(journey, counters),
        "path": journey.path,
        "active": await runtime.journey_store.active_count(journey.id),
        "events": sorted(journey.events()),
        "steps": _step_counts(journey, counters),
        "channels": channels,
    }


async def get_journey(request: web.Request) -> web.Response:
    runtime: Runtime = runtime_of(request)
    journey = runtime.registry.current.get(request.match_info["journey_id"])
    if journey is None:
        raise NotFound(f"no journey {request.match_info['journey_id']!r}; loaded: {sorted(runtime.registry.current)}")
    return web.json_response(await journey_view(runtime, journey))
