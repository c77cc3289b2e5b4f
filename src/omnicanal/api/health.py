"""`/healthz` (the process answers), `/readyz` (it can do its job), `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from omnicanal.api.state import deployment_of
from omnicanal.engine.runtime import Runtime
from omnicanal.errors import StoreUnavailable
from omnicanal.store.connection import call


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when every workspace is: each one's checks, named `WORKSPACE/check` when the process serves several."""
    deployment = deployment_of(request)
    several = len(deployment.runtimes) > 1
    results = await asyncio.gather(*(_checks(runtime) for runtime in deployment.runtimes.values()))
    checks: dict[str, str] = {}
    ready = True
    for workspace, (fine, found) in zip(deployment.runtimes, results, strict=True):
        ready = ready and fine
        checks.update({f"{workspace}/{name}" if several and name != "lifecycle" else name: value
                       for name, value in found.items()})
    return web.json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                             status=200 if ready else 503)


async def _checks(runtime: Runtime) -> tuple[bool, dict[str, str]]:
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
    return ready, checks


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
