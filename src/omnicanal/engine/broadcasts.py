"""Walking a broadcast's audience: each customer gets a start of the journey in their ordered work.

Every worker process runs this loop; one process at a time walks a given broadcast, batch by batch, recording
after each batch where the walk stands (engine/walks.py), so a walk that a crash or a stop interrupted resumes
where it was, in another process if need be. A customer met twice (a resumed batch, a set rehashed meanwhile)
gets the same start twice, which the journey core applies once. The starts themselves (re-entry, a paused
journey...) are decided by the core when the customer's worker applies them, and counted on the broadcast with
the customer's commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from omnicanal.engine.clock import Clock
from omnicanal.engine.walks import SetWalks
from omnicanal.eventloop import every, pause
from omnicanal.expressions import Expression
from omnicanal.journey.state import customer_view
from omnicanal.store.broadcasts import CANCELLED, DONE, Broadcast, BroadcastStore
from omnicanal.store.connection import call
from omnicanal.store.customers import CustomerStore, Snapshot
from omnicanal.store.keys import Keyspace
from omnicanal.store.schema import WorkItem
from omnicanal.store.work import WorkQueue
from omnicanal.timestamps import iso

log = structlog.get_logger("omnicanal.broadcasts")

BROADCAST_EVENT = "broadcast"
"""The name of the event a broadcast gives each instance it starts (`event.properties` is its data)."""


def start_item(broadcast: Broadcast, customer_id: str, now: float) -> WorkItem:
    """The work item that starts the broadcast's journey for one customer: its event's id is the broadcast's,
    the same for every customer (each customer applies it once). With the broadcast's `local_time`, the
    customer's instance waits for that time on their own clock."""
    event = {"id": f"broadcast:{broadcast.id}", "name": BROADCAST_EVENT, "customer_id": customer_id,
             "properties": {**broadcast.data, "broadcast": broadcast.id}, "timestamp": iso(now)}
    payload = {"journey": broadcast.journey, "event": event}
    if broadcast.local_time:
        payload["local_time"] = broadcast.local_time
    return WorkItem(-1, "", "start", customer_id, payload=payload)


@dataclass
class Audience:
    """Where a broadcast's customers are listed (a Redis set walked with SSCAN), and the condition they must
    meet, if any."""

    members: str
    where: Expression | None = None


class BroadcastRunner:
    def __init__(self, store: BroadcastStore, queue: WorkQueue, customers: CustomerStore, walks: SetWalks,
                 keys: Keyspace, clock: Clock, batch: int = 500, poll: float = 0.25) -> None:
        self.store = store
        self.queue = queue
        self.customers = customers
        self.walks = walks
        self.keys = keys
        self.clock = clock
        self.batch = batch
        self.poll = poll

    def audience(self, broadcast: Broadcast) -> Audience:
        """The set to walk: a segment's members (the segment index), or every customer (filtered by `where`
        when given)."""
        segment, where = broadcast.audience.get("segment"), broadcast.audience.get("where")
        if isinstance(segment, str):
            return Audience(self.keys.segment_members(segment))
        return Audience(self.keys.customers, Expression(where) if isinstance(where, str) else None)

    async def run(self, stopping: asyncio.Event) -> None:
        """Until the process stops: walk every broadcast whose moment has come and that no one else walks."""

        async def walk_active() -> None:
            for broadcast_id in await self.store.active():
                if stopping.is_set():
                    break
                await self._maybe_walk(broadcast_id, stopping)

        await every(self.poll, stopping, walk_active, "broadcast_walk_failed")

    async def _maybe_walk(self, broadcast_id: str, stopping: asyncio.Event) -> None:
        broadcast = await self.store.get(broadcast_id)
        if broadcast is None or broadcast.status in (DONE, CANCELLED) or broadcast.at > self.clock.now():
            return
        lease = self.keys.broadcast_walker(broadcast_id)
        async with self.walks.held(lease) as held:
            if held:
                await self._walk(broadcast, lease, stopping)

    async def _walk(self, broadcast: Broadcast, lease: str, stopping: asyncio.Event) -> None:
        audience = self.audience(broadcast)
        if broadcast.planned is None:
            await self.store.begin(broadcast.id, int(await call(self.walks.redis.scard(audience.members))))
            log.info("broadcast_started", broadcast=broadcast.id, journey=broadcast.journey)

        async def not_cancelled() -> bool:
            current = await self.store.get(broadcast.id)
            if current is None or current.status == CANCELLED:
                log.info("broadcast_cancelled", broadcast=broadcast.id)
                return False
            return True

        count = min(self.batch, max(1, int(broadcast.rate))) if broadcast.rate > 0 else self.batch
        async for members, cursor in self.walks.batches(lease, audience.members, broadcast.cursor, count, stopping,
                                                        not_cancelled):
            chosen = await self._matching(audience, members)
            now = self.clock.now()
            if chosen:
                await self.queue.append(start_item(broadcast, customer_id, now) for customer_id in chosen)
            await self.store.advance(broadcast.id, cursor, len(members), len(chosen))
            if cursor == "0":
                log.info("broadcast_walked", broadcast=broadcast.id)
            elif broadcast.rate > 0 and chosen:
                await pause(stopping, len(chosen) / broadcast.rate)

    async def _matching(self, audience: Audience, members: Sequence[str]) -> list[str]:
        """The members who meet the audience's condition (all of them when it has none); a customer whose
        profile cannot be read, or for whom the condition fails to evaluate, is left out."""
        if audience.where is None or not members:
            return list(members)
        snapshots = await self.customers.snapshots({customer_id: [] for customer_id in members})
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        return [customer_id for customer_id, snapshot in snapshots.items()
                if isinstance(snapshot, Snapshot) and _holds(audience.where, customer_id, snapshot, now)]


def _holds(where: Expression, customer_id: str, snapshot: Snapshot, now: datetime) -> bool:
    """The condition for one customer, with what a journey's conditions see of them (`customer`, `now`)."""
    scope: dict[str, Any] = {"customer": customer_view(customer_id, snapshot.profile, snapshot.attributes),
                             "now": now}
    try:
        return where.test(scope)
    except Exception:  # a condition that fails for this customer's data: not in the audience
        return False
