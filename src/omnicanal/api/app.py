"""The aiohttp application: routes, middlewares, and the runtimes it serves (one per workspace)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from omnicanal.access import CALLER, WORKSPACE, Caller, KeyRing, KeyRings, client_address, presented_key
from omnicanal.api import (
    audit,
    broadcasts,
    control,
    customers,
    events,
    health,
    inbox,
    journeys,
    links,
    openapi,
    outbox,
    permissions,
    privacy,
    segments,
    twilio,
    unsubscribe,
)
from omnicanal.api.errors import Handler, errors_middleware
from omnicanal.api.signatures import check_signed
from omnicanal.api.state import ACCESS, DEPLOYMENT
from omnicanal.engine.deployment import Deployment
from omnicanal.engine.runtime import Role, Runtime
from omnicanal.errors import Forbidden, RateLimited, Unauthorized
from omnicanal.outbound import Network
from omnicanal.store.apikeys import ApiKeyStore
from omnicanal.store.key_rates import KeyRates
from omnicanal.store.replays import SignatureMemory
from omnicanal.ui import routes as dashboard


def _access_middleware(rings: KeyRings, deployment: Deployment) -> web.middleware:  # type: ignore[valid-type]
    """Every route needs what api/permissions.py says: a key with that scope, or nothing (PUBLIC) — and a key that
    signs its requests, a signature that holds (api/signatures.py). A route that matched
    nothing (404, 405) needs a key, so probing paths tells a stranger nothing. The dashboard's pages check the key
    themselves (they also take a session cookie). The caller and its workspace — the only one its handlers reach
    (state.runtime_of) — are kept on the request."""
    settings = deployment.settings
    limit, proxies = settings.rate_limit_per_key, settings.proxies
    runtimes = deployment.runtimes.items()
    rates = {workspace: KeyRates(runtime.redis, runtime.keys) for workspace, runtime in runtimes}
    seen = {workspace: SignatureMemory(runtime.redis, runtime.keys) for workspace, runtime in runtimes}

    @web.middleware
    async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
        needs = permissions.needs(request)
        if needs == permissions.PUBLIC or dashboard.serves(request.path):
            return await handler(request)
        caller = await rings.caller(presented_key(request))
        if caller is None:
            raise Unauthorized("send a valid API key: Authorization: Bearer <key>")
        if caller.signing_secret is not None:
            await check_signed(request, caller.actor, caller.signing_secret, seen[caller.workspace])
        if needs is not None and not caller.allows(needs):
            raise Forbidden(needs)
        if limit:
            await _count(request, caller, rates[caller.workspace], limit, proxies)
        request[CALLER], request[WORKSPACE] = caller, caller.workspace
        return await handler(request)

    return access


async def _count(request: web.Request, caller: Caller, rates: KeyRates, limit: int, proxies: Sequence[Network]) -> None:
    """One more request of the caller's key — or, on an API without keys, of its client address — this second;
    RateLimited over `limit`."""
    if caller.fingerprint is not None:
        subject, who = caller.fingerprint, "this API key"
    else:
        address = client_address(request, proxies)
        subject, who = f"address:{address}", f"the client address {address}"
    if wait := await rates.wait_for(subject, limit):
        raise RateLimited(limit, wait, who)


def _key_rings(deployment: Deployment) -> KeyRings:
    """One ring per workspace; static keys in the home workspace's only (access.KeyRings)."""
    settings, several = deployment.settings, deployment.settings.workspaces_dir is not None
    return KeyRings({workspace: KeyRing(settings.api_keys if workspace == settings.workspace else [], workspace,
                                        ApiKeyStore(runtime.redis, runtime.keys), always_required=several)
                     for workspace, runtime in deployment.runtimes.items()}, settings.workspace)


def create_app(served: Runtime | Deployment) -> web.Application:
    """The app serving one runtime, or every runtime of a deployment (each request its key's workspace)."""
    deployment = served if isinstance(served, Deployment) else Deployment.of(served)
    settings = deployment.settings
    rings = _key_rings(deployment)
    middlewares = [errors_middleware, _access_middleware(rings, deployment)]
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    app[DEPLOYMENT], app[ACCESS] = deployment, rings
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    if deployment.role is Role.WORKER:
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
    app.router.add_get("/v1/segments", segments.list_segments)
    app.router.add_get("/v1/segments/{segment_id}", segments.get_segment)
    app.router.add_post("/v1/broadcasts", broadcasts.post_broadcast)
    app.router.add_get("/v1/broadcasts", broadcasts.list_broadcasts)
    app.router.add_get("/v1/broadcasts/{broadcast_id}", broadcasts.get_broadcast)
    app.router.add_delete("/v1/broadcasts/{broadcast_id}", broadcasts.cancel_broadcast)
    app.router.add_get("/v1/outbox", outbox.get_outbox)
    app.router.add_get("/v1/inbox", inbox.get_inbox)
    app.router.add_post("/v1/inbox/read", inbox.mark_read)
    app.router.add_post("/v1/inbox/archive", inbox.mark_archived)
    app.router.add_get("/v1/inbox/stream", inbox.stream)
    for path in ("", "/read", "/archive", "/stream"):
        app.router.add_route("OPTIONS", inbox.PREFIX + path, inbox.preflight)
    app.on_response_prepare.append(inbox.add_cors)
    app.router.add_get("/v1/audit", audit.get_audit)
    app.router.add_post("/webhooks/twilio/status", twilio.status_callback)
    app.router.add_post("/webhooks/twilio/inbound", twilio.inbound)
    app.router.add_get("/openapi.json", openapi.openapi)
    app.router.add_get("/r/{token}", links.follow)
    app.router.add_get("/u/{token}", unsubscribe.ask)
    app.router.add_post("/u/{token}", unsubscribe.confirm)
    dashboard.setup(app, deployment, rings)
    if missing := permissions.unlisted(app.router):
        raise RuntimeError(f"routes without an entry in api/permissions.py ROUTES (a scope, or PUBLIC): {missing}")
    return app
