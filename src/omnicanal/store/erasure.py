"""Erasing a customer: every key, member and record that holds them (holdings.py finds them), in an order that a
crash at any point leaves safe to finish by running the erasure again.

What points at the customer from other keys goes first, their own keys (one slot, one script: lua/erase_customer.lua)
last: until then the profile still names every address, message and merged visitor the pointers are found
from, so an erasure applied again after a crash finds what is left. Each step removes only what still points at
the customer (identity entries are compare-and-deleted, tombstones deleted only if merged into them), so a
customer who took an address over meanwhile keeps it.

The worker that owns the customer's partition runs it, in the customer's order (engine.py): their events and
timers before it are applied first, nothing of theirs is in flight during it, and what comes after it (a late
event) starts a new customer. Journey counters are aggregates and stay.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omnicanal.codec import dumps, loads
from omnicanal.store import schema
from omnicanal.store.connection import call, translated
from omnicanal.store.holdings import Holdings
from omnicanal.store.identity import IdentityIndex
from omnicanal.store.keys import Keyspace
from omnicanal.store.scripts import load
from omnicanal.store.transport import Transport

ERASE_CUSTOMER = load("erase_customer")
REDACT_OUTBOX = load("redact_outbox")
ERASED_RECORD = dumps({"erased": True})
"""What an erased customer's outbox record becomes: the outbox keeps its positions for readers paging through it."""
REPLY_SECONDS = 60
"""How long an erasure's summary waits for the API request that asked for it."""


class CustomerErasure:
    def __init__(self, transport: Transport, keys: Keyspace, identity: IdentityIndex) -> None:
        self._transport = transport
        self._redis = transport.client
        self._keys = keys
        self._identity = identity

    async def erase(self, held: Holdings, journeys: Iterable[str], segments: Iterable[str] = ()) -> dict[str, int]:
        """Erase what `held` names, and the customer from the running-journey index of every journey in
        `journeys` (and of theirs) and from the members of every segment in `segments` (and of theirs); returns
        how many of each kind of thing were erased."""
        cid = held.customer_id
        keys = self._keys
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for key in (*map(keys.provider_message, held.provider_ids), *map(keys.coupon, held.coupons),
                        *map(keys.idempotency, held.event_ids)):
                pipe.delete(key)
            for timers, member in held.timers:
                pipe.zrem(timers, member)
            if held.dead_letters:
                pipe.xdel(keys.dlq, *held.dead_letters)
            for journey_id in {*journeys, *held.journeys}:
                pipe.srem(keys.journey_active(journey_id), cid)
            for segment_id in {*segments, *held.segments}:
                pipe.srem(keys.segment_members(segment_id), cid)
            pipe.srem(keys.customers, cid, *held.merged)
            await pipe.execute()
        await self._identity.forget(cid, held.identities)
        outbox = await self._transport.script(REDACT_OUTBOX, [keys.outbox], [ERASED_RECORD, *held.outbox]) \
            if held.outbox else 0
        for visitor in held.merged:
            await self._transport.script(ERASE_CUSTOMER, keys.customer(visitor).all(), [cid])
        deleted = await self._transport.script(ERASE_CUSTOMER, keys.customer(cid).all(), [""])
        state: dict[str, Any] = held.state
        return {"keys": int(deleted), "timeline_entries": len(state["timeline"]), "messages": len(state["messages"]),
                "journey_instances": len(state["instances"]), "identities": len(held.identities),
                "merged_ids": len(held.merged), "coupons": len(held.coupons), "timers": len(held.timers),
                "outbox_records": int(outbox), "dead_letters": len(held.dead_letters)}

    async def active_since(self, customer_id: str) -> bool:
        """Whether the customer's retention timer was set again after it fired (their work was applied since):
        then they are not inactive any more, and a retention erasure does not happen."""
        member = schema.retention_member(customer_id)
        timers = self._keys.partition(self._keys.partition_of(customer_id)).timers
        return await call(self._redis.zscore(timers, member)) is not None

    async def reply(self, erasure_id: str, summary: dict[str, int]) -> None:
        """Leave an erasure's summary for the request waiting for it."""
        await call(self._redis.set(self._keys.erasure_reply(erasure_id), dumps(summary), ex=REPLY_SECONDS))

    async def summary(self, erasure_id: str) -> dict[str, int] | None:
        """The summary of a finished erasure (None: not finished yet)."""
        found = await call(self._redis.get(self._keys.erasure_reply(erasure_id)))
        return loads(found) if found else None
