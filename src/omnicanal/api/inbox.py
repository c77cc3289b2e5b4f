"""The in-app inbox over HTTP, for the customer's own app: `GET /v1/inbox` (the messages, newest first),
`POST /v1/inbox/read` and `POST /v1/inbox/archive` (marks), `GET /v1/inbox/stream` (new messages as they arrive,
as Server-Sent Events).

No API key: an app in the customer's hands cannot keep one. The brand's backend signs the customer's id with
OMNICANAL_INBOX_SECRET (`inbox_signature`) and hands the app the signature; the app sends both, in the query
(`customer`, `signature`: all an EventSource can send) or as X-Omnicanal-Customer and X-Omnicanal-Signature. The
workspace is the one whose secret made the signature: with several workspaces, each has its own
(`workspace_inbox_secret`). Browsers may call these routes from any origin (CORS):
the signature is the credential, no cookie is involved.

Reading a message becomes a `message.read` event of the customer (once per message), which journeys can wait
for, use as a `delivered_on` for a fallback, or count. The inbox's times (`created_at`, `read_at`, the stream's
event ids) are real time: the app compares them with its own clock, whatever the journey clock's speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from omnicanal.access import WORKSPACE
from omnicanal.api.errors import read_json
from omnicanal.api.events import derived_event
from omnicanal.api.outbox import query_number
from omnicanal.api.state import deployment_of, runtime_of
from omnicanal.codec import dumps
from omnicanal.config import Settings
from omnicanal.errors import InputError, NotFound, StoreUnavailable, Unauthorized
from omnicanal.policy.choice import INBOX
from omnicanal.signing import same_text
from omnicanal.store.inbox import InboxStore
from omnicanal.store.keys import valid_customer_id
from omnicanal.store.schema import INBOX_KEPT
from omnicanal.timestamps import iso

CUSTOMER_HEADER = "X-Omnicanal-Customer"
SIGNATURE_HEADER = "X-Omnicanal-Signature"
PREFIX = "/v1/inbox"
DEFAULT_PAGE = 20
STREAM_POLL = 1.0
"""Seconds between two looks for new messages on a stream."""
STREAM_PING = 15.0
"""Seconds of silence after which a stream sends a comment, so that proxies keep it open."""
READ = "message.read"
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Max-Age": "600",
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": f"Content-Type, {CUSTOMER_HEADER}, {SIGNATURE_HEADER}, Last-Event-ID"}


def workspace_inbox_secret(settings: Settings) -> str | None:
    """The secret a workspace's customer ids are signed with: OMNICANAL_INBOX_SECRET itself, or, in a process of
    several workspaces (OMNICANAL_WORKSPACES_DIR), one derived from it and the workspace's name. The setting is
    the process's, and each brand's backend must hold the secret it signs with: a shared one would let any brand
    sign for another's customers, and could not say which workspace a signature is for."""
    if settings.inbox_secret is None:
        return None
    secret = settings.inbox_secret.get_secret_value()
    if settings.workspaces_dir is None:
        return secret
    return hmac.new(secret.encode(), f"omnicanal inbox {settings.workspace}".encode(), hashlib.sha256).hexdigest()


def inbox_signature(secret: str, customer_id: str) -> str:
    """What the brand's backend gives a customer's app: the hex HMAC-SHA256 of their id with the inbox secret."""
    return hmac.new(secret.encode(), customer_id.encode(), hashlib.sha256).hexdigest()


def _customer(request: web.Request) -> str:
    """The customer the request proves it acts for; the request's workspace is set to the one that signed."""
    customer = request.query.get("customer") or request.headers.get(CUSTOMER_HEADER)
    signature = request.query.get("signature") or request.headers.get(SIGNATURE_HEADER)
    runtimes = {workspace: secret for workspace, runtime in deployment_of(request).runtimes.items()
                if (secret := workspace_inbox_secret(runtime.settings)) is not None}
    if not runtimes:
        raise NotFound("the inbox API is off here: set OMNICANAL_INBOX_SECRET (messages on channel `inbox` are kept "
                       "meanwhile)")
    if not customer or not signature:
        raise Unauthorized("an inbox is read by its customer: send `customer` and `signature` (the hex HMAC-SHA256 "
                           "of the id with OMNICANAL_INBOX_SECRET, made by your backend) in the query, or as "
                           f"{CUSTOMER_HEADER} and {SIGNATURE_HEADER}")
    if not valid_customer_id(customer):
        raise InputError([{"field": "customer", "message": "not a customer id (letters, digits and ._:@+-, up to "
                                                           "128 characters)"}])
    for workspace, secret in runtimes.items():
        if same_text(signature.lower(), inbox_signature(secret, customer)):
            request[WORKSPACE] = workspace
            return customer
    raise Unauthorized("the signature is not this customer id's: sign the id exactly as sent, with "
                       "OMNICANAL_INBOX_SECRET")


def _store(request: web.Request) -> InboxStore:
    runtime = runtime_of(request)
    return InboxStore(runtime.redis, runtime.keys)


def _shown(message: dict[str, Any]) -> dict[str, Any]:
    """A message as the app gets it: its content and marks, not the engine's bookkeeping (locale, template)."""
    return {name: message.get(name) for name in ("id", "title", "body", "url", "image", "journey", "step",
                                                  "created_at", "read_at", "archived_at")}


async def get_inbox(request: web.Request) -> web.Response:
    """The customer's messages, newest first: those not archived (`archived=true`: only those archived), `limit`
    at a time, `before` the `next` of the previous page; with how many are unread (not archived)."""
    customer_id = _customer(request)
    limit = query_number(request, "limit", DEFAULT_PAGE, 1, INBOX_KEPT)
    archived = request.query.get("archived", "false")
    if archived not in ("true", "false"):
        raise InputError([{"field": "archived", "message": "true (the archived messages) or false (the others)"}])
    messages = [message for _, message in await _store(request).messages(customer_id)]
    unread = sum(1 for message in messages if message["read_at"] is None and message["archived_at"] is None)
    listed = [message for message in messages if (message["archived_at"] is not None) == (archived == "true")]
    if before := request.query.get("before"):
        position = next((i for i, message in enumerate(listed) if message["id"] == before), None)
        if position is None:
            raise InputError([{"field": "before", "message": f"no message {before!r} in this list (the `next` of "
                                                             "a page, while the inbox keeps it)"}])
        listed = listed[position + 1:]
    page = listed[:limit]
    return web.json_response({"customer_id": customer_id, "unread": unread,
                              "messages": [_shown(message) for message in page],
                              "next": page[-1]["id"] if len(listed) > limit else None})


MessageId = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class MarkIn(BaseModel):
    """`POST /v1/inbox/read|archive` body: the messages by id, or all of them."""

    model_config = ConfigDict(extra="forbid")

    ids: list[MessageId] | None = Field(default=None, min_length=1, max_length=INBOX_KEPT)
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> MarkIn:
        if (self.ids is None) == (not self.all):
            raise ValueError('send either "ids": [message ids] or "all": true')
        return self


async def mark_read(request: web.Request) -> web.Response:
    return await _mark(request, "read")


async def mark_archived(request: web.Request) -> web.Response:
    return await _mark(request, "archived")


async def _mark(request: web.Request, mark: str) -> web.Response:
    """Mark messages; answers those newly marked (a message marked before keeps its first time) and the unread
    count. Each message newly read becomes a `message.read` event of the customer."""
    customer_id = _customer(request)
    body = MarkIn.model_validate(await read_json(request))
    store, runtime = _store(request), runtime_of(request)
    kept = {message["id"]: message for _, message in await store.messages(customer_id)}
    ids = list(kept) if body.all else list(dict.fromkeys(body.ids or ()))
    marked = await store.mark(customer_id, ids, mark, iso(time.time()))
    if mark == "read" and marked:
        await runtime.queue.append_events([await _read_event(request, customer_id, kept.get(mid) or {"id": mid})
                                           for mid in marked])  # (one that came after `kept` was read: its id)
    unread = sum(1 for mid, message in kept.items()
                 if message["read_at"] is None and message["archived_at"] is None and mid not in marked)
    return web.json_response({"marked": marked, "unread": unread})


async def _read_event(request: web.Request, customer_id: str, message: dict[str, Any]) -> dict[str, Any]:
    """The message's record says it was read (its status history), and the customer's journeys hear it."""
    runtime = runtime_of(request)
    await runtime.customers.record_status(customer_id, message["id"], "read", runtime.clock.now())
    properties = {"message_id": message["id"], "journey": message.get("journey"), "step": message.get("step"),
                  "channel": INBOX, "status": "read"}
    return derived_event(runtime, customer_id, READ, f"inbox:{message['id']}:read", properties)


async def stream(request: web.Request) -> web.StreamResponse:
    """The inbox live, as Server-Sent Events: `unread` (`{"unread": n}`) at once and whenever it changes;
    `message` for each new message (as GET gives it; its `id`: when it arrived, in ms); `update` for a message
    read or archived elsewhere (another device). A client that reconnects with Last-Event-ID (EventSource does)
    gets the messages that arrived meanwhile; a new one, those after now, or after `since` (ms)."""
    customer_id = _customer(request)
    store, stopping = _store(request), runtime_of(request).stopping
    feed = _Feed(_since(request))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(b"retry: 3000\n\n")
    version, silent = -1, 0.0
    try:
        while True:
            try:
                if (current := await store.version(customer_id)) != version:
                    version = current
                    events = feed.events(await store.messages(customer_id))
                    await response.write("".join(events).encode())
                    silent = 0.0 if events else silent
            except StoreUnavailable:
                return response  # the client reconnects (retry), from its Last-Event-ID
            if silent >= STREAM_PING:
                await response.write(b": ping\n\n")
                silent = 0.0
            with contextlib.suppress(TimeoutError):  # the process stopping ends the stream at once: the
                await asyncio.wait_for(stopping.wait(), STREAM_POLL)  # client reconnects, to another one
            if stopping.is_set():
                return response
            silent += STREAM_POLL
    except (ConnectionResetError, asyncio.CancelledError):
        return response  # the client went away


class _Feed:
    """What one stream told its client: the messages it knows with their marks, and the unread count."""

    def __init__(self, since: int) -> None:
        self._since = since
        self._marks: dict[str, tuple[Any, Any]] = {}
        self._unread: int | None = None

    def events(self, messages: list[tuple[int, dict[str, Any]]]) -> list[str]:
        """The events the inbox as it is now (`messages`, newest first) makes, oldest first. On the first look,
        messages that arrived after `since` are new and the others known; after it, any it did not know is."""
        first, events = self._unread is None, []
        for score, message in reversed(messages):
            marks = (message["read_at"], message["archived_at"])
            known = self._marks.get(message["id"])
            if (known is None and not first) or (first and score > self._since):
                events.append(f"id: {score}\nevent: message\ndata: {dumps(_shown(message))}\n\n")
            elif known is not None and known != marks:
                events.append(f"event: update\ndata: {dumps(_shown(message))}\n\n")
            self._marks[message["id"]] = marks
        unread = sum(1 for _, message in messages if message["read_at"] is None and message["archived_at"] is None)
        if unread != self._unread:
            events.append(f"event: unread\ndata: {dumps({'unread': unread})}\n\n")
            self._unread = unread
        return events


def _since(request: web.Request) -> int:
    given = request.headers.get("Last-Event-ID") or request.query.get("since")
    if given is None:
        return int(time.time() * 1000)
    if not given.isdigit() or len(given) > 16:
        raise InputError([{"field": "since", "message": "milliseconds since the epoch (the `id` of the last event "
                                                        "received)"}])
    return int(given)


async def preflight(request: web.Request) -> web.Response:
    """A browser asking whether it may call an inbox route from another origin: it may (see CORS)."""
    return web.Response(status=204)


async def add_cors(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer of an inbox route, errors included, may be read by a page of any origin."""
    if request.path.startswith(PREFIX):
        response.headers.update(CORS)
