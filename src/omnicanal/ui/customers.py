"""The customer pages: search by id, e-mail, phone or push token; one customer's profile, consents, masked
addresses, running journeys and timeline (a page of the newest entries, with a link to older ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from omnicanal.api.customers import resolve_customer
from omnicanal.api.query import MAX_POSITION, whole_number
from omnicanal.engine.runtime import Runtime
from omnicanal.errors import JourneyError, NotFound
from omnicanal.journey.graph import describe
from omnicanal.journey.state import Instance
from omnicanal.store.keys import valid_customer_id
from omnicanal.store.merge import MERGED_INTO
from omnicanal.ui.masking import mask_address
from omnicanal.ui.pages import Page
from omnicanal.ui.state import Dashboard

TIMELINE_PAGE = 50
"""Timeline entries per page: the newest first shown, older ones a link away."""


def customer_url(customer_id: str) -> str:
    return "/ui/customers/" + quote(customer_id, safe="")


def _identifier(text: str) -> str:
    """The search text as an identifier: spaces inside a phone number (`06 12 34 56 78`) dropped."""
    given = text.strip()
    return given if valid_customer_id(given) else given.replace(" ", "")


async def customers_page(request: web.Request, dashboard: Dashboard) -> Page:
    """The search form; a search that finds the customer goes to their page."""
    query = request.query.get("q", "").strip()
    if not query:
        return Page("customers.html", {"query": "", "problem": None})
    given = _identifier(query)
    if not valid_customer_id(given):
        problem = "not an id, e-mail, phone number or push token (letters, digits and . _ : @ + - only)"
        return Page("customers.html", {"query": query, "problem": problem}, 422)
    try:
        customer_id = await resolve_customer(dashboard.runtime, given)
    except NotFound as exc:
        return Page("customers.html", {"query": query, "problem": str(exc)}, 404)
    raise web.HTTPSeeOther(customer_url(customer_id))


@dataclass(frozen=True, slots=True)
class Running:
    """A running journey instance as the customer page shows it."""

    journey: str
    version: str
    step: str
    doing: str
    status: str
    started_at: float
    due: float | None
    """Journey time its wait ends (a timer), None when it waits for an event only or is not waiting."""
    vars: dict[str, Any]


async def _running(runtime: Runtime, raw: dict[str, Any]) -> Running:
    instance = Instance.from_dict(raw)
    try:
        journey = await runtime.registry.version(instance.journey, instance.version)
    except JourneyError:
        journey = None
    step = journey.steps[instance.position] if journey and instance.position < len(journey.steps) else None
    waiting = instance.waiting
    return Running(
        journey=instance.journey, version=instance.version, step=step.id if step else "?",
        doing=describe(step) if step else "", status=f"waiting ({waiting.kind})" if waiting else "running",
        started_at=instance.started_at, due=waiting.until if waiting else None, vars=instance.vars,
    )


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    """A timeline entry with the address a message went to masked."""
    if entry.get("kind") == "message" and "to" in entry:
        return {**entry, "to": mask_address(str(entry.get("channel", "")), entry["to"])}
    return entry


def _position(text: str | None) -> int | None:
    return None if text is None else whole_number(text, "before", 0, MAX_POSITION)


async def customer_page(request: web.Request, dashboard: Dashboard) -> Page:
    runtime = dashboard.runtime
    given = request.match_info["customer_id"]
    if not valid_customer_id(given):
        raise NotFound(f"no customer {given!r}: ids are 1-128 letters, digits or . _ : @ + -")
    profile, attributes, instances = await runtime.customers.profile(given)
    if profile.get(MERGED_INTO) or not (profile or attributes):  # an anonymous visitor who identified, an address
        raise web.HTTPSeeOther(customer_url(await resolve_customer(runtime, given)))
    before = _position(request.query.get("before"))
    page = await dashboard.timelines.page(given, TIMELINE_PAGE, before)
    return Page("customer.html", {
        "customer_id": given,
        "profile": profile,
        "attributes": attributes,
        "addresses": {channel: mask_address(channel, value) for channel, value in profile.get("addresses", {}).items()},
        "running": [await _running(runtime, raw) for raw in instances],
        "now": runtime.clock.now(),
        "timeline": page,
        "entries": [_shown(entry) for entry in page.entries],
        "customer_url": customer_url(given),
    })
