"""What the work machinery looks like right now, partition by partition: who owns each one, what waits in its
stream, how many timers it holds and when the first falls due; the live workers; the dead-letter count.

Read-only and bounded by the number of partitions (one pipelined round trip), never by customers: the
operations page asks for it on every view.
"""

from __future__ import annotations

from dataclasses import dataclass

from omnicanal.store.connection import Redis, translated
from omnicanal.store.keys import Keyspace


@dataclass(frozen=True, slots=True)
class PartitionState:
    number: int
    owner: str | None
    """The worker holding the partition's lease (None: nobody, its work waits for a worker)."""
    backlog: int
    """Entries in the partition's stream: acknowledged entries are deleted, so these are not yet applied."""
    timers: int
    next_due: float | None
    """Journey time of the earliest timer (None: no timer waits)."""


@dataclass(frozen=True, slots=True)
class WorkOverview:
    partitions: list[PartitionState]
    workers: list[tuple[str, float]]
    """Live workers and their last heartbeat (real time), as they announced themselves."""
    dead_letters: int


class OverviewStore:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys

    async def read(self) -> WorkOverview:
        numbers = range(self._keys.partitions)
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for number in numbers:
                keys = self._keys.partition(number)
                pipe.get(keys.lease)
                pipe.xlen(keys.work)
                pipe.zcard(keys.timers)
                pipe.zrange(keys.timers, 0, 0, withscores=True)
            pipe.zrange(self._keys.workers, 0, -1, withscores=True)
            pipe.xlen(self._keys.dlq)
            *per_partition, workers, dead = await pipe.execute()
        partitions = []
        for number in numbers:
            owner, backlog, timers, first = per_partition[4 * number:4 * number + 4]
            partitions.append(PartitionState(number, owner, int(backlog), int(timers),
                                             float(first[0][1]) if first else None))
        return WorkOverview(partitions, [(str(worker), float(seen)) for worker, seen in workers], int(dead))
