"""This worker's share of the work partitions: taken, kept and given back through leases in Redis.

Why partitions and not a plain consumer group: a consumer group hands entries to whichever consumer asks, so two
events of one customer could be applied by two processes at once, or out of order. With a lease per partition,
exactly one live worker reads a partition, and since a customer always hashes onto the same partition, their
items are applied one at a time in arrival order, by whichever worker owns it now.

Renewal runs in its own task so that a long batch (a slow provider) never lets a lease lapse; a partition is
given back only once the worker's batches in flight are done (`rebalance`'s `settle`), so it never changes hands
mid-item.
A worker that dies stops renewing; its partitions are free after the lease time and the next owner claims the
entries it left pending. A worker that stalls past its lease (a frozen VM, SIGSTOP, a long pause) and comes back
still lists the partitions as its own until its next renewal says otherwise: `readable` leaves out every one whose
lease may have run out meanwhile (measured on the monotonic clock, which a stall does not stop), so that it never
reads new entries of a partition the next owner is reading — a customer's entries split between two workers
would be applied out of order, or skipped. What it already had in hand is fenced by the commit (lua/commit.lua).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable

import structlog

from omnicanal.eventloop import pause
from omnicanal.metrics import WorkspaceMetrics
from omnicanal.store.leases import LeaseStore
from omnicanal.store.work import WorkItem, WorkQueue

log = structlog.get_logger("omnicanal.ownership")

REBALANCE_EVERY = 2.0
"""Seconds between two looks at the fair share (the worker loop calls `rebalance`)."""


class PartitionOwnership:
    def __init__(self, leases: LeaseStore, queue: WorkQueue, worker_id: str, partitions: int,
                 lease_seconds: float, metrics: WorkspaceMetrics) -> None:
        self._leases = leases
        self._metrics = metrics
        self._queue = queue
        self._worker_id = worker_id
        self._partitions = partitions
        self._ttl_ms = int(lease_seconds * 1000)
        self.owned: set[int] = set()
        self._expires: dict[int, float] = {}
        """Per owned partition: the monotonic time its lease runs out at the earliest (counted from when the
        last successful renewal was sent)."""

    def readable(self) -> set[int]:
        """The owned partitions whose lease is surely still this worker's for a third of its lifetime (renewals
        come every third): those this worker may read new entries from."""
        now = time.monotonic()
        margin = self._ttl_ms / 3000
        return {n for n in self.owned if self._expires.get(n, 0.0) - now > margin}

    async def rebalance(self, settle: Callable[[], Awaitable[None]]) -> list[WorkItem]:
        """Take free partitions up to a fair share, give back extras (after `settle`, which returns once this
        worker applies nothing: the next owner claims every entry left pending); returns entries to finish first
        (left pending by the previous owners of newly taken partitions, or by this worker before a restart)."""
        # a heartbeat outlives a few rebalance rounds, so a busy peer is not mistaken for a dead one
        alive = await self._leases.heartbeat(self._worker_id, ttl=max(self._ttl_ms / 1000, 3 * REBALANCE_EVERY))
        share = math.ceil(self._partitions / alive)
        inherited: list[WorkItem] = []
        candidates = [n for n in range(self._partitions) if n not in self.owned]
        random.shuffle(candidates)  # workers starting together don't all race for partition 0
        for number in candidates:
            if len(self.owned) >= share:
                break
            # renew first: after a restart with the same worker id, the lease is still ours
            asked = time.monotonic()
            if await self._leases.renew(number, self._worker_id, self._ttl_ms) or await self._leases.acquire(
                number, self._worker_id, self._ttl_ms
            ):
                self.owned.add(number)
                self._expires[number] = asked + self._ttl_ms / 1000
                inherited += await self._queue.take_over(number, self._worker_id)
                log.info("partition_taken", partition=number, inherited=len(inherited))
        extras = sorted(self.owned, reverse=True)[: max(0, len(self.owned) - share)]
        if extras:
            await settle()
        for number in extras:
            await self.give_back(number)
        return inherited

    async def give_back(self, number: int) -> None:
        self.owned.discard(number)
        self._expires.pop(number, None)
        await self._leases.release(number, self._worker_id)
        log.info("partition_released", partition=number)

    async def keep_alive(self, stopping: asyncio.Event) -> None:
        """Renew owned leases at a third of their lifetime; drop those that were lost."""
        while not stopping.is_set():
            for number in list(self.owned):
                try:
                    asked = time.monotonic()
                    if await self._leases.renew(number, self._worker_id, self._ttl_ms):
                        self._expires[number] = asked + self._ttl_ms / 1000
                    else:
                        self.owned.discard(number)
                        self._expires.pop(number, None)
                        log.warning("partition_lost", partition=number)
                except Exception as exc:  # the store is down: the leases are renewed next round, or lost
                    self._metrics.loop_errors("ownership").inc()
                    log.warning("lease_renewal_failed", partitions=sorted(self.owned),
                                error=f"{type(exc).__name__}: {exc}")
                    break
            await pause(stopping, self._ttl_ms / 3000)

    async def release_all(self) -> None:
        for number in list(self.owned):
            await self.give_back(number)
        await self._leases.leave(self._worker_id)
