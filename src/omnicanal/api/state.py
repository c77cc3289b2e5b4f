"""Typed application state shared by the handlers."""

from __future__ import annotations

from aiohttp import web

from omnicanal.access import WORKSPACE, KeyRings
from omnicanal.engine.deployment import Deployment
from omnicanal.engine.runtime import Runtime

DEPLOYMENT = web.AppKey("deployment", Deployment)
ACCESS = web.AppKey("access", KeyRings)
"""The API keys this process accepts (the API's middleware, the dashboard's gate, the OpenAPI document)."""


def deployment_of(request: web.Request) -> Deployment:
    return request.app[DEPLOYMENT]


def runtime_of(request: web.Request) -> Runtime:
    """The runtime of the request's workspace: its key's (access.py), or the one its signed token or callback
    names (links, Twilio). A request that has none reaches a process's only workspace; with several, asking is a
    bug — it fails (500) rather than guess a workspace."""
    deployment = deployment_of(request)
    workspace = request.get(WORKSPACE)
    if workspace is None:
        if len(deployment.runtimes) != 1:
            raise RuntimeError(f"{request.method} {request.path}: no workspace chosen for this request")
        return next(iter(deployment.runtimes.values()))
    runtime = deployment.runtime(workspace)
    if runtime is None:
        raise RuntimeError(f"{request.method} {request.path}: workspace {workspace!r} is not served here")
    return runtime
