"""What every route needs: one scope, or nothing (PUBLIC). The one table; `create_app` refuses to start with a route
it does not list, so a new route is never open by omission.

    events:write     sending events (`identify` among them), cancelling what an event started
    customers:read   profiles, timelines, the outbox, segments and their sizes: customers' personal data
    customers:write  profile upserts (consents included), ending one customer's journey
    journeys:admin   pausing, resuming and stopping journeys; broadcasts; the audit log
    ui:read          the dashboard, and the journey reads it shows (a key that sees the dashboard sees those)

Public: the probes and metrics, the OpenAPI document, Twilio's callbacks (their signature is checked), tracked links
and unsubscribe pages (their signed token), the in-app inbox (the customer's signed id, api/inbox.py), the
dashboard's login form and static files.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from omnicanal.scopes import Scope

PUBLIC: Literal["public"] = "public"
Needs = Scope | Literal["public"]

ROUTES: dict[tuple[str, str], Needs] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("POST", "/webhooks/twilio/status"): PUBLIC,
    ("POST", "/webhooks/twilio/inbound"): PUBLIC,
    ("GET", "/r/{token}"): PUBLIC,
    ("GET", "/u/{token}"): PUBLIC,
    ("POST", "/u/{token}"): PUBLIC,
    ("GET", "/v1/inbox"): PUBLIC,
    ("POST", "/v1/inbox/read"): PUBLIC,
    ("POST", "/v1/inbox/archive"): PUBLIC,
    ("GET", "/v1/inbox/stream"): PUBLIC,
    ("OPTIONS", "/v1/inbox"): PUBLIC,
    ("OPTIONS", "/v1/inbox/read"): PUBLIC,
    ("OPTIONS", "/v1/inbox/archive"): PUBLIC,
    ("OPTIONS", "/v1/inbox/stream"): PUBLIC,
    ("POST", "/v1/events"): Scope.EVENTS_WRITE,
    ("POST", "/v1/events/batch"): Scope.EVENTS_WRITE,
    ("POST", "/v1/events/cancel"): Scope.EVENTS_WRITE,
    ("GET", "/v1/customers/{customer_id}"): Scope.CUSTOMERS_READ,
    ("GET", "/v1/customers/{customer_id}/timeline"): Scope.CUSTOMERS_READ,
    ("GET", "/v1/customers/{customer_id}/export"): Scope.CUSTOMERS_READ,
    ("GET", "/v1/outbox"): Scope.CUSTOMERS_READ,
    ("GET", "/v1/segments"): Scope.CUSTOMERS_READ,
    ("GET", "/v1/segments/{segment_id}"): Scope.CUSTOMERS_READ,
    ("PUT", "/v1/customers/{customer_id}"): Scope.CUSTOMERS_WRITE,
    ("DELETE", "/v1/customers/{customer_id}"): Scope.CUSTOMERS_WRITE,
    ("DELETE", "/v1/customers/{customer_id}/journeys/{journey_id}"): Scope.CUSTOMERS_WRITE,
    ("POST", "/v1/journeys/{journey_id}/{action}"): Scope.JOURNEYS_ADMIN,
    ("GET", "/v1/audit"): Scope.JOURNEYS_ADMIN,
    ("POST", "/v1/broadcasts"): Scope.JOURNEYS_ADMIN,
    ("GET", "/v1/broadcasts"): Scope.JOURNEYS_ADMIN,
    ("GET", "/v1/broadcasts/{broadcast_id}"): Scope.JOURNEYS_ADMIN,
    ("DELETE", "/v1/broadcasts/{broadcast_id}"): Scope.JOURNEYS_ADMIN,
    ("GET", "/v1/journeys"): Scope.UI_READ,
    ("GET", "/v1/journeys/{journey_id}"): Scope.UI_READ,
    ("GET", "/v1/journeys/{journey_id}/stats"): Scope.UI_READ,
    ("GET", "/ui"): Scope.UI_READ,
    ("GET", "/ui/journeys"): Scope.UI_READ,
    ("GET", "/ui/journeys/{journey_id}"): Scope.UI_READ,
    ("GET", "/ui/journeys/{journey_id}/counts.json"): Scope.UI_READ,
    ("GET", "/ui/customers"): Scope.UI_READ,
    ("GET", "/ui/customers/{customer_id}"): Scope.UI_READ,
    ("GET", "/ui/operations"): Scope.UI_READ,
    ("GET", "/ui/preview"): Scope.UI_READ,
    ("GET", "/ui/login"): PUBLIC,
    ("POST", "/ui/login"): PUBLIC,
    ("POST", "/ui/logout"): PUBLIC,
    ("GET", "/ui/static"): PUBLIC,
}
"""(method, route as registered) -> what it needs. HEAD is GET's."""


def _entry(method: str, route: web.AbstractRoute) -> tuple[str, str] | None:
    if route.resource is None:
        return None
    return ("GET" if method == "HEAD" else method, route.resource.canonical)


def needs(request: web.Request) -> Needs | None:
    """What the request's route needs; None when no route matched (404, 405): a key, and no particular scope —
    except a method a public path does not have (`TRACE /healthz`), answered 405 with its `Allow` to anyone:
    the path is public, so that tells nothing."""
    entry = _entry(request.method, request.match_info.route)
    if entry is not None:
        return ROUTES[entry]
    if isinstance(request.match_info.http_exception, web.HTTPMethodNotAllowed) and request.path in _PUBLIC_PATHS:
        return PUBLIC
    return None


_PUBLIC_PATHS = frozenset(path for (_, path), needed in ROUTES.items() if needed == PUBLIC and "{" not in path)


def unlisted(router: web.UrlDispatcher) -> list[str]:
    """The routes of `router` the table does not list, as `METHOD path`."""
    missing = []
    for route in router.routes():
        entry = _entry(route.method, route)
        if entry is not None and entry not in ROUTES:
            missing.append(" ".join(entry))
    return missing
