"""Backfilling a segment added or changed: every customer's membership evaluated again, in their ordered work.

Without it, a segment defined later would hold only the customers whose next event came. When the segments are
loaded (at start, at a reload), each one whose definition's fingerprint is not the one recorded gets a backfill
(store/backfills.py). Every worker process runs this loop; one process at a time walks a given backfill over
the set of every customer (engine/walks.py: batch by batch under a lease, the cursor recorded after each batch,
resumed elsewhere after a crash), and queues for each customer an item that the journey core applies by
evaluating every segment for them (journey/audience.py): entering says `segment.entered` as any evaluation does,
once, since a customer already in the segment does not enter it again — so a batch queued twice (a resumed walk)
or an event of the customer applied in between changes nothing.

The walk queues about a batch at a time and waits while the work streams hold more than a few batches: a
backfill over millions of customers never stands between a customer and their next event for long, and keeps
the streams small. `OMNICANAL_SEGMENT_BACKFILL_RATE` caps it further.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import structlog

from omnicanal.engine.clock import Clock
from omnicanal.engine.walks import SetWalks
from omnicanal.eventloop import every, pause
from omnicanal.journey.segments import Segment
from omnicanal.store.backfills import Backfill, SegmentBackfills
from omnicanal.store.connection import call
from omnicanal.store.keys import Keyspace
from omnicanal.store.schema import EVALUATE, WorkItem
from omnicanal.store.work import WorkQueue

log = structlog.get_logger("omnicanal.segments")

BACKLOG_BATCHES = 4
"""The walk queues its next batch once the work streams hold fewer than this many batches of work."""
PACE = 0.1
"""With a rate, the seconds' worth of customers queued at a time: ten small batches a second, not one burst."""


def evaluate_item(backfill: Backfill, customer_id: str) -> WorkItem:
    """The work item that evaluates one customer's segments, naming the definition it was queued for (a worker
    that runs an older one reloads its files first)."""
    return WorkItem(-1, "", EVALUATE, customer_id,
                    payload={"segment": backfill.segment, "fingerprint": backfill.fingerprint})


class BackfillRunner:
    def __init__(self, store: SegmentBackfills, queue: WorkQueue, walks: SetWalks, keys: Keyspace, clock: Clock,
                 segments: Callable[[], Mapping[str, Segment]], rate: float = 0.0, batch: int = 500,
                 poll: float = 0.25) -> None:
        self.store = store
        self.queue = queue
        self.walks = walks
        self.keys = keys
        self.clock = clock
        self.segments = segments
        self.rate = rate
        self.batch = min(batch, max(1, int(rate * PACE))) if rate > 0 else batch
        self.poll = poll

    async def run(self, stopping: asyncio.Event) -> None:
        """Until the process stops: walk every backfill of a definition this process runs that no one else walks."""

        async def walk_armed() -> None:
            loaded = self.segments()
            for backfill in (await self.store.of(sorted(loaded))).values():
                if stopping.is_set():
                    break
                if backfill.walking and backfill.fingerprint == loaded[backfill.segment].fingerprint:
                    lease = self.keys.segment_backfill_walker(backfill.segment)
                    async with self.walks.held(lease) as held:
                        if held:
                            await self._walk(backfill, lease, stopping)

        await every(self.poll, stopping, walk_armed, "segment_backfill_failed")

    async def _walk(self, backfill: Backfill, lease: str, stopping: asyncio.Event) -> None:
        current = await self.store.get(backfill.segment)  # read again under the lease: the walk may have moved
        if current is None or current.fingerprint != backfill.fingerprint or not current.walking:
            return
        if current.total is None:
            total = int(await call(self.walks.redis.scard(self.keys.customers)))
            if not await self.store.advance(current, current.cursor, 0, self.clock.now(), total=total):
                return
            log.info("segment_backfill_started", segment=current.segment, customers=total)

        async def room() -> bool:
            """Whether to go on (this definition is still the one to backfill), once the streams have room."""
            while await self.queue.backlog() >= BACKLOG_BATCHES * self.batch and not stopping.is_set():
                await pause(stopping, 0.05)
            latest = await self.store.get(current.segment)
            return latest is not None and latest.fingerprint == current.fingerprint

        considered = current.considered
        async for members, cursor in self.walks.batches(lease, self.keys.customers, current.cursor, self.batch,
                                                        stopping, room):
            if members:
                await self.queue.append(evaluate_item(current, customer_id) for customer_id in members)
            finished = cursor == "0"
            if not await self.store.advance(current, cursor, len(members), self.clock.now(), finished=finished):
                return  # superseded meanwhile: the newer definition's backfill walks from its own beginning
            considered += len(members)
            if finished:
                log.info("segment_backfill_done", segment=current.segment, considered=considered)
            elif self.rate > 0:
                await pause(stopping, len(members) / self.rate)
