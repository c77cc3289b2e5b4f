"""Running a coroutine to completion on the fastest event loop installed.

The engine spends most of its time in the event loop: socket writes and reads to Redis and providers, task
switches between customers. uvloop (libuv) does that work in C, several times cheaper than asyncio's pure
Python selector loop, so the daemon, the demo and the simulator run on it when it is installed (it is a
dependency on Linux and macOS); elsewhere they run on asyncio's own loop, unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None (asyncio's default loop) where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on uvloop when available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coroutine)


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if the process stops meanwhile (a loop's rest between two rounds)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def every(seconds: float, stopping: asyncio.Event, step: Callable[[], Awaitable[None]], failure: str) -> None:
    """Run `step` every `seconds` until the process stops. A round that fails (the store down) is logged as
    `failure` and the next one tries again: a background loop never ends on an error."""
    while not stopping.is_set():
        try:
            await step()
        except Exception as exc:
            structlog.get_logger("omnicanal.loops").error(failure, error=f"{type(exc).__name__}: {exc}")
        await pause(stopping, seconds)
