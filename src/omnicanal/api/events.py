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
from omnicanal.api.schemas import BatchIn, EventIn
from omnicanal.api.state import runtime_of
from omnicanal.codec import dumps
from omnicanal.engine.runtime import Runtime
from omnicanal.metrics import EVENTS_ACCEPTED
from omnicanal.store.work import WorkItem
from omnicanal.timestamps import iso

_PROCESS = os.urandom(8).hex()
_SEQUENCE = itertools.count()


def event_id(workspace: str, event: EventIn) -> str:
    """Derived from the idempotency key when there is one; otherwise unique: this process's random 64-bit prefix
    and a counter (a random id per event would cost a system call each)."""
    if event.idempotency_key is None:
        return f"evt_{_PROCESS}{next(_SEQUENCE):016x}"
    digest = hashlib.sha256(f"{workspace}\x00{event.customer_id}\x00{event.idempotency_key}".encode())
    return f"evt_{digest.hexdigest()[:32]}"


def to_stored(runtime: Runtime, event: EventIn) -> dict[str, Any]:
    now = runtime.clock.now()
    return {
        "id": event_id(runtime.settings.workspace, event),
        "name": event.name,
        "customer_id": event.customer_id,
        "properties": event.properties,
        "timestamp": event.timestamp.isoformat() if event.timestamp else iso(now),
        "received_at": now,
    }


async def post_event(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    event = EventIn.model_validate(await read_json(request))
    stored = to_stored(runtime, event)
    await runtime.queue.append([WorkItem.of_event(stored, unique=event.idempotency_key is None)])
    EVENTS_ACCEPTED.inc()
    return web.json_response({"id": stored["id"], "status": "accepted"}, status=202, dumps=dumps)


async def post_batch(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    batch = BatchIn.model_validate(await read_json(request))
    results: list[dict[str, Any]] = []
    accepted: list[WorkItem] = []
    for index, raw in enumerate(batch.events):
        try:
            event = EventIn.model_validate(raw)
        except ValidationError as exc:
            results.append({"index": index, "status": "rejected",
                            "errors": input_error(exc, prefix=f"events.{index}.").errors})
            continue
        stored = to_stored(runtime, event)
        accepted.append(WorkItem.of_event(stored, unique=event.idempotency_key is None))
        results.append({"index": index, "status": "accepted", "id": stored["id"]})
    if accepted:
        await runtime.queue.append(accepted)
        EVENTS_ACCEPTED.inc(len(accepted))
    body = {"accepted": len(accepted), "rejected": len(results) - len(accepted), "results": results}
    return web.json_response(body, status=202 if accepted else 422, dumps=dumps)
