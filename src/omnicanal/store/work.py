"""Work streams and durable timers: how events and due waits reach a worker.

An accepted event is one XADD to the stream of its customer's partition: once Redis answers, it is stored and
the API may say 202. Workers read partitions through one consumer group; an entry is acknowledged (and deleted)
only after its effects are committed, so a crash means re-delivery, never loss.

Timers are members of a per-partition sorted set scored by due journey time. A Lua script moves every due
member into the same partition's stream and removes it in one step, so a timer fires once even with several
pollers, and a million waiting customers cost Redis memory only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import RedisCluster

from omnicanal.codec import encode, loads
from omnicanal.store.connection import Coalescer, FieldMap, Redis, call, run_script, translated
from omnicanal.store.keys import STREAM_GROUP, Keyspace, PartitionKeys

_FIRE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'k', 'timer', 'm', member)
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return #due
"""


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One stream entry for a customer: an `event`, a `timer` of one of their journey instances, or an
    operation — `drain` (payload: journey), `merge` (payload: into, the known customer this anonymous one
    becomes) or `absorb` (payload: from, state: what the anonymous customer had)."""

    partition: int
    entry_id: str
    kind: str
    customer_id: str
    event: dict[str, Any] | None = None
    instance_id: str | None = None
    token: str | None = None
    payload: dict[str, Any] | None = None
    unique: bool = False
    """An event whose id no other entry carries (the API's, sent without an idempotency key): only a re-delivery
    of this very entry could apply it twice, and the customer's last applied entry recognises that, so its id is
    not kept in the applied-events index. Events that may come again under the same id (an idempotency key, a
    provider's retried callback, a forwarded event) are not unique."""

    @classmethod
    def of_event(cls, event: dict[str, Any], unique: bool = False) -> WorkItem:
        """A stored event (see api/events.py) about to be added to its customer's stream."""
        return cls(-1, "", "event", event["customer_id"], event=event, unique=unique)

    def for_customer(self, customer_id: str) -> WorkItem:
        """The same work, addressed to another customer (forwarding after a merge: it may be forwarded twice,
        so it is no longer `unique`)."""
        event = {**self.event, "customer_id": customer_id} if self.event is not None else None
        return WorkItem(-1, "", self.kind, customer_id, event, self.instance_id, self.token, self.payload)


def stream_position(entry_id: str) -> tuple[int, int]:
    """A stream entry id ("1718000000000-3") as a comparable pair: a customer's entries are all in one stream,
    added in order, so a larger id is later work."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def _encode(item: WorkItem) -> FieldMap:
    """The stream fields of an item (the inverse of WorkQueue._item)."""
    if item.kind == "event":
        fields: FieldMap = {"k": "event", "c": item.customer_id, "d": encode(item.event)}
        if item.unique:
            fields["u"] = "1"
        return fields
    if item.kind != "timer":
        return {"k": item.kind, "c": item.customer_id, "d": encode(item.payload)}
    return {"k": "timer", "m": timer_member(item.customer_id, item.instance_id or "", item.token or "")}


def timer_member(customer_id: str, instance_id: str, token: str) -> str:
    return f"{customer_id}|{instance_id}|{token}"


class WorkQueue:
    """The partitioned streams and timer sets of one workspace."""

    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys
        self._fire_due = redis.register_script(_FIRE_DUE)
        self._together = Coalescer(redis)

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
                   pending: bool = False, done: Sequence[WorkItem] = (),
                   also: Callable[[Any], None] | None = None) -> list[WorkItem]:
        """New entries of these partitions for this consumer (or, with `pending`, the ones it was given and
        never acknowledged). `block_ms` None: answer at once.

        `done` (entries whose effects are committed) are acknowledged first, and `also` queues other writes (the
        last batch's counters), in the same round trip as the read on a single Redis: a worker's cycle is a
        round trip shorter. Redis runs them before the read blocks, so nothing waits for new work."""
        start = "0" if pending else ">"
        streams: FieldMap = {self._keys.partition(n).work: start for n in sorted(partitions)}
        single = not isinstance(self._redis, RedisCluster)
        if not (single and streams):  # a Cluster reads node by node: the acknowledgements go on their own
            await self.acknowledge(done, also)
        if not streams:
            return []
        try:
            if single:
                async with translated(), self._redis.pipeline(transaction=False) as pipe:
                    self._queue_acks(pipe, done, also)
                    pipe.xreadgroup(STREAM_GROUP, consumer, streams, count=count,
                                    block=None if pending else block_ms)
                    answer = (await pipe.execute())[-1]
            else:
                answer = await self._read_cluster(streams, consumer, count, pending, block_ms)
        except redis_errors.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_groups()  # Redis came back empty (no persistence): start afresh
            return []
        return self._decode(answer or [])

    async def _read_cluster(self, streams: FieldMap, consumer: str, count: int, pending: bool,
                            block_ms: int | None) -> list[Any]:
        """On a Cluster the partitions live on different nodes: one read each, pipelined per node; when all
        are empty, a pause stands in for the blocking read a single Redis would do."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for stream, start in streams.items():
                pipe.xreadgroup(STREAM_GROUP, consumer, {stream: start}, count=count)
            answers = [entry for answer in await pipe.execute() for entry in (answer or [])]
        if not answers and not pending and block_ms:
            await asyncio.sleep(min(block_ms, 20) / 1000)
        return answers

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
            items.extend(self._item(number, entry_id, fields) for entry_id, fields in entries if fields)
        return items  # an entry without fields was deleted while pending: nothing to do

    @staticmethod
    def _item(partition: int, entry_id: str, fields: dict[str, str]) -> WorkItem:
        if fields["k"] == "event":
            return WorkItem(partition, entry_id, "event", fields["c"], event=loads(fields["d"]),
                            unique=fields.get("u") == "1")
        if fields["k"] != "timer":
            return WorkItem(partition, entry_id, fields["k"], fields["c"], payload=loads(fields["d"]))
        customer_id, instance_id, token = fields["m"].split("|", 2)
        return WorkItem(partition, entry_id, "timer", customer_id, instance_id=instance_id, token=token)

    async def acknowledge(self, items: Iterable[WorkItem], also: Callable[[Any], None] | None = None) -> None:
        """Acknowledge and delete processed entries (streams stay as small as the backlog); `also` queues other
        writes that may go in the same round trip (the batch's counters)."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            self._queue_acks(pipe, items, also)
            if len(pipe):
                await pipe.execute()

    def _queue_acks(self, pipe: Any, items: Iterable[WorkItem], also: Callable[[Any], None] | None) -> None:
        if also is not None:
            also(pipe)
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

    async def fire_due(self, partitions: Collection[int], now: float, limit: int = 500) -> int:
        """Move the timers of these partitions due at `now` into their streams; returns how many fired."""
        calls = [([p.timers, p.work], [repr(now), limit]) for p in map(self._keys.partition, partitions)]
        return sum(int(fired) for fired in await run_script(self._redis, self._fire_due, calls))

    def append_into(self, pipe: Any, items: Iterable[WorkItem]) -> None:
        """Queue on `pipe` the addition of work items (written with other writes of a batch)."""
        for item in items:
            pipe.xadd(self.partition(item.customer_id).work, _encode(item))

    async def append(self, items: Iterable[WorkItem]) -> None:
        """Add work items to their customers' partitions, in order, in one round trip."""
        batch = list(items)
        if len(batch) == 1:  # the single-event API path: concurrent requests share a pipeline
            stream, fields = self.partition(batch[0].customer_id).work, _encode(batch[0])
            await self._together.command(lambda pipe: pipe.xadd(stream, fields))
            return
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            self.append_into(pipe, batch)
            await pipe.execute()

    async def append_drains(self, journey_id: str, customer_ids: Iterable[str]) -> int:
        """Ask the owners of these customers to exit their instances of the journey; returns how many."""
        items = [WorkItem(-1, "", "drain", cid, payload={"journey": journey_id}) for cid in customer_ids]
        await self.append(items)
        return len(items)

    async def dead_letter(self, item: WorkItem, error: str) -> None:
        """Park an item that keeps failing in the dead-letter stream, then acknowledge it."""
        fields: FieldMap = {**_encode(item), "error": error[:2000], "failed_at": repr(time.time())}
        await call(self._redis.xadd(self._keys.dlq, fields))
        await self.acknowledge([item])

    async def dead_letters(self, count: int = 100) -> list[tuple[str, WorkItem, str]]:
        """(dead-letter id, item, error), oldest first."""
        entries = await call(self._redis.xrange(self._keys.dlq, count=count))
        return [(entry_id, self._item(-1, entry_id, fields), fields.get("error", "")) for entry_id, fields in entries]

    async def retry_dead_letter(self, entry_id: str) -> bool:
        """Put a dead-lettered item back into its partition's stream; False if there is no such entry."""
        entries = await call(self._redis.xrange(self._keys.dlq, entry_id, entry_id))
        if not entries:
            return False
        item = self._item(-1, entry_id, entries[0][1])
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self.partition(item.customer_id).work, _encode(item))
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
