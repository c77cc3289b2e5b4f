"""`GET /openapi.json`: the API contract, request bodies generated from the models that validate them."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web

from omnicanal import __version__
from omnicanal.api import audit
from omnicanal.api.broadcasts import BroadcastIn
from omnicanal.api.inbox import CUSTOMER_HEADER, SIGNATURE_HEADER, MarkIn
from omnicanal.api.inbox import DEFAULT_PAGE as INBOX_PAGE
from omnicanal.api.outbox import DEFAULT_PAGE, MAX_PAGE
from omnicanal.api.permissions import PUBLIC, ROUTES
from omnicanal.api.query import MAX_POSITION
from omnicanal.api.schemas import BatchIn, CancelIn, CustomerIn, EventIn
from omnicanal.api.state import ACCESS
from omnicanal.journey.model import JOURNEY_ID_PATTERN
from omnicanal.signing import REASONS
from omnicanal.store.keys import CUSTOMER_ID_PATTERN
from omnicanal.store.schema import INBOX_KEPT

_ERROR = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_JSON = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
_BATCH = {"description": "Each event's result, by index: accepted, rejected (errors) or conflict",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchResult"}}}}
_BATCH_REFUSED = {"description": "Nothing accepted: the body is invalid (Error), or every event is (BatchResult)",
                  "content": {"application/json": {"schema": {"anyOf": [
                      {"$ref": "#/components/schemas/Error"}, {"$ref": "#/components/schemas/BatchResult"}]}}}}
_UNAVAILABLE = {**_ERROR, "description": "The store cannot take requests now: nothing was stored",
                "headers": _RETRY_AFTER}
_FORBIDDEN = {**_ERROR, "description": "The API key lacks the scope this operation needs (named in `scope`)"}
_LIMITED = {**_ERROR, "description": "The API key (on an API without keys: the client address) made more requests "
                                     "this second than OMNICANAL_RATE_LIMIT_PER_KEY",
            "headers": _RETRY_AFTER}


def _operation(summary: str, body: str | None = None, ok: str = "200", more: tuple[str, ...] = (),
               answers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An operation answering `ok`, the common errors, the status codes in `more` (error bodies), and `answers`
    (status code → response, replacing the default one); one with a body also answers 400 (not JSON), 408 (sent
    too slowly), 413 (too large) and 415 (not sent as JSON)."""
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {ok: _JSON, "401": _ERROR, "403": _FORBIDDEN, "422": _ERROR, "429": _LIMITED, "500": _ERROR,
                      "503": _UNAVAILABLE, **{code: _ERROR for code in more}},
    }
    if body:
        operation["responses"].update({"400": _ERROR, "408": _ERROR, "413": _ERROR, "415": _ERROR})
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    operation["responses"].update(answers or {})
    return operation


def _path_id(name: str, pattern: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}]


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_INBOX_CREDENTIALS = [
    _query("customer", {"type": "string", "description": f"the customer's id (or the {CUSTOMER_HEADER} header)"}),
    _query("signature", {"type": "string", "description": "hex HMAC-SHA256 of the id with OMNICANAL_INBOX_SECRET "
                         f"(or the {SIGNATURE_HEADER} header)"}),
]


def _inbox(operation: dict[str, Any]) -> dict[str, Any]:
    """An inbox operation: authorised by the customer's signed id, never by an API key."""
    return {**operation, "security": []}


def _scoped(paths: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each operation that needs a scope (api/permissions.py) with it, as its bearer requirement's scope list."""
    for path, item in paths.items():
        for method, operation in item.items():
            needs = ROUTES.get((method.upper(), path), PUBLIC)
            if needs != PUBLIC:
                operation["security"] = [{"bearer": [needs]}]
    return paths


@cache
def document(secured: bool) -> dict[str, Any]:
    """The document; `secured` when API keys are required (access.py: only then do /v1 operations need a bearer
    key, with the scope each names)."""
    schemas: dict[str, Any] = {}
    for model in (EventIn, BatchIn, CancelIn, CustomerIn, BroadcastIn, MarkIn):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["Error"] = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {
                "field": {"type": "string"}, "message": {"type": "string"}}}},
            "id": {"type": "string", "description": "of an unexpected error (500): the id the server logged it with"},
            "reason": {"enum": list(REASONS), "description": "why a signed request (a key made with `keys create "
                       "--signing`) was refused (401)"},
        },
    }
    schemas["BatchResult"] = {
        "type": "object",
        "required": ["accepted", "rejected", "results"],
        "properties": {
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "results": {"type": "array", "items": {
                "type": "object",
                "required": ["index", "status"],
                "properties": {"index": {"type": "integer"}, "status": {"enum": ["accepted", "rejected", "conflict"]},
                               "id": {"type": "string"}, "errors": schemas["Error"]["properties"]["errors"]},
            }},
        },
    }
    customer, journey = _path_id("customer_id", CUSTOMER_ID_PATTERN), _path_id("journey_id", JOURNEY_ID_PATTERN)
    bearer = {"type": "http", "scheme": "bearer"}
    erase = _operation("Erase everything held about the customer (200: what was erased)", more=("404",))
    erase["responses"]["202"] = {**_JSON, "description": "Stored, not applied yet: no worker took it within 10 s"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "omnicanal", "version": __version__},
        "components": {"schemas": schemas, **({"securitySchemes": {"bearer": bearer}} if secured else {})},
        **({"security": [{"bearer": []}]} if secured else {}),
        "paths": (_scoped if secured else dict)({
            "/v1/events": {"post": _operation("Store one event", "EventIn", ok="202", more=("409",))},
            "/v1/events/batch": {"post": _operation("Store up to 1,000 events", "BatchIn", ok="202",
                                                    answers={"202": _BATCH, "422": _BATCH_REFUSED})},
            "/v1/events/cancel": {"post": _operation(
                "End everything the event with that idempotency key started, with no further sends", "CancelIn",
                ok="202")},
            "/v1/customers/{customer_id}": {
                "parameters": customer,
                "put": _operation("Create or update a profile", "CustomerIn"),
                "get": _operation("Profile and running journeys", more=("404",)),
                "delete": erase,
            },
            "/v1/customers/{customer_id}/export": {
                "parameters": customer,
                "get": _operation("Everything held about the customer, as one document (right of access)",
                                  more=("404",)),
            },
            "/v1/customers/{customer_id}/timeline": {
                "parameters": customer,
                "get": _operation("Every event and message, oldest first", more=("404",)),
            },
            "/v1/customers/{customer_id}/journeys/{journey_id}": {
                "parameters": [*customer, *journey],
                "delete": _operation("End the customer's instance of the journey (exited, reason cancelled)",
                                     ok="202", more=("404",)),
            },
            "/v1/journeys": {"get": _operation("Loaded journeys and their counts")},
            "/v1/journeys/{journey_id}": {
                "parameters": journey,
                "get": _operation("One journey with per-step counts", more=("404",)),
            },
            "/v1/journeys/{journey_id}/stats": {
                "parameters": [*journey, _query("from", {"type": "string", "format": "date-time"}),
                               _query("to", {"type": "string", "format": "date-time"}),
                               _query("bucket", {"type": "string", "enum": ["hour", "day", ""],
                                                 "description": "empty or absent: days beyond two days of range"})],
                "get": _operation("The funnel per step and channel, conversions, attribution, arms, a series",
                                  more=("404",)),
            },
            "/v1/journeys/{journey_id}/{action}": {
                "parameters": [*journey, {"name": "action", "in": "path", "required": True,
                                          "schema": {"type": "string", "enum": ["pause", "resume", "stop"]}}],
                "post": _operation("Pause (no new entries), resume, or stop (every instance exits, no new entry "
                                   "until resume) the journey; 202 with how many customers it reached", ok="202",
                                   more=("404",)),
            },
            "/v1/segments": {"get": _operation("Loaded segments and how many customers each holds")},
            "/v1/segments/{segment_id}": {
                "parameters": _path_id("segment_id", JOURNEY_ID_PATTERN),
                "get": _operation("One segment: its condition, aggregates, size and backfill", more=("404",)),
            },
            "/v1/broadcasts": {
                "post": _operation("Start a journey for an audience: a segment, a condition, or everyone",
                                   "BroadcastIn", ok="201"),
                "get": _operation("The latest broadcasts with their progress, newest first"),
            },
            "/v1/broadcasts/{broadcast_id}": {
                "parameters": _path_id("broadcast_id", r"^[A-Za-z0-9_.:-]{1,200}$"),
                "get": _operation("One broadcast: status, planned, queued, started, skipped by reason, pending",
                                  more=("404",)),
                "delete": _operation("Stop walking the audience (the starts already queued still apply)", ok="202",
                                     more=("404",)),
            },
            "/v1/outbox": {
                "parameters": [*(_query(name, {"type": "string"}) for name in ("customer_id", "channel", "journey")),
                               _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                                                "default": DEFAULT_PAGE}),
                               _query("after", {"type": "integer", "minimum": 0, "maximum": MAX_POSITION,
                                                "description": "the `next` of the previous page"})],
                "get": _operation("Messages the outbox connector recorded, a page at a time"),
            },
            "/v1/inbox": {
                "parameters": [*_INBOX_CREDENTIALS,
                               _query("limit", {"type": "integer", "minimum": 1, "maximum": INBOX_KEPT,
                                                "default": INBOX_PAGE}),
                               _query("before", {"type": "string", "description": "the `next` of the previous page"}),
                               _query("archived", {"type": "boolean", "default": False})],
                "get": _inbox(_operation("A customer's in-app inbox, newest first, and how many are unread",
                                         more=("404",))),
            },
            "/v1/inbox/read": {"parameters": _INBOX_CREDENTIALS,
                               "post": _inbox(_operation("Mark messages read (each becomes a `message.read` event)",
                                                         "MarkIn", more=("404",)))},
            "/v1/inbox/archive": {"parameters": _INBOX_CREDENTIALS,
                                  "post": _inbox(_operation("Archive messages", "MarkIn", more=("404",)))},
            "/v1/inbox/stream": {
                "parameters": [*_INBOX_CREDENTIALS, _query("since", {"type": "integer", "description": "ms since the "
                               "epoch: what arrived after it (a reconnection sends Last-Event-ID instead)"})],
                "get": _inbox({"summary": "The inbox live, as Server-Sent Events (`unread`, `message`, `update`)",
                               "responses": {"200": {"description": "An event stream",
                                                     "content": {"text/event-stream": {}}},
                                             "401": _ERROR, "404": _ERROR, "422": _ERROR}}),
            },
            "/v1/audit": {
                "parameters": [_query("since", {"type": "string", "format": "date-time"}),
                               _query("limit", {"type": "integer", "minimum": 1, "maximum": audit.MAX_PAGE,
                                                "default": audit.DEFAULT_PAGE}),
                               _query("before", {"type": "string", "description": "the `next` of the previous page"})],
                "get": _operation("Admin actions, newest first: who, what, on what, when"),
            },
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": _JSON}}},
            "/readyz": {"get": {"summary": "Readiness", "security": [], "responses": {"200": _JSON, "503": _JSON}}},
        }),
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document(await request.app[ACCESS].required()))
