"""The audit log over HTTP: `GET /v1/audit` reads it, newest first, and `audit` records an action of the
request's caller (store/audit.py says what is recorded)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from omnicanal.access import ANONYMOUS, CALLER
from omnicanal.api.journeys import query_moment
from omnicanal.api.outbox import query_number
from omnicanal.api.state import runtime_of
from omnicanal.errors import InputError
from omnicanal.store.audit import AuditLog
from omnicanal.timestamps import iso

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def actor_of(request: web.Request) -> str:
    """Who made the request, as the audit log names them: the key's id, `static` or `anonymous`."""
    caller = request.get(CALLER)
    return caller.actor if caller is not None else ANONYMOUS


async def audit(request: web.Request, action: str, target: str, **details: Any) -> None:
    """Record that the request's caller did `action` on `target` (call it once the action is done)."""
    runtime = runtime_of(request)
    await AuditLog(runtime.redis, runtime.keys).record(actor_of(request), action, target, details)


async def get_audit(request: web.Request) -> web.Response:
    """`?since=ISO&limit=N&before=ID`: entries newest first; `next` is the `before` of the following page."""
    runtime = runtime_of(request)
    limit = query_number(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    start = query_moment(request, "since", 0.0) if "since" in request.query else None
    before = request.query.get("before")
    if before is not None and not _entry_id(before):
        raise InputError([{"field": "before", "message": f"{before!r}: the `next` of the previous page"}])
    entries = await AuditLog(runtime.redis, runtime.keys).read(limit, start, before)
    return web.json_response({"entries": [{**entry, "at": iso(entry["at"])} for entry in entries],
                              "next": entries[-1]["id"] if len(entries) == limit else None})


def _entry_id(text: str) -> bool:
    """Whether `text` is a stream entry id Redis accepts: two whole numbers of at most 64 bits."""
    milliseconds, _, sequence = text.partition("-")
    return all(part.isascii() and part.isdigit() and int(part) < 2**64 for part in (milliseconds, sequence))
