"""Broadcasts over HTTP: `POST /v1/broadcasts` asks for one, `GET /v1/broadcasts[/{id}]` follows them,
`DELETE /v1/broadcasts/{id}` cancels the walk (the starts already queued still apply)."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from omnicanal import broadcasting
from omnicanal.api.audit import audit
from omnicanal.api.errors import read_json
from omnicanal.api.schemas import storable, within_limits
from omnicanal.api.state import runtime_of
from omnicanal.codec import dumps
from omnicanal.errors import InputError, NotFound
from omnicanal.timestamps import moment


class AudienceIn(BaseModel):
    """Exactly one of the three."""

    model_config = ConfigDict(extra="forbid")

    segment: str | None = Field(default=None, min_length=1, max_length=128)
    where: str | None = Field(default=None, min_length=1, max_length=4096)
    everyone: bool = False


class BroadcastIn(BaseModel):
    """`POST /v1/broadcasts` body."""

    model_config = ConfigDict(extra="forbid")

    journey: Annotated[str, Field(min_length=1, max_length=128)]
    audience: AudienceIn
    at: str | None = Field(default=None, description="ISO 8601; default: now")
    rate: float = Field(default=0.0, ge=0, description="Customers started per second at most (0: no limit)")
    data: dict[str, Any] = Field(default_factory=dict, description="The broadcast event's properties")


def _found(broadcast: Any, broadcast_id: str) -> Any:
    if broadcast is None:
        raise NotFound(f"no broadcast {broadcast_id!r}")
    return broadcast


async def post_broadcast(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    body = BroadcastIn.model_validate(storable(await read_json(request)))
    within_limits(body.data, "data", runtime.settings.max_properties_bytes, runtime.settings.max_list_items)
    audience = broadcasting.audience_of(body.audience.segment, body.audience.where, body.audience.everyone)
    try:
        at = None if body.at is None else moment(body.at)
    except ValueError as exc:
        raise InputError([{"field": "at", "message": str(exc)}]) from None
    broadcast = broadcasting.new_broadcast(body.journey, runtime.registry.current, audience,
                                           runtime.engine.context.segments.by_id,
                                           runtime.clock.now(), at, body.rate, body.data, origin="api")
    await broadcasting.start(runtime.broadcasts, broadcast)
    await audit(request, "broadcast.create", broadcast.id, journey=broadcast.journey, audience=broadcast.audience)
    return web.json_response(broadcast.to_json(), status=201, dumps=dumps,
                             headers={"Location": f"/v1/broadcasts/{broadcast.id}"})


async def get_broadcast(request: web.Request) -> web.Response:
    broadcast_id = request.match_info["broadcast_id"]
    broadcast = _found(await runtime_of(request).broadcasts.get(broadcast_id), broadcast_id)
    return web.json_response(broadcast.to_json(), dumps=dumps)


async def list_broadcasts(request: web.Request) -> web.Response:
    recent = await runtime_of(request).broadcasts.recent()
    return web.json_response({"broadcasts": [b.to_json() for b in recent]}, dumps=dumps)


async def cancel_broadcast(request: web.Request) -> web.Response:
    broadcast_id = request.match_info["broadcast_id"]
    broadcast = _found(await runtime_of(request).broadcasts.cancel(broadcast_id), broadcast_id)
    await audit(request, "broadcast.cancel", broadcast_id, journey=broadcast.journey)
    return web.json_response(broadcast.to_json(), status=202, dumps=dumps)
