"""Broadcasts as stored: one record per broadcast (a hash), an index by creation time, and the set of those whose
audience is still to walk (the lease of the process walking each is engine/walks.py's).

A broadcast starts one journey for a whole audience (engine/broadcasts.py walks it; the journey core applies
each start). Its record holds what was asked (journey, audience, data, when, rate), where the walk stands (the
SSCAN cursor, how many customers were queued) and what the starts did (counters the worker adds with each
customer's commit: `started`, `skipped:<reason>`). Creation is one script, so a broadcast of a given id is
created once: a scheduled occurrence that several processes reach at the same moment runs once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omnicanal.codec import dumps, loads
from omnicanal.store.connection import call, decode_map, translated
from omnicanal.store.keys import Keyspace
from omnicanal.store.scripts import load
from omnicanal.store.transport import Transport

CREATE = load("create_broadcast")

SCHEDULED, RUNNING, DONE, CANCELLED = "scheduled", "running", "done", "cancelled"
"""A broadcast's status: waiting for its moment, its audience being walked, walked to the end, cancelled."""
DUPLICATE = "duplicate"
"""The outcome of a start a customer already had from this broadcast."""


@dataclass(slots=True)
class Broadcast:
    """A broadcast as stored, with its progress."""

    id: str
    journey: str
    audience: dict[str, Any]
    """`{"segment": id}`, `{"where": expression}` or `{"everyone": true}`."""
    status: str
    at: float
    """Journey time the walk may begin."""
    created_at: float
    rate: float = 0.0
    """Customers queued per real second at most (0: as fast as the workers take them)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Properties of the broadcast's event, which templates see as `event.properties`."""
    cursor: str = "0"
    planned: int | None = None
    """The audience's size when the walk began (members of a segment, or every customer for `where`)."""
    queued: int = 0
    """Customers whose start was queued (for `where`: those who matched)."""
    considered: int = 0
    """Customers looked at so far."""
    counts: dict[str, int] = field(default_factory=dict)
    """`started`, `skipped:<reason>`: what the starts did, as the workers applied them."""
    origin: str = ""
    """Who asked: `api`, `cli`, or `schedule` for a scheduled journey's occurrence."""
    local_time: str = ""
    """A wall-clock time (ISO 8601, no offset) at which each customer starts, on their own clock; empty: at once
    (a scheduled journey with `timezone: customer` sets it)."""

    @property
    def started(self) -> int:
        return self.counts.get("started", 0)

    @property
    def skipped(self) -> dict[str, int]:
        return {name.split(":", 1)[1]: n for name, n in self.counts.items() if name.startswith("skipped:")}

    @property
    def customers(self) -> int:
        """Distinct customers queued: a walk may meet a customer twice (the set changed meanwhile, or the walk
        resumed after a crash); the second start is recognised and counted as a duplicate, not shown."""
        return max(0, self.queued - self.counts.get(DUPLICATE, 0))

    @property
    def pending(self) -> int:
        """Starts queued that no worker has applied yet."""
        return max(0, self.queued - sum(self.counts.values()))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "journey": self.journey, "audience": self.audience, "status": self.status,
                "at": self.at, "created_at": self.created_at, "rate": self.rate, "data": self.data,
                "origin": self.origin, "planned": self.planned, "considered": self.considered,
                "queued": self.customers, "started": self.started, "skipped": self.skipped, "pending": self.pending,
                "finished": self.status in (DONE, CANCELLED) and self.pending == 0}


def _decode(broadcast_id: str, raw: Mapping[str, str]) -> Broadcast:
    counts = {name[2:]: int(float(value)) for name, value in raw.items() if name.startswith("n:")}
    return Broadcast(
        id=broadcast_id, journey=raw["journey"], audience=loads(raw["audience"]), status=raw["status"],
        at=float(raw["at"]), created_at=float(raw["created_at"]), rate=float(raw.get("rate", 0)),
        data=loads(raw.get("data", "{}")), cursor=raw.get("cursor", "0"),
        planned=int(raw["planned"]) if "planned" in raw else None,
        queued=int(raw.get("queued", 0)), considered=int(raw.get("considered", 0)), counts=counts,
        origin=raw.get("origin", ""), local_time=raw.get("local_time", ""),
    )


class BroadcastStore:
    def __init__(self, transport: Transport, keys: Keyspace) -> None:
        self._transport = transport
        self._redis = transport.client
        self._keys = keys

    async def create(self, broadcast: Broadcast) -> bool:
        """Store a new broadcast; False (and nothing changed) when one of that id exists."""
        k = self._keys
        fields = {"journey": broadcast.journey, "audience": dumps(broadcast.audience), "status": broadcast.status,
                  "at": repr(broadcast.at), "created_at": repr(broadcast.created_at), "rate": repr(broadcast.rate),
                  "data": dumps(broadcast.data), "cursor": "0", "origin": broadcast.origin,
                  "local_time": broadcast.local_time}
        created = await self._transport.script(
            CREATE, [k.broadcast(broadcast.id), k.broadcasts, k.broadcasts_active],
            [broadcast.id, repr(broadcast.created_at), *(x for pair in fields.items() for x in pair)])
        return bool(created)

    async def get(self, broadcast_id: str) -> Broadcast | None:
        raw = decode_map(await call(self._redis.hgetall(self._keys.broadcast(broadcast_id))))
        return _decode(broadcast_id, raw) if raw.get("status") else None

    async def recent(self, limit: int = 100) -> list[Broadcast]:
        """The latest broadcasts, newest first."""
        ids = await call(self._redis.zrevrange(self._keys.broadcasts, 0, limit - 1))
        found = [await self.get(str(i)) for i in ids]
        return [b for b in found if b is not None]

    async def active(self) -> list[str]:
        """Ids of the broadcasts whose audience is still to walk."""
        return sorted(str(i) for i in await call(self._redis.smembers(self._keys.broadcasts_active)))

    async def cancel(self, broadcast_id: str) -> Broadcast | None:
        """Stop the walk (the starts already queued still apply); None for an unknown id. A broadcast that is
        done stays done."""
        broadcast = await self.get(broadcast_id)
        if broadcast is None or broadcast.status in (DONE, CANCELLED):
            return broadcast
        await self.finish(broadcast_id, CANCELLED)
        return await self.get(broadcast_id)

    async def begin(self, broadcast_id: str, planned: int) -> None:
        """The walk begins (the first process to walk it says how big the audience is)."""
        key = self._keys.broadcast(broadcast_id)
        async with translated(), self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "planned", planned)
            pipe.hset(key, "status", RUNNING)
            await pipe.execute()

    async def advance(self, broadcast_id: str, cursor: str, considered: int, queued: int) -> None:
        """A batch of the audience was queued: where the walk stands now; cursor "0": walked to the end (one
        transaction, so a walk that ended is never walked again)."""
        k = self._keys
        key = k.broadcast(broadcast_id)
        async with translated(), self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "cursor", cursor)
            pipe.hincrby(key, "considered", considered)
            pipe.hincrby(key, "queued", queued)
            if cursor == "0":
                pipe.hset(key, "status", DONE)
                pipe.srem(k.broadcasts_active, broadcast_id)
            await pipe.execute()

    async def finish(self, broadcast_id: str, status: str) -> None:
        """Walked to the end (`done`) or `cancelled`: no process walks it any more."""
        k = self._keys
        async with translated(), self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(k.broadcast(broadcast_id), "status", status)
            pipe.srem(k.broadcasts_active, broadcast_id)
            await pipe.execute()

    def count(self, pipe: Any, outcomes: Mapping[str, str]) -> None:
        """Queue on `pipe` (the batch's writes, with the commits) what each start did: broadcast id ->
        `started` or `skipped:<reason>`, for one customer."""
        for broadcast_id, outcome in outcomes.items():
            pipe.hincrby(self._keys.broadcast(broadcast_id), f"n:{outcome}", 1)
