"""Controlling journeys and what events started, over HTTP: `POST /v1/journeys/{id}/pause|resume|stop`,
`DELETE /v1/customers/{id}/journeys/{journey_id}`, `POST /v1/events/cancel`.

Each answers 202 once the work is stored in the customers' ordered work (lifecycle.py): it applies in its place
among their events and timers."""

from __future__ import annotations

from aiohttp import web

from omnicanal import lifecycle
from omnicanal.api.audit import audit
from omnicanal.api.customers import customer_id_in
from omnicanal.api.errors import read_json
from omnicanal.api.events import event_id
from omnicanal.api.identifiers import Unresolved, customer_behind
from omnicanal.api.schemas import CancelIn
from omnicanal.api.state import runtime_of
from omnicanal.codec import dumps
from omnicanal.engine.runtime import Runtime
from omnicanal.errors import InputError, NotFound


def _journey_id(runtime: Runtime, request: web.Request) -> str:
    journey_id = request.match_info["journey_id"]
    if journey_id not in runtime.registry.current:
        raise NotFound(f"no journey {journey_id!r}; loaded: {sorted(runtime.registry.current)}")
    return journey_id


async def _customer(runtime: Runtime, given: str, field: str = "customer_id") -> str:
    customer_id = await customer_behind(runtime, given)
    if isinstance(customer_id, Unresolved):
        raise InputError([{"field": field, "message": customer_id.message}])
    return customer_id


async def control_journey(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    journey_id, action = _journey_id(runtime, request), request.match_info["action"]
    journeys, queue = runtime.journey_store, runtime.queue
    if action == "pause":
        count, status = await lifecycle.pause(journeys, journey_id), "paused"
    elif action == "resume":
        count, status = await lifecycle.resume(journeys, queue, journey_id), "running"
    else:
        count, status = await lifecycle.stop(journeys, queue, journey_id), "stopped"
    await audit(request, f"journey.{action}", journey_id, customers=count)
    return web.json_response({"journey": journey_id, "status": status, "customers": count}, status=202)


async def cancel_instance(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    journey_id = _journey_id(runtime, request)
    customer_id = await _customer(runtime, customer_id_in(request))
    await runtime.queue.append_to("drain", [customer_id], {"journey": journey_id, "reason": "cancelled"})
    return web.json_response({"customer_id": customer_id, "journey": journey_id, "status": "cancelling"},
                             status=202)


async def cancel_event(request: web.Request) -> web.Response:
    """What the event with this idempotency key started ends, with no further sends."""
    runtime = runtime_of(request)
    body = CancelIn.model_validate(await read_json(request))
    customer_id = await _customer(runtime, body.customer_id)
    cancelled = event_id(runtime.settings.workspace, customer_id, body.idempotency_key)
    await runtime.queue.append_to("cancel", [customer_id], {"event_id": cancelled})
    return web.json_response({"customer_id": customer_id, "event_id": cancelled, "status": "cancelling"},
                             status=202, dumps=dumps)
