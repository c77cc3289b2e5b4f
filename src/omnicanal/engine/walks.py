"""Walking a Redis set batch by batch under a lease: what a broadcast's audience and a segment's backfill share.

One process at a time walks a given set (a lease, store/leases.py), with SSCAN, and the walk records after each
batch the cursor it reached, so a walk that a crash or a stop interrupted resumes where it was — in another
process once the lease has expired. SSCAN may return a member twice (the set rehashed meanwhile), and a resumed
walk does its last batch again: what a walk does with a member must be harmless done twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from omnicanal.store.connection import Redis, call
from omnicanal.store.leases import Lease


class SetWalks:
    """The walks of one process (`walker`, its id): each under a lease that it extends before every batch."""

    def __init__(self, lease: Lease, redis: Redis, walker: str, lease_seconds: float = 10.0) -> None:
        self.lease = lease
        self.redis = redis
        self.walker = walker
        self.lease_ms = int(lease_seconds * 1000)

    @contextlib.asynccontextmanager
    async def held(self, lease_key: str) -> AsyncIterator[bool]:
        """Whether this process took the walk (False: another one walks it); given back at the end of the block."""
        if not await self.lease.take(lease_key, self.walker, self.lease_ms):
            yield False
            return
        try:
            yield True
        finally:
            await self.lease.give_back(lease_key, self.walker)

    async def batches(self, lease_key: str, members: str, cursor: str, count: int, stopping: asyncio.Event,
                      going_on: Callable[[], Awaitable[bool]]) -> AsyncIterator[tuple[list[str], str]]:
        """The set's members from `cursor` on, `count` at a time (SSCAN's hint), each batch with the cursor after
        it ("0": the last). Stops early when the process stops, when `going_on()` (asked before each batch) says
        no, or when the lease was lost — the process stalled past it, and another one walks on from the cursor
        recorded; the caller records the cursor after each batch it handled."""
        while not stopping.is_set() and await going_on():
            if not await self.lease.keep(lease_key, self.walker, self.lease_ms):
                return
            next_cursor, found = await call(self.redis.sscan(members, int(cursor), count=count))
            cursor = str(next_cursor)
            yield [str(member) for member in found], cursor
            if cursor == "0":
                return
