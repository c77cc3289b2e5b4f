"""The aiohttp application: routes, middlewares, and the runtime it serves."""

from __future__ import annotations

import hmac

from aiohttp import web

from omnicanal.api import (
    control,
    customers,
    events,
    health,
    journeys,
    links,
    openapi,
    outbox,
    privacy,
    twilio,
    unsubscribe,
)
from omnicanal.api.errors import Handler, error_response, errors_middleware
from omnicanal.api.state import RUNTIME
from omnicanal.engine.runtime import Role, Runtime
from omnicanal.ui import routes as dashboard

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/webhooks/twilio/status",
                          "/webhooks/twilio/inbound"})
"""Paths without an API key: probes, and provider callbacks (those carry the provider's own signature)."""
PUBLIC_PREFIXES = ("/r/", "/u/")
"""Links in messages, followed by customers: their signed token is their authority (links.py)."""


def _auth_middleware(keys: list[str]) -> web.middleware:  # type: ignore[valid-type]
    """When API keys are configured, /v1 requests must carry one (Bearer token or X-API-Key); the dashboard
    checks the key itself (it also takes its session cookie)."""
    encoded = [key.encode() for key in keys]

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES) or dashboard.serves(request.path):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else request.headers.get("X-API-Key", "")
        # Header bytes that are not UTF-8 arrive as surrogates: encoded back as they came, they match no key.
        if not any(hmac.compare_digest(given.encode("utf-8", "surrogateescape"), key) for key in encoded):
            return error_response(401, "unauthorized", "send a valid API key: Authorization: Bearer <key>")
        return await handler(request)

    return auth


def create_app(runtime: Runtime) -> web.Application:
    middlewares = [errors_middleware]
    if runtime.settings.api_keys:
        middlewares.append(_auth_middleware(runtime.settings.api_keys))
    app = web.Application(middlewares=middlewares, client_max_size=runtime.settings.max_body_bytes)
    app[RUNTIME] = runtime
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    if runtime.role is Role.WORKER:
        return app  # a worker serves its probes only
    app.router.add_post("/v1/events", events.post_event)
    app.router.add_post("/v1/events/batch", events.post_batch)
    app.router.add_put("/v1/customers/{customer_id}", customers.put_customer)
    app.router.add_get("/v1/customers/{customer_id}", customers.get_customer)
    app.router.add_get("/v1/customers/{customer_id}/timeline", customers.get_timeline)
    app.router.add_delete("/v1/customers/{customer_id}", privacy.delete_customer)
    app.router.add_get("/v1/customers/{customer_id}/export", privacy.export_customer)
    app.router.add_get("/v1/journeys", journeys.list_journeys)
    app.router.add_get("/v1/journeys/{journey_id}", journeys.get_journey)
    app.router.add_get("/v1/journeys/{journey_id}/stats", journeys.get_stats)
    app.router.add_post("/v1/journeys/{journey_id}/{action:pause|resume|stop}", control.control_journey)
    app.router.add_delete("/v1/customers/{customer_id}/journeys/{journey_id}", control.cancel_instance)
    app.router.add_post("/v1/events/cancel", control.cancel_event)
    app.router.add_get("/v1/outbox", outbox.get_outbox)
    app.router.add_post("/webhooks/twilio/status", twilio.status_callback)
    app.router.add_post("/webhooks/twilio/inbound", twilio.inbound)
    app.router.add_get("/openapi.json", openapi.openapi)
    app.router.add_get("/r/{token}", links.follow)
    app.router.add_get("/u/{token}", unsubscribe.ask)
    app.router.add_post("/u/{token}", unsubscribe.confirm)
    dashboard.setup(app, runtime)
    return app
