"""`/healthz` (the process answers), `/readyz` (it can do its job), `/metrics` (Prometheus)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from omnicanal.api.state import runtime_of
from omnicanal.errors import StoreUnavailable
from omnicanal.store.connection import call


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    checks: dict[str, str] = {"journeys": f"{len(runtime.registry.current)} loaded"}
    ready = not runtime.stopping.is_set()
    if not ready:
        checks["lifecycle"] = "stopping"
    if runtime.broken:
        checks["loops"] = runtime.broken
        ready = False
    try:
        await call(runtime.redis.ping())
        checks["store"] = "ok"
    except StoreUnavailable as exc:
        checks["store"] = str(exc)
        ready = False
    return web.json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                             status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
