"""Partition leases: which worker process owns which work partition, right now.

One customer's items must be applied one at a time and in order, so exactly one worker reads a partition's
stream at a time. A worker owns a partition through a lease key (SET NX PX, renewed by a Lua compare-and-set);
a worker that dies stops renewing and its partitions are free again after the lease time. Live workers announce
themselves in a heartbeat sorted set, so each can compute its fair share (partitions / live workers) and take
or give back partitions until the load is even.
"""

from __future__ import annotations

import time

from omnicanal.store.connection import call, translated
from omnicanal.store.keys import Keyspace
from omnicanal.store.scripts import load
from omnicanal.store.transport import Transport

RENEW_LEASE = load("renew_lease")
RELEASE_LEASE = load("release_lease")


class LeaseStore:
    def __init__(self, transport: Transport, keys: Keyspace) -> None:
        self._transport = transport
        self._redis = transport.client
        self._keys = keys

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
        return bool(await call(self._redis.set(self._keys.partition(partition).lease, worker_id, nx=True, px=ttl_ms)))

    async def renew(self, partition: int, worker_id: str, ttl_ms: int) -> bool:
        key = self._keys.partition(partition).lease
        return bool(await self._transport.script(RENEW_LEASE, [key], [worker_id, ttl_ms]))

    async def release(self, partition: int, worker_id: str) -> None:
        await self._transport.script(RELEASE_LEASE, [self._keys.partition(partition).lease], [worker_id])
