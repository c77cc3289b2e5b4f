"""Running a coroutine to completion on the fastest event loop installed.

The engine spends most of its time in the event loop: socket writes and reads to Redis and providers, task
switches between customers. uvloop (libuv) does that work in C, several times cheaper than asyncio's pure
Python selector loop, so the daemon, the demo and the simulator run on it when it is installed (it is a
dependency on Linux and macOS); elsewhere they run on asyncio's own loop, unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

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
