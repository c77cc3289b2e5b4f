"""`GET /openapi.json`: the API contract, request bodies generated from the models that validate them."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web

from omnicanal import __version__
from omnicanal.api.schemas import BatchIn, CustomerIn, EventIn

_ERROR = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_JSON = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
_UNAVAILABLE = {**_ERROR, "description": "The store cannot take requests now: nothing was stored",
                "headers": {"Retry-After": {"description": "seconds to wait before retrying",
                                            "schema": {"type": "integer"}}}}


def _operation(summary: str, body: str | None = None, ok: str = "200", more: tuple[str, ...] = ()) -> dict[str, Any]:
    """An operation answering `ok`, the common errors, and the status codes in `more` (error bodies)."""
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {ok: _JSON, "401": _ERROR, "422": _ERROR, "500": _ERROR, "503": _UNAVAILABLE,
                      **{code: _ERROR for code in more}},
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return operation


def _path_id(name: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}]


@cache
def document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (EventIn, BatchIn, CustomerIn):
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
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "omnicanal", "version": __version__},
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/events": {"post": _operation("Store one event", "EventIn", ok="202", more=("400", "413"))},
            "/v1/events/batch": {"post": _operation("Store up to 1,000 events", "BatchIn", ok="202")},
            "/v1/customers/{customer_id}": {
                "parameters": _path_id("customer_id"),
                "put": _operation("Create or update a profile", "CustomerIn"),
                "get": _operation("Profile and running journeys", more=("404",)),
            },
            "/v1/customers/{customer_id}/timeline": {
                "parameters": _path_id("customer_id"),
                "get": _operation("Every event and message, oldest first", more=("404",)),
            },
            "/v1/journeys": {"get": _operation("Loaded journeys and their counts")},
            "/v1/journeys/{journey_id}": {
                "parameters": _path_id("journey_id"),
                "get": _operation("One journey with per-step counts", more=("404",)),
            },
            "/v1/journeys/{journey_id}/stats": {
                "parameters": [*_path_id("journey_id"), *(
                    {"name": name, "in": "query", "required": False, "schema": schema}
                    for name, schema in (("from", {"type": "string", "format": "date-time"}),
                                         ("to", {"type": "string", "format": "date-time"}),
                                         ("bucket", {"type": "string", "enum": ["hour", "day"]})))],
                "get": _operation("The funnel per step and channel, conversions, attribution, arms, a series",
                                  more=("404",)),
            },
            "/v1/outbox": {"get": _operation("Messages the outbox connector recorded")},
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": _JSON}}},
            "/readyz": {"get": {"summary": "Readiness", "security": [], "responses": {"200": _JSON, "503": _JSON}}},
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
