"""The operations page: dead-letter items with their error, workers and the partitions they hold, what waits in
each partition's stream, and the timers with their lateness. Read-only: retrying or dropping a dead letter stays
an operator's command (`omnicanal dlq`)."""

from __future__ import annotations

import time

from aiohttp import web

from omnicanal.store.work import stream_position
from omnicanal.ui.pages import Page
from omnicanal.ui.state import Dashboard

DEAD_LETTERS_SHOWN = 50


async def operations_page(request: web.Request, dashboard: Dashboard) -> Page:
    runtime = dashboard.runtime
    overview = await dashboard.overview.read()
    dead = await runtime.queue.dead_letters(DEAD_LETTERS_SHOWN)
    owned: dict[str, list[int]] = {}
    for partition in overview.partitions:
        if partition.owner is not None:
            owned.setdefault(partition.owner, []).append(partition.number)
    workers: list[tuple[str, float | None, list[int]]] = [
        (worker, seen, owned.pop(worker, [])) for worker, seen in overview.workers]
    workers += [(worker, None, numbers) for worker, numbers in owned.items()]  # a lease outliving its heartbeat
    now = runtime.clock.now()
    due = [p.next_due for p in overview.partitions if p.next_due is not None]
    return Page("operations.html", {
        "overview": overview,
        "workers": workers,
        "dead": [(entry_id, stream_position(entry_id)[0] / 1000, item, error) for entry_id, item, error in dead],
        "now": now,
        "real_now": time.time(),
        "next_due": min(due, default=None),
        "backlog": sum(p.backlog for p in overview.partitions),
        "timers": sum(p.timers for p in overview.partitions),
    })
