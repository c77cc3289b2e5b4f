"""`GET /v1/journeys` and `/v1/journeys/{id}`: what is loaded, and how many customers went where."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from omnicanal.api.state import runtime_of
from omnicanal.engine.runtime import Runtime
from omnicanal.errors import InputError, NotFound
from omnicanal.journey.model import Journey
from omnicanal.stats import report
from omnicanal.timestamps import iso, moment

JOURNEY_COUNTERS = ("started", "completed", "exited", "converted", "failed")


def _summary(journey: Journey, counters: dict[str, float]) -> dict[str, Any]:
    return {
        "id": journey.id,
        "name": journey.name,
        "version": journey.version,
        "trigger": journey.trigger.event or journey.trigger.label,
        "counts": {name: counters.get(name, 0) for name in JOURNEY_COUNTERS},
    }


async def list_journeys(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    items = [_summary(j, await runtime.journey_store.counters(j.id)) for j in runtime.registry.current.values()]
    return web.json_response({"journeys": sorted(items, key=lambda item: item["id"])})


def _step_counts(journey: Journey, counters: dict[str, float]) -> list[dict[str, Any]]:
    """Each step's counts by status (the finer counters, by channel, arm or reason, are the stats endpoint's)."""
    steps = []
    for step in journey.steps:
        prefix = f"step:{step.id}:"
        counts = {name[len(prefix):]: value for name, value in counters.items()
                  if name.startswith(prefix) and ":" not in name[len(prefix):]}
        steps.append({"id": step.id, "kind": step.kind, "line": step.line,
                      "counts": {"entered": 0, **counts}})
    return steps


async def get_journey(request: web.Request) -> web.Response:
    runtime: Runtime = runtime_of(request)
    journey = runtime.registry.current.get(request.match_info["journey_id"])
    if journey is None:
        raise NotFound(f"no journey {request.match_info['journey_id']!r}; loaded: {sorted(runtime.registry.current)}")
    counters = await runtime.journey_store.counters(journey.id)
    channels: dict[str, dict[str, float]] = {}
    for name, value in counters.items():
        if name.startswith("channel:"):
            _, channel, status = name.split(":", 2)
            channels.setdefault(channel, {})[status] = value
    return web.json_response({
        **_summary(journey, counters),
        "path": journey.path,
        "active": await runtime.journey_store.active_count(journey.id),
        "events": sorted(journey.events()),
        "steps": _step_counts(journey, counters),
        "channels": channels,
    })


def query_moment(request: web.Request, name: str, default: float) -> float:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        return moment(text)
    except ValueError as exc:
        raise InputError([{"field": name, "message": str(exc)}]) from None


async def get_stats(request: web.Request) -> web.Response:
    """`?from=&to=&bucket=hour|day`: the funnel per step and channel over the range (all time without `from`),
    conversions and revenue by where and by attribution model, experiment arms, and a series per bucket."""
    runtime: Runtime = runtime_of(request)
    journey = runtime.registry.current.get(request.match_info["journey_id"])
    if journey is None:
        raise NotFound(f"no journey {request.match_info['journey_id']!r}; loaded: {sorted(runtime.registry.current)}")
    end = query_moment(request, "to", runtime.clock.now())
    start = query_moment(request, "from", 0.0) if "from" in request.query else None
    body = await report(runtime.journey_store, journey, start, end, request.query.get("bucket"))
    body.update({"from": iso(start) if start is not None else None, "to": iso(end)})
    body["series"] = [{**point, "at": iso(point["at"])} for point in body["series"]]
    return web.json_response(body)
