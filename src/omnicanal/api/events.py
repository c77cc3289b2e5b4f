"""`POST /v1/events` and `/v1/events/batch`: validate, store durably, answer 202 with the event id.

The id of an event with an idempotency key is derived from the workspace, customer and key, so a retry gets
the same id; the worker applies an id once (see engine/session.py), so the retry has no second effect.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from omnicanal.api.errors import input_error, read_json
from omnicanal.api.identifiers import Unresolved, customer_behind, customers_behind
from omnicanal.api.schemas import BatchIn, EventIn, storable, within_limits
from omnicanal.api.state import runtime_of
from omnicanal.codec import canonical, dumps
from omnicanal.engine.runtime import Runtime
from omnicanal.errors import Conflict, InputError
from omnicanal.identity import looks_like_address
from omnicanal.journey.core import IDENTIFY
from omnicanal.store.keys import valid_customer_id
from omnicanal.store.work import WorkItem
from omnicanal.timestamps import iso, iso_of

_PROCESS = os.urandom(8).hex()
_SEQUENCE = itertools.count()


def event_id(workspace: str, customer_id: str, idempotency_key: str | None) -> str:
    """Derived from the idempotency key when there is one (and the customer, whatever identifier named them);
    otherwise unique: this process's random 64-bit prefix and a counter (a random id per event would cost a
    system call each)."""
    if idempotency_key is None:
        return f"evt_{_PROCESS}{next(_SEQUENCE):016x}"
    digest = hashlib.sha256(f"{workspace}\x00{customer_id}\x00{idempotency_key}".encode())
    return f"evt_{digest.hexdigest()[:32]}"


def derived_event(runtime: Runtime, customer_id: str, name: str, key: str, properties: dict[str, Any]
                  ) -> dict[str, Any]:
    """An event the API makes of an outside request (a provider's callback, a click), its id derived from `key`
    (what identifies the request): the same request again is applied once."""
    now = runtime.clock.now()
    digest = hashlib.sha256(f"{runtime.settings.workspace}\x00{customer_id}\x00{key}".encode()).hexdigest()[:32]
    return {"id": f"evt_{digest}", "name": name, "customer_id": customer_id, "properties": properties,
            "timestamp": iso(now), "received_at": now}


def to_stored(runtime: Runtime, event: EventIn, customer_id: str) -> dict[str, Any]:
    """The event as the work stream keeps it, for the customer its identifier resolved to."""
    now = runtime.clock.now()
    return {
        "id": event_id(runtime.settings.workspace, customer_id, event.idempotency_key),
        "name": event.name,
        "customer_id": customer_id,
        "properties": event.properties,
        "timestamp": iso_of(event.timestamp) if event.timestamp else iso(now),
        "received_at": now,
    }


def fingerprint(event: EventIn) -> str:
    """What makes a body the same one again: its name, properties whatever the order of their keys, and timestamp
    as it is stored (UTC, to the millisecond) — a retry that serialised the same object in another order is the
    same event, not a conflict."""
    sent = {"name": event.name, "properties": event.properties,
            "timestamp": iso_of(event.timestamp) if event.timestamp else None}
    return hashlib.sha256(canonical(sent)).hexdigest()[:32]


CONFLICT = ("this idempotency_key was sent before with another body (name, properties or timestamp): send a new "
            "key for a new event, or the very same body to retry")


def _event_in(runtime: Runtime, raw: Any, field: str = "") -> EventIn:
    """A body (or an event of a batch, at `field`) as a valid event within the size limits; InputError (or
    pydantic's ValidationError) otherwise."""
    event = EventIn.model_validate(storable(raw, field))
    settings = runtime.settings
    properties = f"{field}.properties" if field else "properties"
    within_limits(event.properties, properties, settings.max_properties_bytes, settings.max_list_items)
    if event.name == IDENTIFY and (problem := _not_an_anonymous_id(event.properties.get("anonymous_id"))):
        raise InputError([{"field": f"{properties}.anonymous_id", "message": problem}])
    return event


def _not_an_anonymous_id(given: Any) -> str | None:
    """What is wrong with an `identify` event's anonymous id, if anything: it names the visitor as their events
    did, by an id (never an address to look up: merges take anonymous visitors only, see store/merge.py)."""
    if given is None:  # an identify that names no visitor merges nothing
        return None
    if not isinstance(given, str) or not valid_customer_id(given):
        return "the visitor's id, as their events were sent with: 1-128 letters, digits or . _ : @ + -"
    if looks_like_address(given):
        return (f"{given!r} is an address, not an anonymous id: send the id the visitor's events were sent with "
                "(only anonymous visitors are merged)")
    return None


async def post_event(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    event = _event_in(runtime, await read_json(request))
    customer_id = await customer_behind(runtime, event.customer_id)
    if isinstance(customer_id, Unresolved):
        raise InputError([{"field": "customer_id", "message": customer_id.message}])
    stored = to_stored(runtime, event, customer_id)
    if event.idempotency_key is not None and not (
        await runtime.idempotency.first_seen([(stored["id"], fingerprint(event))])
    )[0]:
        raise Conflict(CONFLICT, field="idempotency_key")
    await runtime.queue.append([WorkItem.of_event(stored, unique=event.idempotency_key is None)])
    runtime.metrics.events_accepted.inc()
    return web.json_response({"id": stored["id"], "status": "accepted"}, status=202, dumps=dumps)


def _rejected(index: int, errors: list[dict[str, str]]) -> dict[str, Any]:
    return {"index": index, "status": "rejected", "errors": errors}


async def post_batch(request: web.Request) -> web.Response:
    """Each event is validated, resolved and answered on its own: one bad event rejects only itself."""
    runtime = runtime_of(request)
    batch = BatchIn.model_validate(await read_json(request))
    results: list[dict[str, Any]] = []
    valid: dict[int, EventIn] = {}
    for index, raw in enumerate(batch.events):
        try:
            valid[index] = _event_in(runtime, raw, f"events.{index}")
            results.append({})  # answered once its customer is known
        except InputError as exc:
            results.append(_rejected(index, exc.errors))
        except ValidationError as exc:
            results.append(_rejected(index, input_error(exc, prefix=f"events.{index}").errors))
    accepted: list[WorkItem] = []
    customers = await customers_behind(runtime, [event.customer_id for event in valid.values()])
    keyed: dict[int, dict[str, Any]] = {}
    for (index, event), customer_id in zip(valid.items(), customers, strict=True):
        if isinstance(customer_id, Unresolved):
            results[index] = _rejected(index, [{"field": f"events.{index}.customer_id",
                                                "message": customer_id.message}])
            continue
        stored = keyed[index] = to_stored(runtime, event, customer_id)
        results[index] = {"index": index, "status": "accepted", "id": stored["id"]}
    checked = [index for index in keyed if valid[index].idempotency_key is not None]
    fresh = await runtime.idempotency.first_seen([(keyed[i]["id"], fingerprint(valid[i])) for i in checked])
    for index, ok in zip(checked, fresh, strict=True):
        if not ok:
            results[index] = {**_rejected(index, [{"field": f"events.{index}.idempotency_key",
                                                   "message": CONFLICT}]), "status": "conflict"}
            del keyed[index]
    for index, stored in keyed.items():
        accepted.append(WorkItem.of_event(stored, unique=valid[index].idempotency_key is None))
    if accepted:
        await runtime.queue.append(accepted)
        runtime.metrics.events_accepted.inc(len(accepted))
    body = {"accepted": len(accepted), "rejected": len(results) - len(accepted), "results": results}
    return web.json_response(body, status=202 if accepted else 422, dumps=dumps)
