"""`omnicanal serve`: the HTTP API and the workers in one process, until SIGTERM or SIGINT.

Shutdown order: readiness turns false, the HTTP server stops accepting and finishes the requests in flight
(an event it answered 202 is already in Redis), then the worker finishes and acknowledges the batch in hand.
"""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from omnicanal.api.app import create_app
from omnicanal.config import Settings
from omnicanal.engine.runtime import Runtime

log = structlog.get_logger("omnicanal")


async def serve(settings: Settings) -> None:
    runtime = await Runtime.start(settings)
    runner = web.AppRunner(create_app(runtime), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info("listening", urls=[f"http://{host}:{port}" for host, port, *_ in runner.addresses])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping")
    runtime.stopping.set()
    await runner.cleanup()
    await runtime.stop()
