"""The timer loop: fires due timers by moving them into the work streams.

It polls the sorted sets of the partitions this worker owns every `OMNICANAL_TIMER_POLL_INTERVAL` real
seconds, and at once again while a poll still finds a full batch due. Firing is one Lua script per partition,
so even two processes that both believe they own a partition cannot fire a timer twice.
"""

from __future__ import annotations

import asyncio

import structlog

from omnicanal.engine.clock import Clock
from omnicanal.engine.ownership import PartitionOwnership
from omnicanal.errors import StoreUnavailable
from omnicanal.eventloop import pause
from omnicanal.metrics import WorkspaceMetrics, real_seconds
from omnicanal.store.work import WorkQueue

log = structlog.get_logger("omnicanal.timers")

FIRE_LIMIT = 500


async def run_timers(queue: WorkQueue, clock: Clock, ownership: PartitionOwnership, interval: float,
                     metrics: WorkspaceMetrics, stopping: asyncio.Event) -> None:
    """Fire the due timers of the partitions this worker owns, until `stopping` is set."""
    lateness = metrics.timer_lateness
    while not stopping.is_set():
        try:
            now = clock.now()
            due = await queue.fire_due(sorted(ownership.owned), now, FIRE_LIMIT)  # a copy: it changes
            for moment in due:
                lateness.observe(real_seconds(now - moment, clock.speed))
            fired = len(due)
        except StoreUnavailable as exc:
            log.error("store_unavailable", error=str(exc))
            fired = 0
            await asyncio.sleep(1.0)
        except Exception:  # a bug must not stop every timer of the workspace
            log.exception("timer_loop_failed")
            fired = 0
            await asyncio.sleep(1.0)
        if fired < FIRE_LIMIT:
            await pause(stopping, interval)
