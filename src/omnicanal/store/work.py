"""Work streams and durable timers: how events and due waits reach a worker.

An accepted event is one XADD to the stream of its customer's partition: once Redis answers, it is stored and
the API may say 202. Workers read partitions through one consumer group; an entry is acknowledged (and deleted)
only after its effects are committed, so a crash means re-delivery, never loss.

Timers are members of a per-partition sorted set scored by due journey time. A Lua script moves every due
member into the same partition's stream and removes it in one step, so a timer fires once even with several
pollers, and a million waiting customers cost Redis memory only.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from redis import exceptions as redis_errors

from omnicanal.store.connection import FieldMap, call, first_error, translated
from omnicanal.store.keys import STREAM_GROUP, Keyspace, PartitionKeys
from omnicanal.store.schema import (
    DEAD_ERROR,
    DEAD_FAILED_AT,
    WorkItem,
    decode_work,
    encode_work,
    timer_member,
)
from omnicanal.store.scripts import Command, load
from omnicanal.store.transport import Transport

__all__ = ["WorkItem", "WorkQueue", "stream_position"]
"""WorkItem is a stored form (schema.py), used with the queue."""

FIRE_DUE = load("fire_due")


def stream_position(entry_id: str) -> tuple[int, int]:
    """A stream entry id ("1718000000000-3") as a comparable pair: a customer's entries are all in one stream,
    added in order, so a larger id is later work."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


class WorkQueue:
    """The partitioned streams and timer sets of one workspace."""

    def __init__(self, transport: Transport, keys: Keyspace) -> None:
        self._transport = transport
        self._redis = transport.client
        self._keys = keys

    def partition(self, customer_id: str) -> PartitionKeys:
        return self._keys.partition(self._keys.partition_of(customer_id))

    async def ensure_groups(self) -> None:
        """Create the consumer group on every partition stream (idempotent)."""
        for number in range(self._keys.partitions):
            try:
                stream = self._keys.partition(number).work
                await call(self._redis.xgroup_create(stream, STREAM_GROUP, "0", mkstream=True))
            except redis_errors.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def append_events(self, events: Sequence[dict[str, Any]]) -> None:
        """Store events durably (one pipelined round trip for a batch); raises StoreUnavailable on failure."""
        await self.append(map(WorkItem.of_event, events))

    async def read(self, partitions: Collection[int], consumer: str, count: int, block_ms: int | None,
                   pending: bool = False, done: Sequence[WorkItem] = ()) -> list[WorkItem]:
        """New entries of these partitions for this consumer, at most `count` from each; or, with `pending`,
        every one it was given and never acknowledged (`count` per stream and round trip), oldest first.
        `block_ms` None: answer at once.

        `done` (entries whose effects are committed) are acknowledged first, in the same round trip as the read
        where the transport allows: a worker's cycle is a round trip shorter. Redis runs the acknowledgements
        before the read blocks, so nothing waits for new work."""
        streams: FieldMap = {self._keys.partition(n).work: "0" if pending else ">" for n in sorted(partitions)}
        if not streams:
            await self.acknowledge(done)
            return []
        items: list[WorkItem] = []
        while streams:
            try:
                answer = await self._transport.read_groups(STREAM_GROUP, consumer, streams, count,
                                                           None if pending else block_ms,
                                                           partial(self._queue_acks, items=done))
            except redis_errors.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self.ensure_groups()  # Redis came back empty (no persistence): start afresh
                return []
            done = ()
            items += self._decode(answer)
            # pending entries come `count` per stream: a stream that gave as many may have more after the last
            streams = {stream: entries[-1][0] for stream, entries in answer if len(entries) >= count} if pending \
                else {}
        return items

    async def take_over(self, partition: int, consumer: str) -> list[WorkItem]:
        """Claim every entry of a partition left pending by its previous owner (whose lease ended)."""
        stream = self._keys.partition(partition).work
        items: list[WorkItem] = []
        cursor = "0-0"
        while True:
            answer = await call(self._redis.xautoclaim(stream, STREAM_GROUP, consumer, 0, cursor, 500))
            items.extend(self._decode([(stream, answer[1])]))
            cursor = answer[0]
            if cursor in ("0-0", b"0-0"):
                return items

    def _decode(self, answer: Iterable[Any]) -> list[WorkItem]:
        items: list[WorkItem] = []
        for stream, entries in answer:
            number = int(stream.rsplit(":p:", 1)[1].split("}", 1)[0])
            items.extend(decode_work(number, entry_id, fields) for entry_id, fields in entries if fields)
        return items  # an entry without fields was deleted while pending: nothing to do

    async def acknowledge(self, items: Iterable[WorkItem]) -> None:
        """Acknowledge and delete processed entries (streams stay as small as the backlog)."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            self._queue_acks(pipe, items)
            if len(pipe):
                await pipe.execute()

    def _queue_acks(self, pipe: Any, items: Iterable[WorkItem]) -> None:
        by_stream: dict[str, list[str]] = {}
        for item in items:
            by_stream.setdefault(self._keys.partition(item.partition).work, []).append(item.entry_id)
        for stream, ids in by_stream.items():
            pipe.xack(stream, STREAM_GROUP, *ids)
            pipe.xdel(stream, *ids)

    def schedule(self, pipe: Any, timers: Iterable[tuple[str, str, str, float]]) -> None:
        """Queue on `pipe` the addition of (customer, instance, token, due) timers (idempotent): one command per
        partition, however many customers."""
        by_set: dict[str, dict[str, float]] = {}
        for customer_id, instance_id, token, due in timers:
            members = by_set.setdefault(self.partition(customer_id).timers, {})
            members[timer_member(customer_id, instance_id, token)] = due
        for key, members in by_set.items():
            pipe.zadd(key, members)

    def cancel(self, pipe: Any, timers: Iterable[tuple[str, str, str]]) -> None:
        """Queue on `pipe` the removal of timers no longer needed, one command per partition."""
        by_set: dict[str, list[str]] = {}
        for customer_id, instance_id, token in timers:
            by_set.setdefault(self.partition(customer_id).timers, []).append(
                timer_member(customer_id, instance_id, token))
        for key, members in by_set.items():
            pipe.zrem(key, *members)

    async def fire_due(self, partitions: Collection[int], now: float, limit: int = 500) -> list[float]:
        """Move the timers of these partitions due at `now` (at most `limit` per partition) into their streams;
        returns the due times of those that fired (timer lateness).

        The due times are read in the same round trip, just before each partition's script, with the script's
        own range: the first `fired` of them are the timers it moved. On a Redis Cluster, where a read and a
        script may reach their node in either order, a timer may go without its due time; it fires all the same."""
        commands: list[Command] = []
        for p in map(self._keys.partition, partitions):
            commands.append(("ZRANGEBYSCORE", p.timers, "-inf", repr(now), "LIMIT", 0, limit, "WITHSCORES"))
            commands.append(FIRE_DUE.command([p.timers, p.work], [repr(now), limit]))
        async with translated():
            replies = first_error(await self._transport.send(commands))
        due: list[float] = []
        for scored, fired in zip(replies[0::2], replies[1::2], strict=True):
            due.extend(float(score) for score in scored[1::2][:int(fired)])
        return due

    async def pending(self) -> int:
        """Entries handed to a worker and not yet acknowledged, in all partition streams (metrics)."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for n in range(self._keys.partitions):
                pipe.xpending(self._keys.partition(n).work, STREAM_GROUP)
            answers = await pipe.execute(raise_on_error=False)
        return sum(int(answer["pending"]) for answer in answers if isinstance(answer, dict))

    def append_into(self, pipe: Any, items: Iterable[WorkItem]) -> None:
        """Queue on `pipe` the addition of work items (written with other writes of a batch)."""
        for item in items:
            pipe.xadd(self.partition(item.customer_id).work, encode_work(item))

    async def append(self, items: Iterable[WorkItem]) -> None:
        """Add work items to their customers' partitions, in order, in one round trip."""
        batch = list(items)
        if len(batch) == 1:  # the single-event API path: concurrent requests share a round trip
            fields = encode_work(batch[0])
            await self._transport.command("XADD", self.partition(batch[0].customer_id).work, "*",
                                          *(x for pair in fields.items() for x in pair))
            return
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            self.append_into(pipe, batch)
            await pipe.execute()

    async def append_to(self, kind: str, customer_ids: Iterable[str], payload: dict[str, Any]) -> int:
        """Ask the owners of these customers to apply an operation (`drain`, `resume`, `cancel`, with its
        payload) in each customer's order; returns how many."""
        items = [WorkItem(-1, "", kind, cid, payload=payload) for cid in customer_ids]
        if items:
            await self.append(items)
        return len(items)

    async def dead_letter(self, item: WorkItem, error: str) -> None:
        """Park an item that keeps failing in the dead-letter stream, then acknowledge it."""
        fields: FieldMap = {**encode_work(item), DEAD_ERROR: error[:2000], DEAD_FAILED_AT: repr(time.time())}
        await call(self._redis.xadd(self._keys.dlq, fields))
        await self.acknowledge([item])

    async def dead_letters(self, count: int = 100) -> list[tuple[str, WorkItem, str]]:
        """(dead-letter id, item, error), oldest first."""
        entries = await call(self._redis.xrange(self._keys.dlq, count=count))
        return [(entry_id, decode_work(-1, entry_id, fields), fields.get(DEAD_ERROR, ""))
                for entry_id, fields in entries]

    async def retry_dead_letter(self, entry_id: str) -> bool:
        """Put a dead-lettered item back into its partition's stream; False if there is no such entry.

        Two retries at once (two operators, a scheduled retry meeting a manual one) may both read the entry before
        either deletes it, and both put it back: reading, adding and deleting cannot be one step, the dead-letter
        stream and the partition's being on different slots. So an event goes back no longer `unique`: its id
        enters the customer's applied-events index, and a second copy is recognised and applied once."""
        entries = await call(self._redis.xrange(self._keys.dlq, entry_id, entry_id))
        if not entries:
            return False
        item = replace(decode_work(-1, entry_id, entries[0][1]), unique=False)
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self.partition(item.customer_id).work, encode_work(item))
            pipe.xdel(self._keys.dlq, entry_id)
            await pipe.execute()
        return True

    async def drop_dead_letter(self, entry_id: str) -> bool:
        return bool(await call(self._redis.xdel(self._keys.dlq, entry_id)))

    async def next_due(self) -> float | None:
        """When the earliest timer of the workspace falls due (None: no timer waits)."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for n in range(self._keys.partitions):
                pipe.zrange(self._keys.partition(n).timers, 0, 0, withscores=True)
            firsts = await pipe.execute()
        return min((first[0][1] for first in firsts if first), default=None)

    async def backlog(self) -> int:
        """Entries waiting in all partition streams (readiness and metrics)."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for n in range(self._keys.partitions):
                pipe.xlen(self._keys.partition(n).work)
            return sum(await pipe.execute())

    async def waiting_timers(self) -> int:
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for n in range(self._keys.partitions):
                pipe.zcard(self._keys.partition(n).timers)
            return sum(await pipe.execute())
