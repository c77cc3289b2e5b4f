"""`GET /v1/segments` and `/v1/segments/{id}`: the segments loaded, their condition and how many customers each
holds (the segment index, store/segments.py); for one segment, how far its backfill stands (store/backfills.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from omnicanal.api.state import runtime_of
from omnicanal.errors import NotFound
from omnicanal.journey.segments import Segment


def _view(segment: Segment, size: int) -> dict[str, Any]:
    return {"id": segment.id, "where": segment.where.source, "size": size,
            "aggregates": {name: aggregate.model_dump(mode="json", exclude_none=True)
                           for name, aggregate in segment.aggregates.items()}}


async def list_segments(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    loaded = runtime.engine.context.segments.by_id
    sizes = await runtime.engine.segments.sizes(sorted(loaded))
    return web.json_response({"segments": [_view(loaded[segment_id], size) for segment_id, size in sizes.items()]})


async def get_segment(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    loaded = runtime.engine.context.segments.by_id
    segment = loaded.get(request.match_info["segment_id"])
    if segment is None:
        raise NotFound(f"no segment {request.match_info['segment_id']!r}; loaded: {sorted(loaded)}")
    sizes = await runtime.engine.segments.sizes([segment.id])
    backfill = await runtime.backfills.get(segment.id)
    return web.json_response({**_view(segment, sizes[segment.id]),
                              "backfill": backfill.to_json() if backfill is not None else None})
