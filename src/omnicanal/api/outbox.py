"""`GET /v1/outbox`: what the outbox connector recorded instead of sending, a page at a time (filter by customer,
channel and journey; `limit`, at most MAX_PAGE, and `after`, the `next` of the previous page)."""

from __future__ import annotations

from aiohttp import web

from omnicanal.api.query import MAX_POSITION, whole_number
from omnicanal.api.state import runtime_of
from omnicanal.store.outbox import OutboxStore

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def query_number(request: web.Request, name: str, default: int, lowest: int, highest: int = MAX_POSITION) -> int:
    """A query parameter that is a whole number in range; InputError naming it otherwise."""
    text = request.query.get(name)
    return default if text is None else whole_number(text, name, lowest, highest)


async def get_outbox(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    limit = query_number(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    after = query_number(request, "after", 0, 0)
    wanted = {k: v for k in ("customer_id", "channel", "journey") if (v := request.query.get(k))}
    records, last = await OutboxStore(runtime.redis, runtime.keys).page(after, limit, wanted)
    return web.json_response({"messages": records, "next": last})
