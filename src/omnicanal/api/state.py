"""Typed application state shared by the handlers."""

from __future__ import annotations

from aiohttp import web

from omnicanal.engine.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME]
