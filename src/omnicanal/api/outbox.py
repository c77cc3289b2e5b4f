"""`GET /v1/outbox`: what the outbox connector recorded instead of sending (filter by customer and channel)."""

from __future__ import annotations

from aiohttp import web

from omnicanal.api.state import runtime_of
from omnicanal.store.outbox import OutboxStore


async def get_outbox(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    wanted = {k: v for k in ("customer_id", "channel", "journey") if (v := request.query.get(k))}
    records = [r for r in await OutboxStore(runtime.redis, runtime.keys).records()
               if all(r.get(k) == v for k, v in wanted.items())]
    return web.json_response({"messages": records})
