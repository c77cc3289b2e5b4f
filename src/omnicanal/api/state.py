"""Typed application state shared by the handlers."""

from __future__ import annotations

from aiohttp import web

from omnicanal.access import KeyRing
from omnicanal.engine.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
ACCESS = web.AppKey("access", KeyRing)
"""The API keys this process accepts (the API's middleware, the dashboard's gate, the OpenAPI document)."""


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME]
