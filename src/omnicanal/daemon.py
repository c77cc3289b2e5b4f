"""The long-running processes: `serve` (API + work), `api` (API only), `worker` (work, plus probes).

A connection that has not sent a whole request's headers OMNICANAL_HEADER_TIMEOUT after it opened (or after the
previous answer) is closed: aiohttp's keep-alive timer, which closes a connection still waiting for a request,
is that deadline (bodies have theirs in api/errors.py).

Signals: SIGTERM/SIGINT stop gracefully — readiness turns false, the HTTP server stops accepting and finishes
the requests in flight (an event it answered 202 is already in Redis), the worker finishes and acknowledges the
batch in hand (within OMNICANAL_SHUTDOWN_GRACE) and gives its partitions back. SIGHUP reloads journeys and
templates (of every workspace: engine/deployment.py); a broken file is reported and the previous version keeps running.
"""

from __future__ import annotations

import asyncio
import gc
import signal

import structlog
from aiohttp import web

from omnicanal.api.app import create_app
from omnicanal.config import Settings
from omnicanal.engine.deployment import Deployment
from omnicanal.engine.runtime import Role
from omnicanal.errors import ConfigError

log = structlog.get_logger("omnicanal")


GC_THRESHOLDS = (50_000, 20, 50)
"""Allocations before a young-generation collection (Python's default: 700), and the older generations' ratios."""


def tune_garbage_collector() -> None:
    """Collect less often, and never again scan what start-up built.

    Applying an event allocates thousands of short-lived objects (parsed JSON, scopes, template contexts) that
    reference counting frees; almost none form cycles. With Python's default threshold the cyclic collector ran
    every 700 allocations and, each time, walked the young objects of every customer in flight — a quarter of a
    worker's CPU in the bench. Start-up's objects (modules, compiled journeys and templates) are frozen out of
    its scans. Memory stays bounded: cycles are still collected, every 50,000 allocations.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def run_process(settings: Settings, role: Role) -> None:
    deployment = await Deployment.start(settings, role)
    runner = web.AppRunner(create_app(deployment), handle_signals=False, access_log=None,
                           keepalive_timeout=settings.header_timeout)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:  # the port taken, an address not this machine's, a host name that does not resolve
        await runner.cleanup()
        await deployment.stop()
        raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc} (set "
                          f"OMNICANAL_HOST and OMNICANAL_PORT, or --host and --port)") from exc
    tune_garbage_collector()
    log.info("listening", role=role.value, urls=[f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
                                               for host, port, *_ in runner.addresses],
             workspaces=sorted(deployment.runtimes))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = loop.create_task(deployment.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    log.info("stopping")
    deployment.stopping()
    await runner.cleanup()
    await deployment.stop()
