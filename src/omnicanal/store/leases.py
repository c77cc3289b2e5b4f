"""Leases: which process holds a piece of work right now — a work partition, or the walk of an audience.

One customer's items must be applied one at a time and in order, so exactly one worker reads a partition's
stream at a time. A worker owns a partition through a lease key (SET NX PX, renewed by a Lua compare-and-set);
a worker that dies stops renewing and its partitions are free again after the lease time. Live workers announce
themselves in a heartbeat sorted set, so each can compute its fair share (partitions / live workers) and take
or give back partitions until the load is even. The walk of a broadcast's audience or of a segment's backfill is
held the same way (`Lease`), one process at a time.
"""

from __future__ import annotations

import time

from omnicanal.store.connection import call, translated
from omnicanal.store.keys import Keyspace
from omnicanal.store.scripts import load
from omnicanal.store.transport import Transport

RENEW_LEASE = load("renew_lease")
RELEASE_LEASE = load("release_lease")


class Lease:
    """A key one holder has at a time: taken with SET NX PX, extended and given back only by its holder (a
    compare-and-set script), so a holder that stalled past the expiry and was replaced learns it, and cannot
    free the key under its successor."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def take(self, key: str, holder: str, ttl_ms: int) -> bool:
        """Become the holder, unless someone is."""
        return bool(await call(self._transport.client.set(key, holder, nx=True, px=ttl_ms)))

    async def keep(self, key: str, holder: str, ttl_ms: int) -> bool:
        """Extend the lease; False when it was lost (another holder has it now)."""
        return bool(await self._transport.script(RENEW_LEASE, [key], [holder, ttl_ms]))

    async def give_back(self, key: str, holder: str) -> None:
        await self._transport.script(RELEASE_LEASE, [key], [holder])


class LeaseStore:
    def __init__(self, transport: Transport, keys: Keyspace) -> None:
        self._redis = transport.client
        self._keys = keys
        self._lease = Lease(transport)

    async def heartbeat(self, worker_id: str, ttl: float) -> int:
        """Say this worker is alive; returns how many workers are alive (this one included)."""
        now = time.time()
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._keys.workers, {worker_id: now})
            pipe.zremrangebyscore(self._keys.workers, "-inf", now - ttl)
            pipe.zcard(self._keys.workers)
            *_, alive = await pipe.execute()
        return max(1, int(alive))

    async def leave(self, worker_id: str) -> None:
        await call(self._redis.zrem(self._keys.workers, worker_id))

    async def acquire(self, partition: int, worker_id: str, ttl_ms: int) -> bool:
        return await self._lease.take(self._keys.partition(partition).lease, worker_id, ttl_ms)

    async def renew(self, partition: int, worker_id: str, ttl_ms: int) -> bool:
        return await self._lease.keep(self._keys.partition(partition).lease, worker_id, ttl_ms)

    async def release(self, partition: int, worker_id: str) -> None:
        await self._lease.give_back(self._keys.partition(partition).lease, worker_id)
