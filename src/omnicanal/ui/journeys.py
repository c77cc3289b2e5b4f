"""The journey pages: every loaded journey with its numbers; one journey's graph, live counts, channel funnel
and source file."""

from __future__ import annotations

from aiohttp import web

from omnicanal.errors import NotFound
from omnicanal.journey.model import Journey
from omnicanal.ui.funnel import Period, funnel
from omnicanal.ui.graph_svg import draw
from omnicanal.ui.pages import Page
from omnicanal.ui.state import Dashboard

POLL_SECONDS = 3


def _journey(dashboard: Dashboard, request: web.Request) -> Journey:
    journey_id = request.match_info["journey_id"]
    journey = dashboard.runtime.registry.current.get(journey_id)
    if journey is None:
        loaded = ", ".join(sorted(dashboard.runtime.registry.current))
        raise NotFound(f"no journey {journey_id!r} is loaded; loaded: {loaded}")
    return journey


async def journeys_page(request: web.Request, dashboard: Dashboard) -> Page:
    """Each journey with its numbers of the last 24 hours and of all time."""
    runtime = dashboard.runtime
    day = Period.last_day(runtime.clock.now())
    rows = [(journey, await funnel(runtime, journey, day), await funnel(runtime, journey))
            for journey in sorted(runtime.registry.current.values(), key=lambda j: j.id)]
    return Page("journeys.html", {"rows": rows})


async def journey_page(request: web.Request, dashboard: Dashboard) -> Page:
    journey = _journey(dashboard, request)
    period = Period.from_query(request.query.get("from"), request.query.get("to"), dashboard.runtime.clock.now())
    numbers = await funnel(dashboard.runtime, journey, period)
    return Page("journey.html", {
        "journey": journey,
        "drawing": draw(journey),
        "funnel": numbers,
        "query_from": request.query.get("from", ""),
        "query_to": request.query.get("to", ""),
        "poll_seconds": POLL_SECONDS,
    })


async def journey_counts(request: web.Request, dashboard: Dashboard) -> web.Response:
    """The numbers the journey page shows, for its script to refresh them."""
    journey = _journey(dashboard, request)
    period = Period.from_query(request.query.get("from"), request.query.get("to"), dashboard.runtime.clock.now())
    return web.json_response((await funnel(dashboard.runtime, journey, period)).as_json())
