"""The customer's rights over HTTP: `GET /v1/customers/{id}/export` (access: everything held, one JSON document)
and `DELETE /v1/customers/{id}` (erasure).

An erasure is applied by the worker that owns the customer, in their order (store/erasure.py): the request puts
it among their work and waits for its summary, up to ERASURE_WAIT seconds — `200` with what was erased, or `202`
when no worker took it in time (it is stored and will be applied; a second DELETE answers the same way).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from aiohttp import web

from omnicanal.api.audit import actor_of
from omnicanal.api.customers import customer_id_in, resolve_customer
from omnicanal.api.state import runtime_of
from omnicanal.codec import dumps, loads
from omnicanal.store import schema
from omnicanal.store.inbox import InboxStore
from omnicanal.timestamps import iso

ERASURE_WAIT = 10.0
"""Real seconds a DELETE waits for the worker's summary before answering 202."""
_POLL = 0.02
_TIMES = (schema.CREATED_AT, schema.UPDATED_AT, schema.KNOWN_AT, schema.MERGED_AT)
_BOOKKEEPING = (schema.APPLIED_ENTRY, schema.TIMELINE_TRIMMED)
"""Profile fields about the store's own progress, not about the customer: left out of the export."""


async def delete_customer(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    customer_id = await resolve_customer(runtime, customer_id_in(request))
    erasure_id = secrets.token_hex(16)
    await runtime.queue.append_to(schema.ERASE, [customer_id], {"reply": erasure_id, "actor": actor_of(request)})
    deadline = time.monotonic() + ERASURE_WAIT
    while (summary := await runtime.engine.erasure.summary(erasure_id)) is None and time.monotonic() < deadline:
        await asyncio.sleep(_POLL)
    if summary is None:
        return web.json_response({"customer_id": customer_id, "status": "erasing"}, status=202)
    return web.json_response({"customer_id": customer_id, "status": "erased", "erased": summary})


def _profile(profile: dict[str, Any]) -> dict[str, Any]:
    return {name: iso(float(value)) if name in _TIMES else value for name, value in profile.items()
            if name not in _BOOKKEEPING}


def _send(member: str, at: float) -> dict[str, Any]:
    """A marketing send counted against the frequency caps (schema.send_member)."""
    message_id, channel, journey = member.split("|", 2)
    return {"message_id": message_id, "channel": channel, "journey": journey, "at": iso(at)}


async def export_customer(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    customer_id = await resolve_customer(runtime, customer_id_in(request))
    held = await runtime.engine.holdings.read(customer_id)
    state = held.state
    document = {
        "customer_id": customer_id,
        "exported_at": iso(runtime.clock.now()),
        "profile": _profile(state["profile"]),
        "attributes": state["attributes"],
        "identities": [{"kind": kind, "value": value} for kind, value in held.identities],
        "merged_ids": held.merged,
        "journeys": list(state["instances"].values()),
        "journey_entries": {journey: iso(at) for journey, at in state["entries"].items()},
        "timeline": await runtime.customers.timeline(customer_id),
        "messages": state["messages"],
        "outbox": [loads(record) for record in held.outbox],
        "inbox": [message for _, message in await InboxStore(runtime.redis, runtime.keys).messages(customer_id)],
        "coupons": [{"code": code, **record} for code, record in held.coupons.items()],
        "marketing_sends": [_send(member, at) for member, at in state["sends"].items()],
        "applied_event_ids": sorted(state["seen"]),
    }
    return web.json_response(document, dumps=dumps)
